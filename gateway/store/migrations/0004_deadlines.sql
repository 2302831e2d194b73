-- Deadlines (issue 6). Invariants:
-- * A deadline is a row written in the same transaction as the message it concerns.
-- * A row fires at most once: firing sets `fired_at` in the transaction that enqueues its
--   statuses and appends its journal event, and only the node holding the row's lease
--   (`lease_owner` until `lease_until`) may fire it, so several nodes never fire it twice.
-- * A final answer closes the request's pending rows (`closed_at`); a fired or closed row
--   never fires again. Rows are kept (they are the deadline facts the reports use).
CREATE TABLE deadlines (
    global_id   BLOB NOT NULL,
    kind        TEXT NOT NULL,      -- 'reminder' | 'overdue' | 'expiry'
    due_at      INTEGER NOT NULL,   -- ms, UTC
    lease_owner TEXT,
    lease_until INTEGER,
    fired_at    INTEGER,
    closed_at   INTEGER,
    PRIMARY KEY (global_id, kind)
) WITHOUT ROWID;
-- Only pending rows, in firing order: what the timer loop reads.
CREATE INDEX deadlines_pending ON deadlines (due_at)
    WHERE fired_at IS NULL AND closed_at IS NULL;

-- A kind of information may set a shorter reply term than the default.
ALTER TABLE kinds ADD COLUMN reply_working_days INTEGER;
ALTER TABLE cards ADD COLUMN overdue_at INTEGER;    -- when the overdue deadline fired

-- Periodic jobs (tokio-cron-scheduler on every node): a scheduled slot runs once in the
-- whole cluster, on the node whose INSERT of the slot row won.
CREATE TABLE job_slots (
    job         TEXT NOT NULL,
    slot        INTEGER NOT NULL,   -- the scheduled instant, ms UTC
    node        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT,
    PRIMARY KEY (job, slot)
) WITHOUT ROWID;
