-- Events: one row per verified request, stored before the ack.
--
-- UNIQUE (source, idem_key) is what makes a provider's retry a duplicate
-- instead of a second event. `headers` is the JSON text of the header list
-- (serde_json of Vec<(String, HeaderValueRepr)>): TEXT rather than JSONB so
-- both backends store and return exactly the same bytes.
CREATE TABLE events (
    id             TEXT   NOT NULL PRIMARY KEY,
    source         TEXT   NOT NULL,
    idem_key       TEXT   NOT NULL,
    method         TEXT   NOT NULL,
    path           TEXT   NOT NULL,
    headers        TEXT   NOT NULL,
    body           BYTEA  NOT NULL,
    received_at_ms BIGINT NOT NULL,
    verification   TEXT   NOT NULL,
    status         TEXT   NOT NULL DEFAULT 'received',
    CONSTRAINT events_source_idem_key UNIQUE (source, idem_key)
);

-- Dispatch and recovery look for the oldest events in a given status.
CREATE INDEX events_status_received_at ON events (status, received_at_ms);
