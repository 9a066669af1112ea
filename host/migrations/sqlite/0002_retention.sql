-- Retention (replay safety): an event's raw request (body and headers) is
-- purged after `store.body_retention_days`, but its row, with the id and the
-- idempotency key, stays until `store.key_retention_days`, so a replay of a
-- purged event is still a duplicate. NULL: the body is still stored.
ALTER TABLE events ADD COLUMN body_purged_at_ms INTEGER;

-- Purges walk events by age. This replaces the (status, received_at_ms)
-- index, which no query used: still one extra index write per insert.
DROP INDEX events_status_received_at;
CREATE INDEX events_received_at ON events (received_at_ms);
