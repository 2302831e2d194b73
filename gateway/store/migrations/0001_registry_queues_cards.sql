-- 0001: registry, message queues, attachments, metadata cards.
-- Times are milliseconds since the Unix epoch (UTC). Global IDs are 16-byte BLOBs.

CREATE TABLE registry_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO registry_version (id, version) VALUES (1, 0);

CREATE TABLE participants (
    mnemonic TEXT PRIMARY KEY,
    name     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE systems (
    mnemonic     TEXT PRIMARY KEY,
    participant  TEXT NOT NULL REFERENCES participants (mnemonic),
    name         TEXT NOT NULL,
    certificates TEXT NOT NULL -- JSON array of PEM strings
) WITHOUT ROWID;

CREATE TABLE kinds (
    namespace        TEXT NOT NULL,
    root_element     TEXT NOT NULL,
    name             TEXT NOT NULL,
    provider_system  TEXT NOT NULL REFERENCES systems (mnemonic),
    restricted       INTEGER NOT NULL,
    consent_required INTEGER NOT NULL,
    description      TEXT NOT NULL,
    PRIMARY KEY (namespace, root_element)
) WITHOUT ROWID;

CREATE TABLE grants (
    consumer_system TEXT NOT NULL REFERENCES systems (mnemonic),
    namespace       TEXT NOT NULL,
    root_element    TEXT NOT NULL,
    PRIMARY KEY (consumer_system, namespace, root_element),
    FOREIGN KEY (namespace, root_element) REFERENCES kinds (namespace, root_element)
) WITHOUT ROWID;

-- One row per message ever accepted. The payload columns are emptied by Ack; the row
-- stays as the idempotency record (sender, MessageID) → answer.
CREATE TABLE messages (
    seq                INTEGER PRIMARY KEY,
    global_id          BLOB NOT NULL UNIQUE,
    queue              INTEGER NOT NULL,
    sender_system      TEXT NOT NULL,
    sender_message_id  TEXT NOT NULL,
    recipient_system   TEXT NOT NULL,
    kind_namespace     TEXT NOT NULL,
    kind_root          TEXT NOT NULL,
    content_namespace  TEXT NOT NULL,
    content_root       TEXT NOT NULL,
    original_global_id BLOB,
    checksum           BLOB NOT NULL,
    received_at        INTEGER NOT NULL,
    eol                INTEGER,
    visible_at         INTEGER NOT NULL,
    delivery_count     INTEGER NOT NULL DEFAULT 0,
    first_delivered_at INTEGER,
    acked_at           INTEGER,
    payload            BLOB,            -- NULL once acknowledged
    answer             BLOB NOT NULL,
    UNIQUE (sender_system, sender_message_id)
);
-- The queue index holds only pending messages, so it stays as small as the backlog.
CREATE INDEX messages_pending ON messages (recipient_system, queue, visible_at, seq)
    WHERE acked_at IS NULL;

CREATE TABLE attachments (
    global_id  BLOB NOT NULL,
    position   INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    mime_type  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     BLOB NOT NULL,
    path       TEXT NOT NULL,
    mtom       INTEGER NOT NULL,
    PRIMARY KEY (global_id, position)
) WITHOUT ROWID;

-- The metadata card: never payload, never attachment content.
CREATE TABLE cards (
    global_id          BLOB PRIMARY KEY,
    queue              INTEGER NOT NULL,
    sender_system      TEXT NOT NULL,
    sender_message_id  TEXT NOT NULL,
    recipient_system   TEXT NOT NULL,
    kind_namespace     TEXT NOT NULL,
    kind_root          TEXT NOT NULL,
    original_global_id BLOB,
    checksum           BLOB NOT NULL,
    received_at        INTEGER NOT NULL,
    status             TEXT NOT NULL,
    test_message       INTEGER NOT NULL,
    receiver_registration_number TEXT,
    receiver_registered_at       INTEGER,
    details            TEXT NOT NULL -- JSON
) WITHOUT ROWID;
