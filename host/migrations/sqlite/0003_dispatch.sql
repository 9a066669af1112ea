-- Dispatch: each stored event goes through its source's plugin (or straight
-- to the source's sinks) once, after the ack.
--
-- `dispatch_at_ms`: when a sweep may take the event. A new event is handed
-- to the dispatcher in memory at once; its row is only a fallback, due after
-- a grace period (so a sweep does not race the in-memory hand-off). A claim
-- moves it forward by a lease; a retryable plugin failure by the backoff.
-- Rows stored before this migration are due at once.
ALTER TABLE events ADD COLUMN dispatch_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN dispatch_attempts INTEGER NOT NULL DEFAULT 0;
-- Why a failed or dropped event ended so (NULL otherwise).
ALTER TABLE events ADD COLUMN status_reason TEXT;

-- Only undispatched events are indexed: the index stays as small as the backlog.
CREATE INDEX events_dispatch_due ON events (dispatch_at_ms) WHERE status = 'received';

-- One row per plugin call on an event (retries and replays add rows).
CREATE TABLE plugin_runs (
    id          TEXT    NOT NULL PRIMARY KEY,
    event_id    TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    plugin      TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    -- delivered | dropped | failed | retry
    outcome     TEXT    NOT NULL,
    reason      TEXT,
    fuel_used   INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    -- JSON list summarising the actions: {"deliver": sink, "bytes": n} or {"drop": reason}
    actions     TEXT    NOT NULL,
    ran_at_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX plugin_runs_event ON plugin_runs (event_id);

-- What to deliver where; the delivery workers (issue #5) send them.
CREATE TABLE deliveries (
    id                 TEXT    NOT NULL PRIMARY KEY,
    event_id           TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    -- The plugin run that asked for it; NULL when the source's `sinks` did.
    run_id             TEXT,
    -- Position among the event's deliveries.
    seq                INTEGER NOT NULL,
    sink               TEXT    NOT NULL,
    payload            BLOB    NOT NULL,
    -- JSON list of [name, value].
    headers            TEXT    NOT NULL,
    subject_suffix     TEXT,
    msg_key            TEXT,
    -- pending | done | dead
    status             TEXT    NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    created_at_ms      INTEGER NOT NULL,
    last_error         TEXT
) STRICT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);
