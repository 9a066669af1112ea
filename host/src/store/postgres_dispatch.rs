//! Dispatch on Postgres: several router processes may sweep one database,
//! so a claim locks its rows with `FOR UPDATE SKIP LOCKED` (claimers never
//! wait on each other and never take the same event), and an outcome
//! applies only to an event still `received`.

use std::collections::HashSet;

use sqlx::PgPool;

use super::dispatch::{
    delivery_columns, encode_delivery_headers, DeliveryRow, DispatchOutcome, NewDelivery,
    NewPluginRun, RunRow,
};
use super::postgres_batch::{column, rounds};
use super::row::{event_columns, EventRow};
use super::{Backlog, DeliveryRecord, EventId, PluginRunRecord, StoreError, StoredEvent};

const BACKEND: &str = "postgres";

const CLAIM: &str = concat!(
    "UPDATE events SET dispatch_at_ms = $1 WHERE id IN (SELECT id FROM events \
     WHERE status = 'received' AND dispatch_at_ms <= $2 ORDER BY dispatch_at_ms LIMIT $3 \
     FOR UPDATE SKIP LOCKED) RETURNING ",
    event_columns!()
);

// A batch of outcomes is three statements whatever its size, the rows
// passed as one array per column: a statement per row cost a round trip to
// Postgres each (three per event), which capped dispatch at ~2,200
// events/s end to end (bench/README.md, "File sink group commit").

/// Each event's outcome, applied only if it is still `received`; returns
/// the ids it applied to.
const FINISH_EVENTS: &str = "UPDATE events AS e SET status = u.status, \
    status_reason = u.reason, dispatch_attempts = e.dispatch_attempts + 1, \
    dispatch_at_ms = u.due \
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u (id, status, reason, due) \
    WHERE e.id = u.id AND e.status = 'received' \
    RETURNING e.id";

const INSERT_RUNS: &str = "INSERT INTO plugin_runs \
    (id, event_id, plugin, version, outcome, reason, fuel_used, duration_us, actions, ran_at_ms) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
    $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::bigint[])";

const INSERT_DELIVERIES: &str = "INSERT INTO deliveries \
    (id, event_id, run_id, seq, sink, payload, headers, subject_suffix, msg_key, \
     next_attempt_at_ms, created_at_ms, source, event_at_ms) \
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
    $6::bytea[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], \
    $12::text[], $13::bigint[])";

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

pub(super) async fn claim(
    pool: &PgPool,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(CLAIM)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(db("claim events"))?;
    let mut events = rows
        .into_iter()
        .map(|r| r.decode(BACKEND))
        .collect::<Result<Vec<_>, _>>()?;
    events.sort_by(|a, b| (a.received_at_ms, &a.id).cmp(&(b.received_at_ms, &b.id)));
    Ok(events)
}

/// Writes a batch of outcomes in one transaction: the events' outcomes
/// (each only if the event is still `received`: the first finisher wins),
/// then the plugin runs and deliveries of those that applied; an event
/// twice in the batch in a later round (`postgres_batch`), as if one by one.
pub(super) async fn finish(
    pool: &PgPool,
    outcomes: &[DispatchOutcome],
) -> Result<Vec<bool>, StoreError> {
    let mut applied = vec![false; outcomes.len()];
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    for round in rounds(outcomes.iter().map(|o| o.event_id.as_str())) {
        let batch: Vec<&DispatchOutcome> = round.iter().map(|&i| &outcomes[i]).collect();
        let changed: Vec<String> = sqlx::query_scalar(FINISH_EVENTS)
            .bind(column(&batch, |o| o.event_id.as_str()))
            .bind(column(&batch, |o| o.outcome.status()))
            .bind(column(&batch, |o| o.outcome.reason()))
            .bind(column(&batch, |o| o.due_at_ms()))
            .fetch_all(&mut *tx)
            .await
            .map_err(db("finish events"))?;
        let changed: HashSet<&str> = changed.iter().map(String::as_str).collect();
        let mut won = Vec::with_capacity(round.len());
        for i in round {
            if changed.contains(outcomes[i].event_id.as_str()) {
                applied[i] = true;
                won.push(&outcomes[i]);
            }
        }
        insert_runs(&mut tx, &won).await?;
        insert_deliveries(&mut tx, &won).await?;
    }
    tx.commit().await.map_err(db("commit"))?;
    Ok(applied)
}

