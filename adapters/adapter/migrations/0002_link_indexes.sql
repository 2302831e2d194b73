-- The links between a request and its answers are followed on every view of either:
-- the answers given to a received request (outbox.inbox_id) and the responses that came
-- to a sent one (inbox.outbox_id). Without these indexes each view scanned its table.
CREATE INDEX outbox_inbox ON outbox (inbox_id) WHERE inbox_id IS NOT NULL;
CREATE INDEX inbox_outbox ON inbox (outbox_id) WHERE outbox_id IS NOT NULL;
