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
const PURGE_BODIES: &str = "\
    UPDATE events SET body = x'', headers = '[]', body_purged_at_ms = ?1 \
    WHERE rowid IN (SELECT rowid FROM events \
                    WHERE received_at_ms < ?2 AND body_purged_at_ms IS NULL \
                      AND status <> 'received' LIMIT ?3)";

/// The rows, and with them the keys, runs, deliveries and attempts; never
/// an event still waiting for dispatch or with a delivery still pending.
const PURGE_ROWS: &str = "\
    DELETE FROM events \
    WHERE rowid IN (SELECT rowid FROM events WHERE received_at_ms < ?1 \
                      AND status <> 'received' \
                      AND NOT EXISTS (SELECT 1 FROM deliveries d \
                                      WHERE d.event_id = events.id AND d.status = 'pending') \
                    LIMIT ?2)";

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
        purged.bodies = in_chunks(|| {
            conn.execute(PURGE_BODIES, params![cutoffs.now_ms, before, PURGE_CHUNK])
                .map_err(sqlite("purge bodies"))
        })?;
    }
    if let Some(before) = cutoffs.rows_before_ms {
        purged.rows = in_chunks(|| {
            conn.execute(PURGE_ROWS, params![before, PURGE_CHUNK])
                .map_err(sqlite("purge rows"))
        })?;
    }
    if let Some(before) = cutoffs.deliveries_before_ms {
        let floor = super::delivery::delivery_id_floor(before);
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
