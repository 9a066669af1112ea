//! SQLite backend, the embedded default: one file in WAL mode, ONE writer
//! (a thread with its own connection, see `sqlite_writer.rs`) fed by group
//! commit, and a small sqlx pool of read-only connections.
//!
//! SQLite admits one writer at a time, so a pool of writers would only queue
//! on the file lock; a dedicated writer makes that explicit and keeps
//! readers (WAL lets them run beside the writer) out of its way. With the
//! default `synchronous = FULL`, WAL fsyncs at every commit, so an answer
//! from [`Store::insert_event`] means the row survives power loss.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection};

use super::delivery::{replay_in_chunks, BULK_CHUNK};
use super::group_commit::GroupCommit;
use super::row::{event_columns, EventRow};
use super::sqlite_delivery;
use super::sqlite_dispatch;
use super::sqlite_writer::{SqliteJob, SqliteWriter};
use super::{
    redact_url, AttemptRecord, Backlog, ClaimedDelivery, Cutoffs, DeadDelivery, DeadQuery,
    DeadSelector, DeliveryRecord, DeliveryResult, DispatchOutcome, EventId, EventQuery,
    EventSummary, Inserted, NewEvent, PluginRunRecord, Purged, ReplaySelector, Store, StoreConfig,
    StoreError, StoredEvent,
};

const BACKEND: &str = "sqlite";

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections: reads are short point lookups; a few cover concurrent
/// API calls without a worker thread per idle connection.
const READ_CONNECTIONS: u32 = 4;

/// The `synchronous` pragma: how hard SQLite works to make a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSynchronous {
    /// fsync at every commit: an acknowledged event survives power loss (the default).
    #[default]
    Full,
    /// fsync only at checkpoints: survives a crash of the process, but the
    /// last commits may be lost on power loss.
    Normal,
    /// No fsync at all: for tests and benchmarks only.
    Off,
}

impl SqliteSynchronous {
    /// Parses the config spelling: `full`, `normal` or `off`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// An SQLite database file behind the [`Store`] trait.
pub struct SqliteStore {
    path: PathBuf,
    synchronous: SqliteSynchronous,
    reads: SqlitePool,
    writer: SqliteWriter,
    commits: GroupCommit<SqliteJob>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("synchronous", &self.synchronous)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database file of
    /// `config.url` (`sqlite://path`), applies migrations and starts the writer.
    pub async fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: redact_url(&config.url),
            reason,
        };
        let options = parse_url(&config.url).map_err(open_error)?;
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                open_error(format!("cannot create directory `{}`: {e}", dir.display()))
            })?;
        }

        let options = options.busy_timeout(BUSY_TIMEOUT).foreign_keys(true);
        let setup_lock = lock_for_setup(&path).await.map_err(open_error)?;
        // A short-lived sqlx connection creates the file, switches it to WAL
        // (persistent in the file) and applies the migrations.
        let mut setup = options
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(db("connect"))?;
        // run_direct, not run(&mut conn): run's `Acquire<'a>` bound makes
        // this future "not general enough" to be Send, and open() must be
        // spawnable. sqlx keeps run_direct public for exactly this.
        sqlx::migrate!("./migrations/sqlite")
            .run_direct(&mut setup)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;
        setup.close().await.map_err(db("close setup connection"))?;
        drop(setup_lock);

        // Read-only, so nothing outside the writer task can take the write lock.
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            // A local file connection does not go stale: skip the ping
            // (a worker-thread round trip) before every read.
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(db("connect"))?;

        let (commits, intake) = GroupCommit::channel(&config.group_commit);
        let writer = SqliteWriter::start(&path, config.sqlite_synchronous, BUSY_TIMEOUT, intake)?;
        Ok(Self {
            path,
            synchronous: config.sqlite_synchronous,
            reads,
            writer,
            commits,
        })
    }
}

impl SqliteStore {
    /// Runs `work` on the writer thread between ingest batches and returns
    /// its result.
    async fn on_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: SqliteJob = Box::new(move |conn| {
            let _ = answer.send(conn.and_then(work));
        });
        self.commits.job(job).await?;
        answered.await.unwrap_or(Err(StoreError::Closed))
    }
}

/// Serialises schema setup between processes opening the same database at
/// once (sqlx's migrator takes no lock on SQLite, so two would both apply
/// migration 1): an exclusive `flock` on the database's directory, held
/// while migrating. Not on the database file itself: closing any other
/// descriptor of that file would drop SQLite's own POSIX locks in this process.
async fn lock_for_setup(db_path: &std::path::Path) -> Result<std::fs::File, String> {
    let dir = match db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tokio::task::spawn_blocking(move || {
        let handle = std::fs::File::open(&dir)
            .map_err(|e| format!("cannot open directory `{}`: {e}", dir.display()))?;
        handle
            .lock()
            .map_err(|e| format!("cannot lock directory `{}`: {e}", dir.display()))?;
        Ok(handle)
    })
    .await
    .map_err(|e| format!("setup lock task failed: {e}"))?
}

