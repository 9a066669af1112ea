//! Delivery on Postgres: several router processes claim from one database
//! with `FOR UPDATE SKIP LOCKED` (claimers never wait on each other and
//! never take the same delivery while its lease runs); results apply only
//! to a delivery still `pending`.

use std::collections::HashSet;

use sqlx::PgPool;

use super::delivery::{
    claim_columns, AttemptRecord, AttemptRow, ClaimRow, ClaimedDelivery, DeadDelivery, DeadQuery,
    DeadRow, DeliveryResult, ReplayChunk, BULK_CHUNK,
};
use super::dispatch::{delivery_columns, DeliveryRow};
use super::postgres_batch::{column, rounds};
use super::{DeliveryRecord, StoreError};

const BACKEND: &str = "postgres";

const CLAIM: &str = concat!(
    "UPDATE deliveries SET next_attempt_at_ms = $1 WHERE id IN (SELECT id FROM deliveries \
     WHERE status = 'pending' AND sink = $2 AND next_attempt_at_ms <= $3 \
     ORDER BY next_attempt_at_ms LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING ",
    claim_columns!()
);

/// See `sqlite_delivery::FINISH`: first result of an attempt number wins.
/// A batch's rows go as one array per column (one round trip for all of
/// them, where a statement per row capped delivery on Postgres at a few
/// thousand a second); returns the ids it applied to.
const FINISH: &str = "UPDATE deliveries AS d SET status = u.status, attempts = u.attempt, \
    next_attempt_at_ms = u.next_at, last_error = u.error, finished_at_ms = u.finished_at \
    FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[]) \
      AS u (id, status, attempt, next_at, error, finished_at) \
    WHERE d.id = u.id AND d.status = 'pending' AND d.attempts < u.attempt \
    RETURNING d.id";

const INSERT_ATTEMPTS: &str = "INSERT INTO delivery_attempts \
    (delivery_id, attempt, at_ms, duration_us, outcome, error) \
    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[]) \
    ON CONFLICT (delivery_id, attempt) DO UPDATE SET at_ms = EXCLUDED.at_ms, \
    duration_us = EXCLUDED.duration_us, outcome = EXCLUDED.outcome, error = EXCLUDED.error";

const RELEASE: &str = "UPDATE deliveries SET next_attempt_at_ms = $1 \
    WHERE id = ANY($2) AND status = 'pending'";

const RETRY_ONE: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $1, \
    round_start = attempts, finished_at_ms = NULL WHERE id = $2 AND status = 'dead'";

const RETRY_CHUNK: &str = "UPDATE deliveries SET status = 'pending', next_attempt_at_ms = $1, \
    round_start = attempts, finished_at_ms = NULL WHERE id IN (SELECT id FROM deliveries \
    WHERE status = 'dead' AND finished_at_ms <= $1 AND ($2::text IS NULL OR sink = $2) \
    LIMIT $3 FOR UPDATE SKIP LOCKED)";

const REPLAY_CHUNK: &str = "UPDATE events SET status = 'received', \
    status_reason = 'replay requested', dispatch_at_ms = $1 \
    WHERE id IN (SELECT id FROM events WHERE id > $2 AND status <> 'received' \
      AND body_purged_at_ms IS NULL AND ($3::text IS NULL OR source = $3) \
      AND ($4::bigint IS NULL OR received_at_ms >= $4) \
      AND ($5::bigint IS NULL OR received_at_ms < $5) \
      AND ($6::text IS NULL OR status = $6) AND ($8::text IS NULL OR id = $8) \
      ORDER BY id LIMIT $7 FOR UPDATE SKIP LOCKED) \
    RETURNING id";

const PURGE_DONE: &str = "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries \
    WHERE created_at_ms < $1 AND status = 'done' LIMIT $2 FOR UPDATE SKIP LOCKED)";

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

pub(super) async fn claim(
    pool: &PgPool,
    sink: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let rows: Vec<ClaimRow> = sqlx::query_as(CLAIM)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(sink)
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(db("claim deliveries"))?;
    let mut claimed = rows
        .into_iter()
        .map(|r| r.decode(BACKEND))
        .collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(claimed)
}

