-- Pending messages per (recipient, queue, kind), kept by triggers in the same transaction
-- as the change to `messages`, so GetIncomingQueueStatistics reads a handful of rows
-- instead of counting the backlog. Invariant: `pending` equals
-- count(*) FROM messages WHERE acked_at IS NULL, grouped the same way; rows at zero are
-- deleted.
CREATE TABLE queue_counters (
    recipient_system TEXT NOT NULL,
    queue            INTEGER NOT NULL,
    kind_namespace   TEXT NOT NULL,
    kind_root        TEXT NOT NULL,
    pending          INTEGER NOT NULL CHECK (pending >= 0),
    PRIMARY KEY (recipient_system, queue, kind_namespace, kind_root)
) WITHOUT ROWID;

INSERT INTO queue_counters (recipient_system, queue, kind_namespace, kind_root, pending)
    SELECT recipient_system, queue, kind_namespace, kind_root, count(*)
    FROM messages WHERE acked_at IS NULL
    GROUP BY recipient_system, queue, kind_namespace, kind_root;

CREATE TRIGGER queue_counters_insert AFTER INSERT ON messages
WHEN new.acked_at IS NULL
BEGIN
    INSERT INTO queue_counters (recipient_system, queue, kind_namespace, kind_root, pending)
        VALUES (new.recipient_system, new.queue, new.kind_namespace, new.kind_root, 1)
        ON CONFLICT DO UPDATE SET pending = pending + 1;
END;

CREATE TRIGGER queue_counters_ack AFTER UPDATE OF acked_at ON messages
WHEN old.acked_at IS NULL AND new.acked_at IS NOT NULL
BEGIN
    UPDATE queue_counters SET pending = pending - 1
        WHERE recipient_system = old.recipient_system AND queue = old.queue
          AND kind_namespace = old.kind_namespace AND kind_root = old.kind_root;
    DELETE FROM queue_counters
        WHERE recipient_system = old.recipient_system AND queue = old.queue
          AND kind_namespace = old.kind_namespace AND kind_root = old.kind_root
          AND pending = 0;
END;

CREATE TRIGGER queue_counters_delete AFTER DELETE ON messages
WHEN old.acked_at IS NULL
BEGIN
    UPDATE queue_counters SET pending = pending - 1
        WHERE recipient_system = old.recipient_system AND queue = old.queue
          AND kind_namespace = old.kind_namespace AND kind_root = old.kind_root;
    DELETE FROM queue_counters
        WHERE recipient_system = old.recipient_system AND queue = old.queue
          AND kind_namespace = old.kind_namespace AND kind_root = old.kind_root
          AND pending = 0;
END;