/// Parses `sqlite://path[?params]`, refusing in-memory databases: each
/// connection would see its own empty database, and nothing would be durable.
fn parse_url(url: &str) -> Result<SqliteConnectOptions, String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| "expected sqlite://path".to_string())?;
    let (file, params) = rest.split_once('?').unwrap_or((rest, ""));
    if file.is_empty() || file == ":memory:" || params.contains("mode=memory") {
        return Err("an in-memory database is not durable; give a file path".into());
    }
    SqliteConnectOptions::from_str(url).map_err(|e| e.to_string())
}

/// Maps a driver error to [`StoreError::Database`] for operation `op`.
fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database {
        backend: BACKEND,
        op,
        source,
    }
}

/// Reads one event by id.
const GET_EVENT: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE id = ?");

/// Reads one event by (source, idem_key).
const FIND_EVENT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events WHERE source = ? AND idem_key = ?"
);

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        self.commits.insert(event).await
    }

    async fn get_event(&self, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(GET_EVENT)
            .bind(id.as_str())
            .fetch_optional(&self.reads)
            .await
            .map_err(db("get event"))?;
        row.map(|r| r.decode(BACKEND)).transpose()
    }

    async fn list_events(&self, query: EventQuery) -> Result<Vec<EventSummary>, StoreError> {
        super::event_list::sqlite(&self.reads, query).await
    }

    async fn find_event_by_key(
        &self,
        source: &str,
        idem_key: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(FIND_EVENT)
            .bind(source)
            .bind(idem_key)
            .fetch_optional(&self.reads)
            .await
            .map_err(db("find event by key"))?;
        row.map(|r| r.decode(BACKEND)).transpose()
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.reads)
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
            .execute(&self.reads)
            .await
            .map_err(db("ping"))?;
        Ok(())
    }

    async fn purge(&self, cutoffs: Cutoffs) -> Result<Purged, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            super::sqlite_purge::purge(&path, cutoffs, BUSY_TIMEOUT)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn claim_due_events(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.on_writer(move |conn| sqlite_dispatch::claim(conn, now_ms, lease_ms, limit))
            .await
    }

    async fn finish_dispatch(
        &self,
        outcomes: Vec<DispatchOutcome>,
    ) -> Result<Vec<bool>, StoreError> {
        self.on_writer(move |conn| sqlite_dispatch::finish(conn, &outcomes))
            .await
    }

    async fn plugin_runs(&self, event: &EventId) -> Result<Vec<PluginRunRecord>, StoreError> {
        sqlite_dispatch::plugin_runs(&self.reads, event).await
    }

    async fn deliveries(&self, event: &EventId) -> Result<Vec<DeliveryRecord>, StoreError> {
        sqlite_dispatch::deliveries(&self.reads, event).await
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        sqlite_dispatch::backlog(&self.reads).await
    }

    async fn sink_backlog(
        &self,
    ) -> Result<std::collections::BTreeMap<String, super::SinkBacklog>, StoreError> {
        let rows = sqlx::query_as(super::dispatch::SINK_BACKLOG_SQL)
            .fetch_all(&self.reads)
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
        let sink = sink.to_string();
        self.on_writer(move |conn| sqlite_delivery::claim(conn, &sink, now_ms, lease_ms, limit))
            .await
    }

    async fn finish_deliveries(&self, results: Vec<DeliveryResult>) -> Result<usize, StoreError> {
        self.on_writer(move |conn| sqlite_delivery::finish(conn, &results))
            .await
    }

    async fn release_deliveries(&self, ids: Vec<String>, now_ms: i64) -> Result<usize, StoreError> {
        self.on_writer(move |conn| sqlite_delivery::release(conn, &ids, now_ms))
            .await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        sqlite_delivery::get(&self.reads, id).await
    }

    async fn dead_deliveries(&self, query: DeadQuery) -> Result<Vec<DeadDelivery>, StoreError> {
        sqlite_delivery::dead(&self.reads, &query).await
    }

    async fn delivery_attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        sqlite_delivery::attempts(&self.reads, id).await
    }

    async fn retry_dead(&self, which: DeadSelector, now_ms: i64) -> Result<u64, StoreError> {
        match which {
            DeadSelector::One(id) => {
                self.on_writer(move |conn| sqlite_delivery::retry_one(conn, &id, now_ms))
                    .await
            }
            DeadSelector::All { sink } => {
                // One writer job per chunk: ingest batches run in between.
                let mut total = 0;
                loop {
                    let sink = sink.clone();
                    let done = self
                        .on_writer(move |conn| {
                            sqlite_delivery::retry_chunk(conn, sink.as_deref(), now_ms)
                        })
                        .await?;
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
            self.on_writer(move |conn| sqlite_delivery::replay_chunk(conn, &chunk, now_ms))
        })
        .await
    }

    async fn close(&self) {
        self.commits.close().await;
        self.reads.close().await;
        // Closed last, the writer checkpoints the WAL into the database file.
        self.writer.close().await;
    }
}
