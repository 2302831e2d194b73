-- The central journal (issue 5). Invariants:
-- * `journal_events` is append-only: row `seq` is leaf number `seq` of the Merkle tree and
--   `leaf` is exactly the bytes that were hashed (docs/journal.md, "Leaf encoding"). The
--   other columns are copies of fields inside `leaf`, kept for indexing; `journal verify`
--   checks them against the leaf.
-- * `journal_nodes` holds the hash of every complete subtree: (level, idx) covers leaves
--   [idx * 2^level, (idx + 1) * 2^level). Level 0 is the leaf hash.
-- * `journal_checkpoints` holds every signed checkpoint, as the signed note.
-- * An event is appended in the same transaction as the change that causes it.
-- The triggers refuse updates and deletes through SQL; tampering with the file itself is
-- what the Merkle tree and the checkpoints detect.
CREATE TABLE journal_events (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    global_id BLOB,
    actor     TEXT NOT NULL,
    leaf      BLOB NOT NULL
);
CREATE INDEX journal_events_message ON journal_events (global_id) WHERE global_id IS NOT NULL;

CREATE TABLE journal_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE journal_checkpoints (
    size    INTEGER PRIMARY KEY,
    root    BLOB NOT NULL,
    made_at INTEGER NOT NULL,
    note    TEXT NOT NULL
);

CREATE TRIGGER journal_events_no_update BEFORE UPDATE ON journal_events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_events_no_delete BEFORE DELETE ON journal_events
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_nodes_no_update BEFORE UPDATE ON journal_nodes
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_nodes_no_delete BEFORE DELETE ON journal_nodes
BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
CREATE TRIGGER journal_checkpoints_no_update BEFORE UPDATE ON journal_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER journal_checkpoints_no_delete BEFORE DELETE ON journal_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;

-- Card columns the auditor filters on (copied from the card's details when it is written).
ALTER TABLE cards ADD COLUMN sender_agency TEXT;
ALTER TABLE cards ADD COLUMN recipient_agency TEXT;
ALTER TABLE cards ADD COLUMN service_number TEXT;
ALTER TABLE cards ADD COLUMN legal_acts TEXT;       -- the acts of the legal basis, one per line
ALTER TABLE cards ADD COLUMN subject_hash BLOB;     -- HMAC-SHA-256 of the search details
ALTER TABLE cards ADD COLUMN sender_registration_number TEXT;
ALTER TABLE cards ADD COLUMN due_at INTEGER;        -- reply deadline (issue 6)
ALTER TABLE cards ADD COLUMN closed_at INTEGER;     -- when a final answer closed the deadline
CREATE INDEX cards_received ON cards (received_at);
CREATE INDEX cards_subject ON cards (subject_hash) WHERE subject_hash IS NOT NULL;
CREATE INDEX cards_sender_registration ON cards (sender_registration_number)
    WHERE sender_registration_number IS NOT NULL;
CREATE INDEX cards_receiver_registration ON cards (receiver_registration_number)
    WHERE receiver_registration_number IS NOT NULL;
CREATE INDEX cards_sender_message ON cards (sender_system, sender_message_id);

-- Cards written before this migration get their filter columns from their details.
UPDATE cards SET
    sender_agency = json_extract(details, '$.sender_agency'),
    recipient_agency = json_extract(details, '$.recipient_agency'),
    service_number = json_extract(details, '$.service.registry_number'),
    sender_registration_number = json_extract(details, '$.sender_registration.number'),
    legal_acts = (SELECT group_concat(json_extract(value, '$.act'), char(10))
                  FROM json_each(cards.details, '$.legal_basis'));
