//! Postgres backend: for several router instances sharing one database.
//!
//! Each instance runs its own group-commit writer on a connection from the
//! pool; instances inserting the same (source, idem_key) at the same time
//! are serialised by the unique index (the second INSERT waits for the
//! first transaction, then skips the row), so exactly one of them stores it.
//! A batch is one transaction of one INSERT over `UNNEST` of column arrays
//! (the multi-row insert with a constant SQL text: one prepared statement for
//! every batch size, and no 65 535-parameter limit), plus one SELECT for the
//! ids of duplicates when there are any.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::Connection;

use super::delivery::{replay_in_chunks, BULK_CHUNK};
use super::group_commit::{answers, BatchWriter, GroupCommit};
use super::postgres_delivery;
use super::postgres_dispatch;
use super::retention::PURGE_CHUNK;
use super::row::{encode_headers, event_columns, EventRow};
use super::{
    redact_url, AttemptRecord, Backlog, ClaimedDelivery, Cutoffs, DeadDelivery, DeadQuery,
    DeadSelector, DeliveryRecord, DeliveryResult, DispatchOutcome, EventId, EventQuery,
    EventSummary, Inserted, NewEvent, PluginRunRecord, Purged, ReplaySelector, Store, StoreConfig,
    StoreError, StoredEvent,
};

const BACKEND: &str = "postgres";

/// Connections per instance: the writer holds one per batch; the rest serve
/// reads (and later, dispatch and delivery workers).
const MAX_CONNECTIONS: u32 = 10;

/// Longest wait for a pooled connection before an operation fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Inserts a batch given one array per column. RETURNING yields only the
/// rows actually inserted.
const INSERT_EVENTS: &str = "\
    INSERT INTO events \
        (id, source, idem_key, method, path, headers, body, received_at_ms, verification, \
         status, dispatch_at_ms) \
    SELECT *, received_at_ms + $11 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
        $5::text[], $6::text[], $7::bytea[], $8::int8[], $9::text[], $10::text[]) \
        AS r(id, source, idem_key, method, path, headers, body, received_at_ms, verification, \
             status) \
    ON CONFLICT (source, idem_key) DO NOTHING \
    RETURNING id";

/// The stored ids of the given (source, idem_key) pairs.
const SELECT_EXISTING: &str = "\
    SELECT e.id, e.source, e.idem_key \
    FROM events e \
    JOIN UNNEST($1::text[], $2::text[]) AS k(source, idem_key) \
      ON e.source = k.source AND e.idem_key = k.idem_key";

/// Reads one event by id.
const GET_EVENT: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = $1");

/// Reads one event by (source, idem_key).
const FIND_EVENT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE source = $1 AND idem_key = $2"
);

/// Retention, a chunk at a time: drop body and headers, keep id and key.
/// SKIP LOCKED: several routers on one database purge without waiting on
/// each other (or on ingest).
const PURGE_BODIES: &str = "\
    UPDATE events SET body = ''::bytea, headers = '[]', body_purged_at_ms = $1 \
    WHERE id IN (SELECT id FROM events \
                 WHERE received_at_ms < $2 AND body_purged_at_ms IS NULL \
                   AND status <> 'received' \
                 ORDER BY received_at_ms LIMIT $3 FOR UPDATE SKIP LOCKED)";

/// Retention, a chunk at a time: the rows, and with them the keys.
const PURGE_ROWS: &str = "\
    DELETE FROM events \
    WHERE id IN (SELECT id FROM events WHERE received_at_ms < $1 \
                   AND status <> 'received' \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d \
                                   WHERE d.event_id = events.id AND d.status = 'pending') \
                 ORDER BY received_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// A Postgres database behind the [`Store`] trait.
