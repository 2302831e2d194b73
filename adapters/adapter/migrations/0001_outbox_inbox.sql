-- The adapter's local store: what the agency asked to send (outbox), what the gateway
-- delivered (inbox), their attachment files, and the gateway's processing statuses.
-- Times are milliseconds since the Unix epoch (UTC).

-- Requests the agency submitted (operation 'request') and answers it gave to received
-- requests (operation 'response'). The MessageID is fixed here, so every resend of a row
-- is the same call to the gateway, which is idempotent by (system, MessageID).
CREATE TABLE outbox (
    id                         INTEGER PRIMARY KEY,
    operation                  TEXT NOT NULL CHECK (operation IN ('request', 'response')),
    -- Requests: the agency's idempotency key.
    client_ref                 TEXT UNIQUE,
    -- SHA-256 of what was submitted: a repeat with the same key must be the same request.
    body_sha256                TEXT NOT NULL,
    message_id                 TEXT NOT NULL UNIQUE,
    created_at                 INTEGER NOT NULL,
    -- Requests: the business XML; responses: the data XML (NULL for a rejection/status).
    content                    TEXT,
    card_json                  TEXT,
    card_xml                   TEXT,
    sender_registration_number TEXT,
    sender_registration_date   TEXT,
    reference_message_id       TEXT,
    eol                        INTEGER,
    test                       INTEGER NOT NULL DEFAULT 0,
    mtom                       INTEGER NOT NULL DEFAULT 0,
    -- Responses: the inbox request answered, and its ReplyTo.
    inbox_id                   INTEGER REFERENCES inbox (id),
    reply_to                   TEXT,
    answer_kind                TEXT CHECK (answer_kind IN ('data', 'rejection', 'status')),
    answer_code                TEXT,
    answer_description         TEXT,
    answer_parameters          TEXT,
    final                      INTEGER NOT NULL DEFAULT 0,
    -- The send: queued (durable, not yet accepted) | sent (accepted by the gateway) |
    -- rejected (refused by the gateway with a non-retryable fault).
    state                      TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'rejected')),
    -- What happened next, only ever moving forward: delivered (the recipient received
    -- it) | clarification (the provider asked for more) | answered | refused (the
    -- provider's RequestRejected) | expired (not received by its EOL).
    outcome                    TEXT CHECK (outcome IN ('delivered', 'clarification', 'answered', 'refused', 'expired')),
    attempts                   INTEGER NOT NULL DEFAULT 0,
    last_attempt_at            INTEGER,
    last_error                 TEXT,
    global_id                  TEXT UNIQUE,
    gateway_message_status     TEXT,
    registration               TEXT,
    sent_at                    INTEGER,
    fault                      TEXT,
    reply_inbox_id             INTEGER,
    late                       INTEGER NOT NULL DEFAULT 0,
    provider_status            TEXT,
    last_gateway_status        TEXT,
    delivered_at               INTEGER,
    overdue_at                 INTEGER,
    expired_at                 INTEGER
);
CREATE INDEX outbox_queued ON outbox (id) WHERE state = 'queued';
CREATE INDEX outbox_state ON outbox (operation, state, outcome, id);
-- One final answer (data or rejection) per received request.
CREATE UNIQUE INDEX outbox_final_answer ON outbox (inbox_id) WHERE final = 1;

-- Requests and responses the gateway delivered (polled or pushed), each registered with
-- the agency's own number in the transaction that stores it.
CREATE TABLE inbox (
    id                   INTEGER PRIMARY KEY,
    direction            TEXT NOT NULL CHECK (direction IN ('request', 'response')),
    global_id            TEXT NOT NULL UNIQUE,
    registration_number  TEXT UNIQUE,
    registered_at        INTEGER NOT NULL,
    received_via         TEXT NOT NULL CHECK (received_via IN ('poll', 'push')),
    acked_at             INTEGER,
    ack_attempts         INTEGER NOT NULL DEFAULT 0,
    ack_error            TEXT,
    sender_system        TEXT NOT NULL,
    sender_name          TEXT,
    message_id           TEXT NOT NULL,
    reply_to             TEXT,
    original_message_id  TEXT,
    reference_message_id TEXT,
    kind_name            TEXT,
    content_kind         TEXT NOT NULL CHECK (content_kind IN ('data', 'rejection', 'status')),
    content              TEXT,
    code                 TEXT,
    description          TEXT,
    parameters           TEXT,
    card_json            TEXT,
    registration         TEXT,
    late                 INTEGER NOT NULL DEFAULT 0,
    test                 INTEGER NOT NULL DEFAULT 0,
    -- Responses: the request row (outbox) they answer.
    outbox_id            INTEGER REFERENCES outbox (id),
    -- new | dispatched (handed to the callback, answer later) | answered | done
    state                TEXT NOT NULL,
    dispatch_attempts    INTEGER NOT NULL DEFAULT 0,
    dispatch_error       TEXT,
    last_gateway_status  TEXT,
    overdue_at           INTEGER,
    done_at              INTEGER
);
CREATE INDEX inbox_message_id ON inbox (message_id);
CREATE INDEX inbox_state ON inbox (direction, state, id);
CREATE INDEX inbox_unacked ON inbox (id) WHERE acked_at IS NULL;

-- Attachment files under <data_dir>/files, written and synced before their row commits.
CREATE TABLE attachments (
    id         INTEGER PRIMARY KEY,
    outbox_id  INTEGER REFERENCES outbox (id),
    inbox_id   INTEGER REFERENCES inbox (id),
    position   INTEGER NOT NULL,
    content_id TEXT NOT NULL,
    mime_type  TEXT NOT NULL,
    file       TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    CHECK ((outbox_id IS NULL) <> (inbox_id IS NULL))
);
CREATE INDEX attachments_outbox ON attachments (outbox_id, position) WHERE outbox_id IS NOT NULL;
CREATE INDEX attachments_inbox ON attachments (inbox_id, position) WHERE inbox_id IS NOT NULL;

-- The gateway's processing statuses (GetStatus), linked to the row they concern.
CREATE TABLE statuses (
    id                  INTEGER PRIMARY KEY,
    original_message_id TEXT NOT NULL,
    category            TEXT NOT NULL,
    details             TEXT,
    timestamp           INTEGER,
    received_at         INTEGER NOT NULL,
    outbox_id           INTEGER REFERENCES outbox (id),
    inbox_id            INTEGER REFERENCES inbox (id)
);
CREATE INDEX statuses_outbox ON statuses (outbox_id) WHERE outbox_id IS NOT NULL;
CREATE INDEX statuses_inbox ON statuses (inbox_id) WHERE inbox_id IS NOT NULL;
