//! Listing events for operators: newest first, filtered by source, status
//! and receive time, paged by a cursor (the last id of the previous page),
//! so a page never shifts when new events arrive. Both backends.

use serde::Serialize;
use sqlx::{PgPool, SqlitePool};

use super::StoreError;

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this source's.
    pub source: Option<String>,
    /// Only events with this status.
    pub status: Option<String>,
    /// Received at or after, unix milliseconds.
    pub since_ms: Option<i64>,
    /// Received before, unix milliseconds.
    pub until_ms: Option<i64>,
    /// Only events older than this id (the previous page's `next_cursor`).
    pub before_id: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// One event in a listing (no body or headers: `get_event` has them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct EventSummary {
    /// The event's id.
    pub id: String,
    /// Its source.
    pub source: String,
    /// Its idempotency key.
    pub idem_key: String,
    /// `received`, `processed`, `dropped` or `failed`.
    pub status: String,
    /// Why it was dropped or failed.
    pub status_reason: Option<String>,
    /// When it was received, unix milliseconds.
    pub received_at_ms: i64,
    /// How it was verified.
    pub verification: String,
    /// Its body's size (0 once purged).
    pub body_bytes: i64,
}

const SQLITE: &str = "SELECT id, source, idem_key, status, status_reason, received_at_ms, \
    verification, length(body) AS body_bytes FROM events \
    WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR status = ?2) \
    AND (?3 IS NULL OR received_at_ms >= ?3) AND (?4 IS NULL OR received_at_ms < ?4) \
    AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6";

const POSTGRES: &str = "SELECT id, source, idem_key, status, status_reason, received_at_ms, \
    verification, octet_length(body)::BIGINT AS body_bytes FROM events \
    WHERE ($1::TEXT IS NULL OR source = $1) AND ($2::TEXT IS NULL OR status = $2) \
    AND ($3::BIGINT IS NULL OR received_at_ms >= $3) AND ($4::BIGINT IS NULL OR received_at_ms < $4) \
    AND ($5::TEXT IS NULL OR id < $5) ORDER BY id DESC LIMIT $6";

fn failed(backend: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend,
        op: "list events",
        source,
    }
}

/// [`super::Store::list_events`] on SQLite's read pool.
pub(super) async fn sqlite(
    pool: &SqlitePool,
    q: EventQuery,
) -> Result<Vec<EventSummary>, StoreError> {
    sqlx::query_as(SQLITE)
        .bind(q.source)
        .bind(q.status)
        .bind(q.since_ms)
        .bind(q.until_ms)
        .bind(q.before_id)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(failed("sqlite"))
}

/// [`super::Store::list_events`] on Postgres.
pub(super) async fn postgres(
    pool: &PgPool,
    q: EventQuery,
) -> Result<Vec<EventSummary>, StoreError> {
    sqlx::query_as(POSTGRES)
        .bind(q.source)
        .bind(q.status)
        .bind(q.since_ms)
        .bind(q.until_ms)
        .bind(q.before_id)
        .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(failed("postgres"))
}
