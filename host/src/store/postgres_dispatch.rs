//! Dispatch on Postgres: several router processes may sweep one database,
//! so a claim locks its rows with `FOR UPDATE SKIP LOCKED` (claimers never
//! wait on each other and never take the same event), and an outcome
//! applies only to an event still `received`.

use sqlx::PgPool;

use super::dispatch::{
    delivery_columns, encode_delivery_headers, DeliveryRow, DispatchOutcome, RunRow,
};
use super::row::{event_columns, EventRow};
use super::{
    Backlog, DeliveryRecord, EventId, EventOutcome, PluginRunRecord, StoreError, StoredEvent,
};

const BACKEND: &str = "postgres";

const CLAIM: &str = concat!(
    "UPDATE events SET dispatch_at_ms = $1 WHERE id IN (SELECT id FROM events \
     WHERE status = 'received' AND dispatch_at_ms <= $2 ORDER BY dispatch_at_ms LIMIT $3 \
     FOR UPDATE SKIP LOCKED) RETURNING ",
    event_columns!()
);

const FINISH_EVENT: &str = "UPDATE events SET status = $1, status_reason = $2, \
    dispatch_attempts = dispatch_attempts + 1, dispatch_at_ms = $3 \
    WHERE id = $4 AND status = 'received'";

const INSERT_RUN: &str = "INSERT INTO plugin_runs \
    (id, event_id, plugin, version, outcome, reason, fuel_used, duration_us, actions, ran_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

const INSERT_DELIVERY: &str = "INSERT INTO deliveries \
    (id, event_id, run_id, seq, sink, payload, headers, subject_suffix, msg_key, \
     next_attempt_at_ms, created_at_ms, source, event_at_ms) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

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

pub(super) async fn finish(
    pool: &PgPool,
    outcomes: &[DispatchOutcome],
) -> Result<Vec<bool>, StoreError> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    let mut applied = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let due = match &o.outcome {
            EventOutcome::Retry { at_ms, .. } => *at_ms,
            _ => o.at_ms,
        };
        let changed = sqlx::query(FINISH_EVENT)
            .bind(o.outcome.status())
            .bind(o.outcome.reason())
            .bind(due)
            .bind(o.event_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db("finish event"))?
            .rows_affected();
        applied.push(changed > 0);
        if changed == 0 {
            continue;
        }
        if let Some(r) = &o.run {
            sqlx::query(INSERT_RUN)
                .bind(&r.id)
                .bind(o.event_id.as_str())
                .bind(&r.plugin)
                .bind(&r.version)
                .bind(o.outcome.run_outcome())
                .bind(o.outcome.reason())
                .bind(i64::try_from(r.fuel_used).unwrap_or(i64::MAX))
                .bind(i64::try_from(r.duration_us).unwrap_or(i64::MAX))
                .bind(&r.actions)
                .bind(r.ran_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(db("insert plugin run"))?;
        }
        for d in &o.deliveries {
            sqlx::query(INSERT_DELIVERY)
                .bind(&d.id)
                .bind(o.event_id.as_str())
                .bind(o.run.as_ref().map(|r| r.id.as_str()))
                .bind(i64::from(d.seq))
                .bind(&d.sink)
                .bind(&d.payload)
                .bind(encode_delivery_headers(&d.headers))
                .bind(&d.subject_suffix)
                .bind(&d.key)
                .bind(d.leased_until_ms.unwrap_or(o.at_ms))
                .bind(o.at_ms)
                .bind(&o.source)
                .bind(o.event_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(db("insert delivery"))?;
        }
    }
    tx.commit().await.map_err(db("commit"))?;
    Ok(applied)
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
