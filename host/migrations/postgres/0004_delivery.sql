-- Delivery (issue #5): workers claim due deliveries of one sink at a time
-- (FOR UPDATE SKIP LOCKED, so several routers share the work), send them,
-- and record each attempt.
--
-- `source` and `event_at_ms` are copied from the event so that a claim is
-- one statement on this table and sinks can render `{source}` and `{date}`.
ALTER TABLE deliveries ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN event_at_ms BIGINT NOT NULL DEFAULT 0;
UPDATE deliveries d SET source = e.source, event_at_ms = e.received_at_ms
    FROM events e WHERE e.id = d.event_id;
-- When it became done or dead (NULL while pending).
ALTER TABLE deliveries ADD COLUMN finished_at_ms BIGINT;
-- `attempts` when the current round of retries began: a dead letter sent
-- again gets the sink's whole retry budget, and attempt numbers stay unique.
ALTER TABLE deliveries ADD COLUMN round_start BIGINT NOT NULL DEFAULT 0;

-- Claims are per sink, so one sink's backlog never hides another's due work.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at_ms) WHERE status = 'pending';
-- The dead-letter list, newest first, per sink.
CREATE INDEX deliveries_dead ON deliveries (sink, finished_at_ms) WHERE status = 'dead';
-- Retention walks finished deliveries by age.
CREATE INDEX deliveries_created ON deliveries (created_at_ms);

-- Failed attempts only: a delivery done at its first attempt (nearly all)
-- writes no row here, its own row says when and after how many attempts.
CREATE TABLE delivery_attempts (
    delivery_id TEXT    NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     BIGINT  NOT NULL,
    at_ms       BIGINT  NOT NULL,
    duration_us BIGINT  NOT NULL,
    -- retry | dead
    outcome     TEXT    NOT NULL,
    error       TEXT    NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
