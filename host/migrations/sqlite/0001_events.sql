-- Events: one row per verified request, stored before the ack.
--
-- UNIQUE (source, idem_key) is what makes a provider's retry a duplicate
-- instead of a second event. `headers` is the JSON text of the header list
-- (serde_json of Vec<(String, HeaderValueRepr)>), kept as text so both
-- backends store exactly the same bytes. STRICT makes SQLite enforce the
-- column types the way Postgres does.
CREATE TABLE events (
    id             TEXT    NOT NULL PRIMARY KEY,
    source         TEXT    NOT NULL,
    idem_key       TEXT    NOT NULL,
    method         TEXT    NOT NULL,
    path           TEXT    NOT NULL,
    headers        TEXT    NOT NULL,
    body           BLOB    NOT NULL,
    received_at_ms INTEGER NOT NULL,
    verification   TEXT    NOT NULL,
    status         TEXT    NOT NULL DEFAULT 'received',
    UNIQUE (source, idem_key)
) STRICT;

-- Dispatch and recovery look for the oldest events in a given status.
CREATE INDEX events_status_received_at ON events (status, received_at_ms);
