//! Delivery on SQLite: claims, attempt results and bulk changes run on the
//! writer thread (as jobs between ingest batches, never waiting on the
//! file lock against ingest); lists and histories use the read pool.

use rusqlite::{params, Connection, TransactionBehavior};
use sqlx::SqlitePool;

use super::delivery::{
    claim_columns, AttemptRecord, AttemptRow, ClaimRow, ClaimedDelivery, DeadDelivery, DeadQuery,
    DeadRow, DeliveryResult, ReplayChunk, BULK_CHUNK,
};
use super::dispatch::{delivery_columns, DeliveryRow};
use super::sqlite_writer::sqlite;
use super::{DeliveryRecord, StoreError};

const BACKEND: &str = "sqlite";

const CLAIM: &str = concat!(
    "UPDATE deliveries SET next_attempt_at_ms = ?1 WHERE id IN (SELECT id FROM deliveries \
     WHERE status = 'pending' AND sink = ?2 AND next_attempt_at_ms <= ?3 \
     ORDER BY next_attempt_at_ms LIMIT ?4) RETURNING ",
    claim_columns!()
);

/// Only a delivery still `pending` takes a result, and only the first
/// result of an attempt number: after an expired lease two workers may
/// both have tried it, and the slower one must not overwrite the other.
const FINISH: &str = "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at_ms = ?3, \
    last_error = ?4, finished_at_ms = ?5 WHERE id = ?6 AND status = 'pending' AND attempts < ?2";

const INSERT_ATTEMPT: &str = "INSERT OR REPLACE INTO delivery_attempts \
    (delivery_id, attempt, at_ms, duration_us, outcome, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

const RELEASE: &str =
    "UPDATE deliveries SET next_attempt_at_ms = ?1 WHERE id = ?2 AND status = 'pending'";

const RETRY_ONE: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?1, \
    round_start = attempts, finished_at_ms = NULL WHERE id = ?2 AND status = 'dead'";

const RETRY_CHUNK: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = ?1, \
    round_start = attempts, finished_at_ms = NULL WHERE id IN (SELECT id FROM deliveries \
    WHERE status = 'dead' AND finished_at_ms <= ?1 AND (?2 IS NULL OR sink = ?2) LIMIT ?3)";

const REPLAY_CHUNK: &str = "UPDATE events SET status = 'received', \
    status_reason = 'replay requested', dispatch_at_ms = ?1 \
    WHERE id IN (SELECT id FROM events WHERE id > ?2 AND status <> 'received' \
      AND body_purged_at_ms IS NULL AND (?3 IS NULL OR source = ?3) \
      AND (?4 IS NULL OR received_at_ms >= ?4) AND (?5 IS NULL OR received_at_ms < ?5) \
      AND (?6 IS NULL OR status = ?6) AND (?8 IS NULL OR id = ?8) ORDER BY id LIMIT ?7) \
    RETURNING id";

const PURGE_DONE: &str = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
    WHERE id < ?1 AND status = 'done' LIMIT ?2)";

/// [`super::Store::claim_deliveries`], on the writer's connection.
pub(super) fn claim(
    conn: &mut Connection,
    sink: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let mut statement = conn
        .prepare_cached(CLAIM)
        .map_err(sqlite("prepare delivery claim"))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(
            params![now_ms.saturating_add(lease_ms), sink, now_ms, limit],
            |r| {
                Ok(ClaimRow {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    source: r.get(2)?,
                    event_at_ms: r.get(3)?,
                    sink: r.get(4)?,
                    payload: r.get(5)?,
                    headers: r.get(6)?,
                    subject_suffix: r.get(7)?,
                    msg_key: r.get(8)?,
                    attempts: r.get(9)?,
                    round_start: r.get(10)?,
                })
            },
        )
        .map_err(sqlite("claim deliveries"))?;
    let mut claimed = Vec::new();
    for row in rows {
        claimed.push(
            row.map_err(sqlite("read claimed delivery"))?
                .decode(BACKEND)?,
        );
    }
    // RETURNING gives no order; ids are ULIDs, so this is creation order.
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// [`super::Store::finish_deliveries`]: one IMMEDIATE transaction.
pub(super) fn finish(
    conn: &mut Connection,
    results: &[DeliveryResult],
) -> Result<usize, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("begin"))?;
    let mut applied = 0;
    {
        let mut finish = tx
            .prepare_cached(FINISH)
            .map_err(sqlite("prepare delivery finish"))?;
        let mut attempt = tx
            .prepare_cached(INSERT_ATTEMPT)
            .map_err(sqlite("prepare attempt insert"))?;
        for r in results {
            let changed = finish
                .execute(params![
                    r.outcome.status(),
                    r.attempt,
                    r.next_attempt_at_ms(),
                    r.outcome.error(),
                    r.finished_at_ms(),
                    r.id,
                ])
                .map_err(sqlite("finish delivery"))?;
            if changed == 0 {
                continue;
            }
            applied += 1;
            if let Some(error) = r.outcome.error() {
                attempt
                    .execute(params![
                        r.id,
                        r.attempt,
                        r.at_ms,
                        i64::try_from(r.duration_us).unwrap_or(i64::MAX),
                        r.outcome.history_outcome(),
                        error,
                    ])
                    .map_err(sqlite("insert delivery attempt"))?;
            }
        }
    }
    tx.commit().map_err(sqlite("commit"))?;
    Ok(applied)
}