/// Applies a batch of attempt results in one transaction, a statement per
/// table for all of them; a delivery twice in the batch in a later round
/// (`postgres_batch`), as if one by one.
pub(super) async fn finish(pool: &PgPool, results: &[DeliveryResult]) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let mut applied = 0;
    for round in rounds(results.iter().map(|r| r.id.as_str())) {
        let batch: Vec<&DeliveryResult> = round.iter().map(|&i| &results[i]).collect();
        let changed: Vec<String> = sqlx::query_scalar(FINISH)
            .bind(column(&batch, |r| r.id.as_str()))
            .bind(column(&batch, |r| r.outcome.status()))
            .bind(column(&batch, |r| i64::from(r.attempt)))
            .bind(column(&batch, |r| r.next_attempt_at_ms()))
            .bind(column(&batch, |r| r.outcome.error()))
            .bind(column(&batch, |r| r.finished_at_ms()))
            .fetch_all(&mut *tx)
            .await
            .map_err(db("finish deliveries"))?;
        applied += changed.len();
        let changed: HashSet<&str> = changed.iter().map(String::as_str).collect();
        let failed: Vec<&DeliveryResult> = batch
            .into_iter()
            .filter(|r| r.outcome.error().is_some() && changed.contains(r.id.as_str()))
            .collect();
        if failed.is_empty() {
            continue;
        }
        sqlx::query(INSERT_ATTEMPTS)
            .bind(column(&failed, |r| r.id.as_str()))
            .bind(column(&failed, |r| i64::from(r.attempt)))
            .bind(column(&failed, |r| r.at_ms))
            .bind(column(&failed, |r| {
                i64::try_from(r.duration_us).unwrap_or(i64::MAX)
            }))
            .bind(column(&failed, |r| r.outcome.history_outcome()))
            .bind(column(&failed, |r| r.outcome.error()))
            .execute(&mut *tx)
            .await
            .map_err(db("insert delivery attempts"))?;
    }
    tx.commit().await.map_err(db("commit"))?;
    Ok(applied)
}

pub(super) async fn release(
    pool: &PgPool,
    ids: &[String],
    now_ms: i64,
) -> Result<usize, StoreError> {
    let released = sqlx::query(RELEASE)
        .bind(now_ms)
        .bind(ids)
        .execute(pool)
        .await
        .map_err(db("release deliveries"))?
        .rows_affected();
    Ok(usize::try_from(released).unwrap_or(usize::MAX))
}

pub(super) async fn retry_one(pool: &PgPool, id: &str, now_ms: i64) -> Result<u64, StoreError> {
    Ok(sqlx::query(RETRY_ONE)
        .bind(now_ms)
        .bind(id)
        .execute(pool)
        .await
        .map_err(db("retry dead delivery"))?
        .rows_affected())
}

pub(super) async fn retry_chunk(
    pool: &PgPool,
    sink: Option<&str>,
    now_ms: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(RETRY_CHUNK)
        .bind(now_ms)
        .bind(sink)
        .bind(BULK_CHUNK)
        .execute(pool)
        .await
        .map_err(db("retry dead deliveries"))?
        .rows_affected())
}

pub(super) async fn replay_chunk(
    pool: &PgPool,
    chunk: &ReplayChunk,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(REPLAY_CHUNK)
        .bind(now_ms)
        .bind(&chunk.after_id)
        .bind(&chunk.source)
        .bind(chunk.since_ms)
        .bind(chunk.until_ms)
        .bind(&chunk.status)
        .bind(chunk.limit)
        .bind(&chunk.only_id)
        .fetch_all(pool)
        .await
        .map_err(db("replay events"))
}

pub(super) async fn purge_done(
    pool: &PgPool,
    before_ms: i64,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(PURGE_DONE)
        .bind(before_ms)
        .bind(limit)
        .execute(pool)
        .await
        .map_err(db("purge deliveries"))?
        .rows_affected())
}

pub(super) async fn dead(
    pool: &PgPool,
    query: &DeadQuery,
) -> Result<Vec<DeadDelivery>, StoreError> {
    let rows: Vec<DeadRow> = sqlx::query_as(
        "SELECT id, event_id, source, sink, attempts, last_error, created_at_ms, finished_at_ms \
         FROM deliveries WHERE status = 'dead' AND ($1::text IS NULL OR sink = $1) \
         ORDER BY finished_at_ms DESC, id DESC LIMIT $2",
    )
    .bind(query.sink.as_deref())
    .bind(i64::try_from(query.limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db("list dead deliveries"))?;
    Ok(rows.into_iter().map(DeadRow::into_record).collect())
}

pub(super) async fn attempts(
    pool: &PgPool,
    delivery: &str,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "SELECT attempt, at_ms, duration_us, outcome, error FROM delivery_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery)
    .fetch_all(pool)
    .await
    .map_err(db("read delivery attempts"))?;
    Ok(rows.into_iter().map(AttemptRow::into_record).collect())
}

pub(super) async fn get(pool: &PgPool, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
    let row: Option<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(db("get delivery"))?;
    Ok(row.map(DeliveryRow::into_record))
}
