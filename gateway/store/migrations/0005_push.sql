-- Push delivery (issue 7): a system may register an endpoint to which the gateway POSTs
-- its queued requests and responses (docs/push.md). Invariants:
-- * `push_next_at IS NOT NULL` on a pending message (acked_at IS NULL) means "push it":
--   the next attempt is due at that instant. It is set when the message is queued for a
--   system with a `push_url` (or when a system gets one, for its pending backlog), and
--   cleared for good by the fallback (or when the system loses its `push_url`).
-- * While an attempt is in flight the message is leased like a pulled one: `visible_at`
--   and `push_next_at` are both the lease's end, so no pull takes it meanwhile and, if the
--   node dies, the attempt is retried once the lease lapses.
-- * `push_attempts` counts attempts as they are claimed (a lost attempt still counts);
--   after the configured cap the message falls back to the pull queue: `push_next_at`
--   NULL, `push_fallback_at` set, visible to GetRequest/GetResponse.
-- * `push_last_error` is the last failed attempt's error (operator-facing; the journal's
--   `message.push_failed` / `message.push_fallback` events carry only its class).
ALTER TABLE systems ADD COLUMN push_url TEXT;

ALTER TABLE messages ADD COLUMN push_next_at INTEGER;
ALTER TABLE messages ADD COLUMN push_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN push_last_error TEXT;
ALTER TABLE messages ADD COLUMN push_fallback_at INTEGER;

-- Only messages waiting for a push, in due order per recipient: what the push loop reads.
CREATE INDEX messages_push ON messages (recipient_system, push_next_at, seq)
    WHERE push_next_at IS NOT NULL AND acked_at IS NULL;