/// [`super::Store::release_deliveries`].
pub(super) fn release(
    conn: &mut Connection,
    ids: &[String],
    now_ms: i64,
) -> Result<usize, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("begin"))?;
    let mut released = 0;
    {
        let mut release = tx
            .prepare_cached(RELEASE)
            .map_err(sqlite("prepare release"))?;
        for id in ids {
            released += release
                .execute(params![now_ms, id])
                .map_err(sqlite("release delivery"))?;
        }
    }
    tx.commit().map_err(sqlite("commit"))?;
    Ok(released)
}

/// One dead letter back to `pending`; 1 if it was dead.
pub(super) fn retry_one(conn: &mut Connection, id: &str, now_ms: i64) -> Result<u64, StoreError> {
    let changed = conn
        .execute(RETRY_ONE, params![now_ms, id])
        .map_err(sqlite("retry dead delivery"))?;
    Ok(changed as u64)
}

/// Up to [`BULK_CHUNK`] dead letters (of `sink`, or any) back to `pending`.
pub(super) fn retry_chunk(
    conn: &mut Connection,
    sink: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    let changed = conn
        .execute(RETRY_CHUNK, params![now_ms, sink, BULK_CHUNK])
        .map_err(sqlite("retry dead deliveries"))?;
    Ok(changed as u64)
}

/// Queues up to `chunk.limit` events after `chunk.after_id` (id order) for
/// dispatch again; returns their ids.
pub(super) fn replay_chunk(
    conn: &mut Connection,
    chunk: &ReplayChunk,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let mut statement = conn
        .prepare_cached(REPLAY_CHUNK)
        .map_err(sqlite("prepare replay"))?;
    let ids = statement
        .query_map(
            params![
                now_ms,
                chunk.after_id,
                chunk.source,
                chunk.since_ms,
                chunk.until_ms,
                chunk.status,
                chunk.limit,
                chunk.only_id,
            ],
            |r| r.get::<_, String>(0),
        )
        .map_err(sqlite("replay events"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sqlite("read replayed id"))?;
    Ok(ids)
}

/// Deletes up to `limit` done deliveries created before `floor_id`'s time.
pub(super) fn purge_done(
    conn: &Connection,
    floor_id: &str,
    limit: i64,
) -> Result<usize, StoreError> {
    conn.execute(PURGE_DONE, params![floor_id, limit])
        .map_err(sqlite("purge deliveries"))
}

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

pub(super) async fn dead(
    pool: &SqlitePool,
    query: &DeadQuery,
) -> Result<Vec<DeadDelivery>, StoreError> {
    let rows: Vec<DeadRow> = sqlx::query_as(
        "SELECT id, event_id, source, sink, attempts, last_error, created_at_ms, finished_at_ms \
         FROM deliveries WHERE status = 'dead' AND (?1 IS NULL OR sink = ?1) \
         ORDER BY finished_at_ms DESC, id DESC LIMIT ?2",
    )
    .bind(query.sink.as_deref())
    .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db("list dead deliveries"))?;
    Ok(rows.into_iter().map(DeadRow::into_record).collect())
}

pub(super) async fn attempts(
    pool: &SqlitePool,
    delivery: &str,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, at_ms, duration_us, outcome, error FROM delivery_attempts \
         WHERE delivery_id = ? ORDER BY attempt",
    )
    .bind(delivery)
    .fetch_all(pool)
    .await
    .map_err(db("read delivery attempts"))?;
    Ok(rows.into_iter().map(AttemptRow::into_record).collect())
}

pub(super) async fn get(pool: &SqlitePool, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
    let row: Option<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = ?"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db("get delivery"))?;
    Ok(row.map(DeliveryRow::into_record))
}
