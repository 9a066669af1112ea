-- The retention purges now walk the primary key up to an id floor (event
-- ids are `evt_` + a ULID of the receive time), so the index on
-- received_at_ms served no query and still cost every insert a write of
-- its own (about 4% of the writer's time per event, and WAL frames that
-- the checkpoint copies again). Postgres keeps its index.
DROP INDEX events_received_at;
