//! Dispatch on SQLite: claims and outcomes run on the writer thread (as
//! jobs between ingest batches, so they never wait on the file lock against
//! ingest); reads use the read pool.

use rusqlite::{params, Connection, TransactionBehavior};
use sqlx::SqlitePool;

use super::dispatch::{
    delivery_columns, encode_delivery_headers, DeliveryRow, DispatchOutcome, RunRow,
};
use super::row::{event_columns, EventRow};
use super::sqlite_writer::sqlite;
use super::{Backlog, DeliveryRecord, EventId, PluginRunRecord, StoreError, StoredEvent};

const BACKEND: &str = "sqlite";

const CLAIM: &str = concat!(
    "UPDATE events SET dispatch_at_ms = ?1 WHERE id IN (SELECT id FROM events \
     WHERE status = 'received' AND dispatch_at_ms <= ?2 ORDER BY dispatch_at_ms LIMIT ?3) \
     RETURNING ",
    event_columns!()
);

/// Only an event still `received` moves on: the first finisher wins.
const FINISH_EVENT: &str = "UPDATE events SET status = ?1, status_reason = ?2, \
    dispatch_attempts = dispatch_attempts + 1, dispatch_at_ms = ?3 \
    WHERE id = ?4 AND status = 'received'";

const INSERT_RUN: &str = "INSERT INTO plugin_runs \
    (id, event_id, plugin, version, outcome, reason, fuel_used, duration_us, actions, ran_at_ms) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const INSERT_DELIVERY: &str = "INSERT INTO deliveries \
    (id, event_id, run_id, seq, sink, payload, headers, subject_suffix, msg_key, \
     next_attempt_at_ms, created_at_ms, source, event_at_ms) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// [`super::Store::claim_due_events`], on the writer's connection.
pub(super) fn claim(
    conn: &mut Connection,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut statement = conn
        .prepare_cached(CLAIM)
        .map_err(sqlite("prepare claim"))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement
        .query_map(
            params![now_ms.saturating_add(lease_ms), now_ms, limit],
            |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    idem_key: r.get(2)?,
                    method: r.get(3)?,
                    path: r.get(4)?,
                    headers: r.get(5)?,
                    body: r.get(6)?,
                    received_at_ms: r.get(7)?,
                    verification: r.get(8)?,
                    status: r.get(9)?,
                    body_purged_at_ms: r.get(10)?,
                    dispatch_attempts: r.get(11)?,
                    status_reason: r.get(12)?,
                })
            },
        )
        .map_err(sqlite("claim events"))?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.map_err(sqlite("read claimed event"))?.decode(BACKEND)?);
    }
    // RETURNING gives no order; dispatch takes the oldest first.
    events.sort_by(|a, b| (a.received_at_ms, &a.id).cmp(&(b.received_at_ms, &b.id)));
    Ok(events)
}

/// [`super::Store::finish_dispatch`], on the writer's connection: one
/// IMMEDIATE transaction for all of `outcomes`.
pub(super) fn finish(
    conn: &mut Connection,
    outcomes: &[DispatchOutcome],
) -> Result<Vec<bool>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("begin"))?;
    let mut applied = Vec::with_capacity(outcomes.len());
    {
        let mut event = tx
            .prepare_cached(FINISH_EVENT)
            .map_err(sqlite("prepare finish"))?;
        let mut run = tx
            .prepare_cached(INSERT_RUN)
            .map_err(sqlite("prepare run insert"))?;
        let mut delivery = tx
            .prepare_cached(INSERT_DELIVERY)
            .map_err(sqlite("prepare delivery insert"))?;
        for o in outcomes {
            let changed = event
                .execute(params![
                    o.outcome.status(),
                    o.outcome.reason(),
                    o.due_at_ms(),
                    o.event_id.as_str()
                ])
                .map_err(sqlite("finish event"))?;
            applied.push(changed > 0);
            if changed == 0 {
                continue;
            }
            if let Some(r) = &o.run {
                run.execute(params![
                    r.id,
                    o.event_id.as_str(),
                    r.plugin,
                    r.version,
                    o.outcome.run_outcome(),
                    o.outcome.reason(),
                    i64::try_from(r.fuel_used).unwrap_or(i64::MAX),
                    i64::try_from(r.duration_us).unwrap_or(i64::MAX),
                    r.actions,
                    r.ran_at_ms,
                ])
                .map_err(sqlite("insert plugin run"))?;
            }
            for d in &o.deliveries {
                delivery
                    .execute(params![
                        d.id,
                        o.event_id.as_str(),
                        o.run.as_ref().map(|r| r.id.as_str()),
                        d.seq,
                        d.sink,
                        d.payload,
                        encode_delivery_headers(&d.headers),
                        d.subject_suffix,
                        d.key,
                        d.leased_until_ms.unwrap_or(o.at_ms),
                        o.at_ms,
                        o.source,
                        o.event_at_ms,
                    ])
                    .map_err(sqlite("insert delivery"))?;
            }
        }
    }
    tx.commit().map_err(sqlite("commit"))?;
    Ok(applied)
}

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

pub(super) async fn plugin_runs(
    pool: &SqlitePool,
    event: &EventId,
) -> Result<Vec<PluginRunRecord>, StoreError> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT id, plugin, version, outcome, reason, fuel_used, duration_us, actions, ran_at_ms \
         FROM plugin_runs WHERE event_id = ? ORDER BY ran_at_ms, id",
    )
    .bind(event.as_str())
    .fetch_all(pool)
    .await
    .map_err(db("read plugin runs"))?;
    Ok(rows.into_iter().map(RunRow::into_record).collect())
}

pub(super) async fn deliveries(
    pool: &SqlitePool,
    event: &EventId,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE event_id = ? ORDER BY created_at_ms, seq"
    ))
    .bind(event.as_str())
    .fetch_all(pool)
    .await
    .map_err(db("read deliveries"))?;
    Ok(rows.into_iter().map(DeliveryRow::into_record).collect())
}

pub(super) async fn backlog(pool: &SqlitePool) -> Result<Backlog, StoreError> {
    let (undispatched, pending, dead): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM events WHERE status = 'received'), \
                (SELECT COUNT(*) FROM deliveries WHERE status = 'pending'), \
                (SELECT COUNT(*) FROM deliveries WHERE status = 'dead')",
    )
    .fetch_one(pool)
    .await
    .map_err(db("count backlog"))?;
    Ok(Backlog {
        undispatched: u64::try_from(undispatched).unwrap_or_default(),
        pending_deliveries: u64::try_from(pending).unwrap_or_default(),
        dead_deliveries: u64::try_from(dead).unwrap_or_default(),
    })
}