pub struct PostgresStore {
    /// The URL without its password, for Debug.
    url: String,
    pool: PgPool,
    commits: GroupCommit,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `config.url` (`postgres://...`), applies migrations
    /// (under Postgres' advisory lock, so instances starting together are
    /// safe) and starts the writer.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let url = redact_url(&config.url);
        // The parser's messages name the part that is wrong, never its value.
        let options = PgConnectOptions::from_str(&config.url).map_err(|e| StoreError::Open {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        // One direct connection first: a pool retries a refused connection
        // until its timeout and then reports only "timed out", while this
        // fails at once with the cause. It also runs the migrations
        // (run_direct: `run`'s Acquire bound makes open() not Send).
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(db("connect"))?;
        sqlx::migrate!("./migrations/postgres")
            .run_direct(&mut conn)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;
        let _ = conn.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // A database that stops answering must fail inserts (503, the
            // provider retries) before providers time out (10 s for GitHub).
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(db("connect"))?;
        let writer = Arc::new(PgWriter { pool: pool.clone() });
        let commits = GroupCommit::start(writer, BACKEND, &config.group_commit);
        Ok(Self { url, pool, commits })
    }
}

/// Maps a driver error to [`StoreError::Database`] for operation `op`.
fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

impl PostgresStore {
    /// Runs `sql` with `binds` and then the chunk size as its last
    /// parameter until it changes fewer rows than a chunk; returns the total.
    async fn in_chunks(
        &self,
        op: &'static str,
        sql: &'static str,
        binds: &[i64],
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let query = binds.iter().fold(sqlx::query(sql), |q, b| q.bind(*b));
            let done = query
                .bind(PURGE_CHUNK)
                .execute(&self.pool)
                .await
                .map_err(db(op))?
                .rows_affected();
            total += done;
            if done < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

/// The group-commit side of the store: writes batches through the pool.
struct PgWriter {
    pool: PgPool,
}

#[async_trait::async_trait]
impl BatchWriter for PgWriter {
    async fn write_batch(&self, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        let headers = rows
            .iter()
            .map(|row| encode_headers(BACKEND, row))
            .collect::<Result<Vec<_>, _>>()?;
        let column = |f: fn(&NewEvent) -> &str| rows.iter().map(f).collect::<Vec<_>>();
        let (ids, sources, keys) = (
            column(|r| r.id.as_str()),
            column(|r| &r.source),
            column(|r| &r.idem_key),
        );
        let (methods, paths, verifications) = (
            column(|r| &r.method),
            column(|r| &r.path),
            column(|r| &r.verification),
        );
        let bodies: Vec<&[u8]> = rows.iter().map(|r| &r.body[..]).collect();
        let times: Vec<i64> = rows.iter().map(|r| r.received_at_ms).collect();
        let statuses: Vec<&str> = rows.iter().map(super::initial_status).collect();

        let mut tx = self.pool.begin().await.map_err(db("begin"))?;
        let inserted: Vec<String> = sqlx::query_scalar(INSERT_EVENTS)
            .bind(&ids)
            .bind(&sources)
            .bind(&keys)
            .bind(&methods)
            .bind(&paths)
            .bind(&headers)
            .bind(&bodies)
            .bind(&times)
            .bind(&verifications)
            .bind(&statuses)
            .bind(super::DISPATCH_GRACE_MS)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("insert events"))?;
        let inserted: HashSet<String> = inserted.into_iter().collect();

        // The rest are duplicates: under READ COMMITTED this statement sees
        // rows another instance committed while our INSERT waited on them.
        let mut existing = HashMap::new();
        if inserted.len() < rows.len() {
            let (dup_sources, dup_keys): (Vec<&str>, Vec<&str>) = rows
                .iter()
                .filter(|r| !inserted.contains(r.id.as_str()))
                .map(|r| (r.source.as_str(), r.idem_key.as_str()))
                .unzip();
            let found: Vec<(String, String, String)> = sqlx::query_as(SELECT_EXISTING)
                .bind(&dup_sources)
                .bind(&dup_keys)
                .fetch_all(&mut *tx)
                .await
                .map_err(db("select duplicate events"))?;
            existing.extend(
                found
                    .into_iter()
                    .map(|(id, source, key)| ((source, key), id)),
            );
        }

        tx.commit().await.map_err(db("commit"))?;
        answers(BACKEND, rows, &inserted, &existing)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        self.commits.insert(event).await
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(GET_EVENT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(db("get event"))?;
        row.map(|r| r.decode(BACKEND)).transpose()
    }

    async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, StoreError> {
        super::event_list::postgres(&self.pool, query).await
    }

    async fn find_event_by_key(
        &self,
        source: &str,
        idem_key: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(FIND_EVENT)
            .bind(source)
            .bind(idem_key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("find event by key"))?;
        row.map(|r| r.decode(BACKEND)).transpose()
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db("count events"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // Readiness includes the writer: reads alone answering is not ready.
        if !self.commits.is_running() {
            return Err(StoreError::Closed);
        }
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db("ping"))?;
        Ok(())
    }

    async fn purge(&self, cutoffs: Cutoffs) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        if let Some(before) = cutoffs.bodies_before_ms {
            purged.bodies = self
                .in_chunks("purge bodies", PURGE_BODIES, &[cutoffs.now_ms, before])
                .await?;
        }
        if let Some(before) = cutoffs.rows_before_ms {
            purged.rows = self.in_chunks("purge rows", PURGE_ROWS, &[before]).await?;
        }
        if let Some(before) = cutoffs.deliveries_before_ms {
            loop {
                let done = postgres_delivery::purge_done(&self.pool, before, PURGE_CHUNK).await?;
                purged.deliveries += done;
                if done < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(purged)
    }

    async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        postgres_dispatch::claim(&self.pool, now_ms, lease_ms, limit).await
    }

    async fn finish_dispatch(
        &self,
        outcomes: Vec<DispatchOutcome>,
    ) -> Result<Vec<bool>, StoreError> {
        postgres_dispatch::finish(&self.pool, &outcomes).await
    }

    async fn plugin_runs(&self, event: &EventId) -> Result<Vec<PluginRunRecord>, StoreError> {
        postgres_dispatch::plugin_runs(&self.pool, event).await
    }

    async fn deliveries(&self, event: &EventId) -> Result<Vec<DeliveryRecord>, StoreError> {
        postgres_dispatch::deliveries(&self.pool, event).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        postgres_dispatch::backlog(&self.pool).await
    }

    async fn sink_backlog(
        &self,
    ) -> Result<std::collections::BTreeMap<String, super::SinkBacklog>, StoreError> {
        let rows = sqlx::query_as(super::dispatch::SINK_BACKLOG_SQL)
            .fetch_all(&self.pool)
            .await
            .map_err(db("count each sink's deliveries"))?;
        Ok(super::dispatch::sink_backlog(rows))
    }

    async fn claim_deliveries(
        &self,
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        postgres_delivery::claim(&self.pool, sink, now_ms, lease_ms, limit).await
    }

    async fn finish_deliveries(&self, results: Vec<DeliveryResult>) -> Result<usize, StoreError> {
        postgres_delivery::finish(&self.pool, &results).await
    }

    async fn release_deliveries(&self, ids: Vec<String>, now_ms: i64) -> Result<usize, StoreError> {
        postgres_delivery::release(&self.pool, &ids, now_ms).await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        postgres_delivery::get(&self.pool, id).await
    }

    async fn dead_deliveries(&self, query: DeadQuery) -> Result<Vec<DeadDelivery>, StoreError> {
        postgres_delivery::dead(&self.pool, &query).await
    }

    async fn delivery_attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        postgres_delivery::attempts(&self.pool, id).await
    }

    async fn retry_dead(&self, which: DeadSelector, now_ms: i64) -> Result<u64, StoreError> {
        match which {
            DeadSelector::One(id) => postgres_delivery::retry_one(&self.pool, &id, now_ms).await,
            DeadSelector::All { sink } => {
                let mut total = 0;
                loop {
                    let done =
                        postgres_delivery::retry_chunk(&self.pool, sink.as_deref(), now_ms).await?;
                    total += done;
                    if done < BULK_CHUNK as u64 {
                        return Ok(total);
                    }
                }
            }
        }
    }

    async fn request_replay(&self, which: ReplaySelector, now_ms: i64) -> Result<u64, StoreError> {
        replay_in_chunks(which, |chunk| {
            let pool = self.pool.clone();
            async move { postgres_delivery::replay_chunk(&pool, &chunk, now_ms).await }
        })
        .await
    }

    async fn close(&self) {
        self.commits.close().await;
        self.pool.close().await;
    }
}
