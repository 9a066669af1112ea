//! Durable storage of events behind one [`Store`] trait: SQLite (embedded
//! default) and Postgres (several router instances on one database).
//!
//! Inserts go through group commit ([`group_commit`]): one writer task per
//! store batches concurrent inserts into one transaction and one fsync, then
//! answers every waiter. An answer means the row is committed.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod checkpoint_sync;
mod db_writeback;
mod delivery;
mod dispatch;
mod event_list;
mod group_commit;
mod postgres;
mod postgres_batch;
mod postgres_delivery;
mod postgres_dispatch;
mod retention;
mod row;
mod sqlite;
mod sqlite_delivery;
mod sqlite_dispatch;
mod sqlite_purge;
mod sqlite_wal_vfs;
mod sqlite_writer;
mod wal_sync;

pub use delivery::{
    AttemptOutcome, AttemptRecord, ClaimedDelivery, DeadDelivery, DeadQuery, DeadSelector,
    DeliveryResult, ReplaySelector,
};
pub use dispatch::{
    Backlog, DeliveryRecord, DispatchOutcome, EventOutcome, NewDelivery, NewPluginRun,
    PluginRunRecord, SinkBacklog, DISPATCH_GRACE_MS,
};
pub use event_list::{EventQuery, EventSummary};
pub use group_commit::GroupCommitConfig;
pub use postgres::PostgresStore;
pub use retention::{run_purges, Cutoffs, Purged, Retention};
pub use sqlite::{SqliteStore, SqliteSynchronous};

/// An event's id: `evt_` followed by a ULID (sortable by receive time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(format!("evt_{}", ulid::Ulid::new()))
    }

    /// A fresh id for an event received at `received_at_ms` (unix ms): its
    /// ULID's time is exactly that, so the id orders events by receipt and
    /// an id range is a receive-time range (SQLite's retention purges walk
    /// the primary key instead of an index of their own; [`ulid_id_floor`]).
    ///
    /// Events received in the same millisecond get increasing ids, in the
    /// order of these calls: a ULID's random part alone would order them by
    /// chance, and the event list (newest first) and its cursor go by id.
    /// The latest millisecond seen is the one continued; an earlier one (a
    /// clock stepped back) gets a fresh id of its own time and leaves it.
    pub fn received_at(received_at_ms: i64) -> Self {
        static LATEST: std::sync::Mutex<ulid::Ulid> = std::sync::Mutex::new(ulid::Ulid::nil());
        let ms = u64::try_from(received_at_ms).unwrap_or(0);
        // From the given time, not `Ulid::new()`'s: no second clock read.
        let fresh = || {
            ulid::Ulid::from_datetime(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        };
        let mut latest = LATEST
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = if ms == latest.timestamp_ms() {
            // Past the 80 random bits' end (never, in practice): a fresh one.
            latest.increment().unwrap_or_else(fresh)
        } else {
            fresh()
        };
        if ms >= latest.timestamp_ms() {
            *latest = next;
        }
        drop(latest);
        Self(format!("evt_{next}"))
    }

    /// Wraps an id read back from storage or an API.
    pub fn from_string(id: String) -> Self {
        Self(id)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id below which every row with ids `prefix` + ULID was made before
/// `at_ms`: a ULID's first 48 bits are its time, and ULIDs sort as text
/// (SQLite compares text bytewise), so an id range on a primary key is a
/// time range. Events (`evt_`, [`EventId::received_at`]) and deliveries
/// (`dlv_`) are purged this way, with no time index on either table.
pub(super) fn ulid_id_floor(prefix: &str, at_ms: i64) -> String {
    let ms = u64::try_from(at_ms).unwrap_or(0);
    format!("{prefix}{}", ulid::Ulid::from_parts(ms, 0))
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A header value as stored: text when it is UTF-8, raw bytes otherwise, so
/// nothing a provider sent is lost or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValueRepr {
    /// A UTF-8 value (nearly all of them).
    Text(String),
    /// Any other bytes.
    Bytes(Vec<u8>),
}

/// A verified request about to be stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Id to use if this is the first time (source, key) is seen.
    pub id: EventId,
    /// The source name from router.toml.
    pub source: String,
    /// Idempotency key: the provider's event id, else `sha256:<hex of body>`.
    pub idem_key: String,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Headers in arrival order, names lowercased, redacted ones removed.
    pub headers: Vec<(String, HeaderValueRepr)>,
    /// The raw body.
    pub body: Bytes,
    /// Receive time, unix milliseconds.
    pub received_at_ms: i64,
    /// The verification result: the scheme that accepted it (`"none"` if unverified by config).
    pub verification: String,
    /// Whether the event waits for dispatch (`received`). False when its
    /// source routes nowhere: stored as `processed` at once, so a
    /// store-only source costs dispatch nothing.
    pub dispatch: bool,
}

/// The outcome of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    /// The event's id: the new one, or the id stored the first time.
    pub id: EventId,
    /// True when (source, key) was already stored; nothing new was written.
    pub duplicate: bool,
}

