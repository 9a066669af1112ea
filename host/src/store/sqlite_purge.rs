//! Retention on SQLite: short write transactions on a connection of their
//! own, so the ingest writer waits at most one chunk for the write lock.

use std::path::Path;
use std::time::Duration;

use rusqlite::params;

use super::retention::PURGE_CHUNK;
use super::sqlite_writer::sqlite;
use super::{Cutoffs, Purged, StoreError};

/// Drop body and headers, keep id and key. An event still waiting for
/// dispatch keeps its body (the plugin has not seen it yet).
///
/// Both purges walk the primary key up to an id floor (`?4`, `?3`; see
/// [`id_floor`]) instead of an index on `received_at_ms`, which cost every
/// insert an index write for these queries alone (migration 0005). The
/// exact `received_at_ms` test stays, so nothing is purged early.
const PURGE_BODIES: &str = "\
    UPDATE events SET body = x'', headers = '[]', body_purged_at_ms = ?1 \
    WHERE rowid IN (SELECT rowid FROM events \
                    WHERE id < ?4 AND received_at_ms < ?2 AND body_purged_at_ms IS NULL \
                      AND status <> 'received' LIMIT ?3)";

/// The rows, and with them the keys, runs, deliveries and attempts; never
/// an event still waiting for dispatch or with a delivery still pending.
const PURGE_ROWS: &str = "\
    DELETE FROM events \
    WHERE rowid IN (SELECT rowid FROM events WHERE id < ?3 AND received_at_ms < ?1 \
                      AND status <> 'received' \
                      AND NOT EXISTS (SELECT 1 FROM deliveries d \
                                      WHERE d.event_id = events.id AND d.status = 'pending') \
                    LIMIT ?2)";

/// How far past a cutoff the purges look by id. Ids made since migration
/// 0005 carry their event's `received_at_ms` exactly; older ones took the
/// time from a second clock read, microseconds later.
const ID_TIME_SLACK_MS: i64 = 1_000;

/// The id floor for purging events received before `before_ms`.
fn id_floor(before_ms: i64) -> String {
    super::ulid_id_floor("evt_", before_ms.saturating_add(ID_TIME_SLACK_MS))
}

/// Applies `cutoffs` to the database at `path` (blocking: call it from a
/// blocking thread).
pub(super) fn purge(
    path: &Path,
    cutoffs: Cutoffs,
    busy_timeout: Duration,
) -> Result<Purged, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(sqlite("open purge connection"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(sqlite("set busy_timeout"))?;
    // Deleting an event deletes its runs, deliveries and attempts (ON DELETE
    // CASCADE), which SQLite enforces only when asked, per connection.
    conn.execute_batch("PRAGMA foreign_keys = ON")
        .map_err(sqlite("enable foreign keys"))?;
    let mut purged = Purged::default();
    if let Some(before) = cutoffs.bodies_before_ms {
        let floor = id_floor(before);
        purged.bodies = in_chunks(|| {
            conn.execute(
                PURGE_BODIES,
                params![cutoffs.now_ms, before, PURGE_CHUNK, floor],
            )
            .map_err(sqlite("purge bodies"))
        })?;
    }
    if let Some(before) = cutoffs.rows_before_ms {
        let floor = id_floor(before);
        purged.rows = in_chunks(|| {
            conn.execute(PURGE_ROWS, params![before, PURGE_CHUNK, floor])
                .map_err(sqlite("purge rows"))
        })?;
    }
    if let Some(before) = cutoffs.deliveries_before_ms {
        let floor = super::ulid_id_floor("dlv_", before);
        purged.deliveries =
            in_chunks(|| super::sqlite_delivery::purge_done(&conn, &floor, PURGE_CHUNK))?;
    }
    Ok(purged)
}

/// Runs `chunk` (one autocommit statement) until it changes fewer rows than
/// a full chunk; returns the total.
fn in_chunks(mut chunk: impl FnMut() -> Result<usize, StoreError>) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let done = chunk()?;
        total += done as u64;
        if (done as i64) < PURGE_CHUNK {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, ulid_id_floor, EventId, StoreConfig};

    #[test]
    fn ids_carry_their_receive_time_and_the_floor_splits_them() {
        let id = EventId::received_at(1_700_000_000_123);
        let ulid = ulid::Ulid::from_string(&id.as_str()["evt_".len()..]).unwrap();
        assert_eq!(ulid.timestamp_ms(), 1_700_000_000_123);
        assert!(id.as_str() >= ulid_id_floor("evt_", 1_700_000_000_123).as_str());
        assert!(id.as_str() < ulid_id_floor("evt_", 1_700_000_000_124).as_str());
        assert!(id.as_str() < id_floor(1_700_000_000_123).as_str());
    }

    #[test]
    fn ids_of_one_millisecond_increase_in_the_order_they_are_made() {
        // Far ahead of every other test's time (year 2255), so none of them
        // moves the latest millisecond past this one while it runs.
        const MS: i64 = 9_000_000_000_000;
        let ids: Vec<EventId> = (0..100).map(|_| EventId::received_at(MS)).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in &ids {
            let ulid = ulid::Ulid::from_string(&id.as_str()["evt_".len()..]).unwrap();
            assert_eq!(ulid.timestamp_ms(), MS as u64);
        }
    }

    /// Both purges search the primary key's index by id: no table scan,
    /// and no index on `received_at_ms` for inserts to keep up.
    #[tokio::test]
    async fn the_purges_walk_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let store = open(&StoreConfig {
            url: format!("sqlite://{}", path.display()),
            sqlite_synchronous: Default::default(),
            group_commit: Default::default(),
            retention: Default::default(),
        })
        .await
        .unwrap();
        store.close().await;
        let conn = rusqlite::Connection::open(&path).unwrap();
        for query in [PURGE_BODIES, PURGE_ROWS] {
            let mut plan = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap();
            let unbound = vec![rusqlite::types::Null; plan.parameter_count()];
            let steps: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(unbound), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                steps
                    .iter()
                    .any(|s| s
                        .contains("SEARCH events USING INDEX sqlite_autoindex_events_1 (id<?)")),
                "{query}: {steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s.starts_with("SCAN events")),
                "{steps:?}"
            );
        }
        let received_at_indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
                 AND sql LIKE '%received_at_ms%'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(received_at_indexes, 0);
    }
}
