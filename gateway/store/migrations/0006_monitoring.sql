-- Operator monitoring (issue 8; docs/monitoring.md). Invariants:
-- * `health_probe` holds one row, rewritten by every readiness check through the store's
--   writer: a commit that succeeds proves the store writable and measures its latency.
-- * `settings` holds durable operator switches (today `maintenance`: JSON
--   {"enabled", "reason", "since_ms"}); each change is journaled in the same transaction.
-- * `alerts` holds the alerts open now, one row per (rule, subject); opening inserts the
--   row and journals `alert.raised`, resolving deletes it and journals `alert.resolved`,
--   each in one transaction, so the table and the journal never disagree.
-- * `system_activity` is each system's last poll and last successful call as the nodes
--   last flushed them from memory (every alert interval): it survives restarts and, with
--   several nodes, the latest of any node wins (`max`).
-- * The partial indexes keep the monitoring reads cheap whatever the history: the
--   oldest pending message per (recipient, kind), and the open overdue requests.
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);

CREATE TABLE settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    changed_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE alerts (
    rule      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    value     TEXT NOT NULL,
    detail    TEXT NOT NULL,
    PRIMARY KEY (rule, subject)
) WITHOUT ROWID;

CREATE TABLE system_activity (
    system          TEXT PRIMARY KEY,
    last_poll_at    INTEGER,
    last_success_at INTEGER
) WITHOUT ROWID;

CREATE INDEX messages_pending_age ON messages (recipient_system, kind_namespace, kind_root, received_at)
    WHERE acked_at IS NULL;
CREATE INDEX cards_overdue_open ON cards (recipient_system)
    WHERE overdue_at IS NOT NULL AND closed_at IS NULL;
CREATE INDEX cards_closed ON cards (closed_at) WHERE closed_at IS NOT NULL;