/// A stored event, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// Source name.
    pub source: String,
    /// Idempotency key.
    pub idem_key: String,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Stored headers.
    pub headers: Vec<(String, HeaderValueRepr)>,
    /// Raw body.
    pub body: Vec<u8>,
    /// Receive time, unix milliseconds.
    pub received_at_ms: i64,
    /// Verification result.
    pub verification: String,
    /// `received` (not yet dispatched), `processed`, `dropped` or `failed`.
    pub status: String,
    /// When retention dropped the body and headers (then empty); `None` while kept.
    pub body_purged_at_ms: Option<i64>,
    /// Dispatch attempts that ended (retries count).
    pub dispatch_attempts: u32,
    /// Why it was dropped or failed, or why its last attempt failed.
    pub status_reason: Option<String>,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed the operation.
    #[error("{backend} store: {op} failed")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What was being done.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("{backend} store: migrations failed")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The store could not be opened (bad URL, directory not creatable, ...).
    #[error("cannot open store `{url}`: {reason}")]
    Open {
        /// The URL with any password removed.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The transaction of a group-commit batch failed, so nothing of this
    /// insert was committed. Every waiter of the batch shares the one cause.
    #[error("{backend} store: batch commit failed")]
    BatchFailed {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Why the batch's transaction failed.
        #[source]
        source: Arc<StoreError>,
    },
    /// The SQLite writer connection failed an operation.
    #[error("sqlite store: {op} failed")]
    Sqlite {
        /// What was being done.
        op: &'static str,
        /// rusqlite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An fsync of the SQLite WAL failed. Whether earlier commits reached
    /// the disk is unknown, so the store refuses every write until restart.
    #[error("sqlite store: fsync of `{path}` failed; writes are refused until restart")]
    Fsync {
        /// The WAL file.
        path: String,
        /// The operating system's error (shared by every refused batch).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Too many inserts are waiting for the writer: shed load.
    #[error("store write queue is full")]
    Overloaded,
    /// The writer task has stopped (shutdown, or it failed).
    #[error("store writer has stopped")]
    Closed,
    /// A stored row could not be decoded.
    #[error("{backend} store: corrupt row for event {id}: {reason}")]
    Corrupt {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The event id.
        id: String,
        /// What could not be decoded.
        reason: String,
    },
}

/// Durable event storage. Every method is safe to call concurrently.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores `event` unless (source, idem_key) is already stored, and returns
    /// only after the row is committed (group commit with other callers).
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted, StoreError>;

    /// Reads one event.
    async fn get_event(&self, id: &EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// Finds the event stored under (source, key).
    async fn find_event_by_key(
        &self,
        source: &str,
        idem_key: &str,
    ) -> Result<Option<StoredEvent>, StoreError>;

    /// Events newest first, filtered and paged (see [`EventQuery`]).
    async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, StoreError>;

    /// Number of stored events (tests and diagnostics).
    async fn count_events(&self) -> Result<u64, StoreError>;

    /// Checks the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Retention: empties body and headers of events received before
    /// `cutoffs.bodies_before_ms` (the row, id and key stay, so a replay is
    /// still a duplicate) and deletes events received before
    /// `cutoffs.rows_before_ms`. Works in short transactions beside ingest.
    async fn purge(&self, cutoffs: Cutoffs) -> Result<Purged, StoreError>;

    /// Claims up to `limit` events due for dispatch (status `received`,
    /// `dispatch_at_ms <= now_ms`), oldest due first, and moves their due
    /// time to `now_ms + lease_ms`, so no other claimer (a sweep of this or
    /// another router process) takes them while this one works.
    async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Records dispatch outcomes. Each event's new status, its plugin run
    /// and its deliveries are written in one transaction (one per call), and
    /// only if the event is still `received`: an event that another claimer
    /// finished first is skipped whole, so it never gets two sets of
    /// deliveries. Returns, for each outcome in order, whether it was applied.
    async fn finish_dispatch(
        &self,
        outcomes: Vec<DispatchOutcome>,
    ) -> Result<Vec<bool>, StoreError>;

    /// The plugin runs recorded for an event, oldest first.
    async fn plugin_runs(&self, event: &EventId) -> Result<Vec<PluginRunRecord>, StoreError>;

    /// The deliveries created for an event, in order.
    async fn deliveries(&self, event: &EventId) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Undispatched events and pending deliveries.
    async fn backlog(&self) -> Result<Backlog, StoreError>;

    /// Pending and dead deliveries of each sink that has any, configured
    /// or not (a sink a reload removed keeps its rows).
    async fn sink_backlog(
        &self,
    ) -> Result<std::collections::BTreeMap<String, SinkBacklog>, StoreError>;

    /// Claims up to `limit` of `sink`'s deliveries due at `now_ms` (status
    /// `pending`, `next_attempt_at_ms <= now_ms`), earliest due first, and
    /// moves their due time to `now_ms + lease_ms`: no other worker (of
    /// this or another router process) takes them while the lease runs,
    /// and a crashed worker's deliveries are due again when it ends.
    async fn claim_deliveries(
        &self,
        sink: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records attempt results in one transaction: done, due again, or
    /// dead, with failed attempts kept in the delivery's history. A result
    /// applies only to a delivery still `pending` whose attempts are below
    /// its attempt number (the first result of an attempt wins). Returns
    /// how many applied.
    async fn finish_deliveries(&self, results: Vec<DeliveryResult>) -> Result<usize, StoreError>;

    /// Gives claimed deliveries back (shutdown): due at `now_ms`, so another
    /// process, or the next start, takes them at once rather than after
    /// the lease. Returns how many were still pending.
    async fn release_deliveries(&self, ids: Vec<String>, now_ms: i64) -> Result<usize, StoreError>;

    /// One delivery by id.
    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Dead letters, most recently dead first.
    async fn dead_deliveries(&self, query: DeadQuery) -> Result<Vec<DeadDelivery>, StoreError>;

    /// A delivery's failed attempts, in order.
    async fn delivery_attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Sends dead letters again: back to `pending`, due at `now_ms`, with
    /// the same id (so the same idempotency key downstream) and a fresh
    /// round of the sink's retry budget. Returns how many.
    async fn retry_dead(&self, which: DeadSelector, now_ms: i64) -> Result<u64, StoreError>;

    /// Queues stored events for dispatch again (replay): back to
    /// `received`, due at `now_ms`, so the dispatcher runs the current
    /// plugin version on them and records a new run and new deliveries.
    /// Events already waiting for dispatch, and events whose body
    /// retention has purged, are left alone. Returns how many were queued.
    async fn request_replay(&self, which: ReplaySelector, now_ms: i64) -> Result<u64, StoreError>;

    /// Stops accepting inserts, commits what is queued, closes connections.
    async fn close(&self);
}

/// Store settings from `[store]`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path` or `postgres://...`.
    pub url: String,
    /// SQLite `synchronous` level (ignored by Postgres).
    pub sqlite_synchronous: SqliteSynchronous,
    /// Batching of the writer.
    pub group_commit: GroupCommitConfig,
    /// How long bodies and keys are kept.
    pub retention: Retention,
}

/// The `status` an event is stored with.
pub(crate) fn initial_status(event: &NewEvent) -> &'static str {
    if event.dispatch {
        "received"
    } else {
        "processed"
    }
}

/// Opens the store the URL names, creating the database file (SQLite) and
/// applying migrations.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(config).await?))
    } else if config.url.starts_with("postgres:") || config.url.starts_with("postgresql:") {
        Ok(Arc::new(PostgresStore::open(config).await?))
    } else {
        Err(StoreError::Open {
            url: redact_url(&config.url),
            reason: "expected a sqlite:// or postgres:// URL".into(),
        })
    }
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host -> scheme://user:***@host
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// A minimal event for source `s` under `key`, for unit tests.
#[cfg(test)]
pub(crate) fn test_event(key: &str) -> NewEvent {
    NewEvent {
        id: EventId::generate(),
        source: "s".into(),
        idem_key: key.into(),
        method: "POST".into(),
        path: "/webhooks/s".into(),
        headers: vec![],
        body: Bytes::from_static(b"{}"),
        received_at_ms: 0,
        verification: "none".into(),
        dispatch: true,
    }
}

#[cfg(test)]
mod tests;
