-- Monitoring reads from indexes alone (issue 8).
--
-- The oldest pending message per (recipient, queue, kind) in one index seek, for both
-- readers of queue ages: the monitoring API (per recipient and kind) and /metrics (per
-- recipient and queue). Migration 0006's index had no queue, so /metrics had to walk the
-- queue index over the whole backlog of a queue (a consumer that never fetches its
-- statuses makes that backlog grow without end) on every scrape. Same number of
-- indexes, so a message costs no more to write. Invariant: the index holds exactly the
-- unacknowledged messages.
DROP INDEX messages_pending_age;
CREATE INDEX messages_pending_age
    ON messages (recipient_system, queue, kind_namespace, kind_root, received_at)
    WHERE acked_at IS NULL;

-- Answer times of the monitoring window read from the index alone: a sample is
-- (closed_at, recipient, kind, received_at) without visiting the card's row (whose
-- details make it several times larger). Still only the closed cards, as in 0006.
DROP INDEX cards_closed;
CREATE INDEX cards_closed
    ON cards (closed_at, recipient_system, kind_namespace, kind_root, received_at)
    WHERE closed_at IS NOT NULL;