async fn insert_runs(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    won: &[&DispatchOutcome],
) -> Result<(), StoreError> {
    let runs: Vec<(&DispatchOutcome, &NewPluginRun)> = won
        .iter()
        .filter_map(|o| o.run.as_ref().map(|r| (*o, r)))
        .collect();
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_RUNS)
        .bind(column(&runs, |(_, r)| r.id.as_str()))
        .bind(column(&runs, |(o, _)| o.event_id.as_str()))
        .bind(column(&runs, |(_, r)| r.plugin.as_str()))
        .bind(column(&runs, |(_, r)| r.version.as_str()))
        .bind(column(&runs, |(o, _)| o.outcome.run_outcome()))
        .bind(column(&runs, |(o, _)| o.outcome.reason()))
        .bind(column(&runs, |(_, r)| {
            i64::try_from(r.fuel_used).unwrap_or(i64::MAX)
        }))
        .bind(column(&runs, |(_, r)| {
            i64::try_from(r.duration_us).unwrap_or(i64::MAX)
        }))
        .bind(column(&runs, |(_, r)| r.actions.as_str()))
        .bind(column(&runs, |(_, r)| r.ran_at_ms))
        .execute(&mut **tx)
        .await
        .map_err(db("insert plugin runs"))?;
    Ok(())
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    won: &[&DispatchOutcome],
) -> Result<(), StoreError> {
    let rows: Vec<(&DispatchOutcome, &NewDelivery)> = won
        .iter()
        .flat_map(|o| o.deliveries.iter().map(move |d| (*o, d)))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_DELIVERIES)
        .bind(column(&rows, |(_, d)| d.id.as_str()))
        .bind(column(&rows, |(o, _)| o.event_id.as_str()))
        .bind(column(&rows, |(o, _)| {
            o.run.as_ref().map(|r| r.id.as_str())
        }))
        .bind(column(&rows, |(_, d)| i64::from(d.seq)))
        .bind(column(&rows, |(_, d)| d.sink.as_str()))
        .bind(column(&rows, |(_, d)| d.payload.as_slice()))
        .bind(column(&rows, |(_, d)| encode_delivery_headers(&d.headers)))
        .bind(column(&rows, |(_, d)| d.subject_suffix.as_deref()))
        .bind(column(&rows, |(_, d)| d.key.as_deref()))
        .bind(column(&rows, |(o, d)| d.leased_until_ms.unwrap_or(o.at_ms)))
        .bind(column(&rows, |(o, _)| o.at_ms))
        .bind(column(&rows, |(o, _)| o.source.as_str()))
        .bind(column(&rows, |(o, _)| o.event_at_ms))
        .execute(&mut **tx)
        .await
        .map_err(db("insert deliveries"))?;
    Ok(())
}

pub(super) async fn plugin_runs(
    pool: &PgPool,
    event: &EventId,
) -> Result<Vec<PluginRunRecord>, StoreError> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT id, plugin, version, outcome, reason, fuel_used, duration_us, actions, ran_at_ms \
         FROM plugin_runs WHERE event_id = $1 ORDER BY ran_at_ms, id",
    )
    .bind(event.as_str())
    .fetch_all(pool)
    .await
    .map_err(db("read plugin runs"))?;
    Ok(rows.into_iter().map(RunRow::into_record).collect())
}

pub(super) async fn deliveries(
    pool: &PgPool,
    event: &EventId,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows: Vec<DeliveryRow> = sqlx::query_as(concat!(
        "SELECT ",
        delivery_columns!(),
        " FROM deliveries WHERE event_id = $1 ORDER BY created_at_ms, seq"
    ))
    .bind(event.as_str())
    .fetch_all(pool)
    .await
    .map_err(db("read deliveries"))?;
    Ok(rows.into_iter().map(DeliveryRow::into_record).collect())
}

pub(super) async fn backlog(pool: &PgPool) -> Result<Backlog, StoreError> {
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
