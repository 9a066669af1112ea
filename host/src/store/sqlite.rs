//! SQLite backend, the embedded default: one file in WAL mode, ONE writer
//! connection fed by group commit, and a small pool of read-only connections.
//!
//! SQLite admits one writer at a time, so a pool of writers would only queue
//! on the file lock; a dedicated connection owned by the writer task makes
//! that explicit and keeps readers (WAL lets them run beside the writer) out
//! of its way. sqlx runs each SQLite connection on its own worker thread and
//! every statement costs a hop to it, so a batch is written with as few
//! statements as possible: one multi-row INSERT, one SELECT only when there
//! are duplicates, inside one `BEGIN IMMEDIATE` transaction. With the
//! default `synchronous = FULL`, WAL fsyncs at every commit, so an answer
//! from [`Store::insert_event`] means the row survives power loss.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};

use super::group_commit::{answers, BatchWriter, GroupCommit};
use super::{
    redact_url, EventId, HeaderValueRepr, Inserted, NewEvent, Store, StoreConfig, StoreError,
    StoredEvent,
};

const BACKEND: &str = "sqlite";

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections: reads are short point lookups; a few cover concurrent
/// API calls without a worker thread per idle connection.
const READ_CONNECTIONS: u32 = 4;

/// SQLite's default bound-variable limit since 3.32 (the bundled library is
/// newer). The default batch (256 rows x 9 columns) fits in one statement;
/// a larger configured `max_batch` is split into several statements.
const MAX_VARIABLES: usize = 32_766;

/// Bound values per inserted row.
const INSERT_COLUMNS: usize = 9;

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

    fn to_sqlx(self) -> sqlx::sqlite::SqliteSynchronous {
        match self {
            Self::Full => sqlx::sqlite::SqliteSynchronous::Full,
            Self::Normal => sqlx::sqlite::SqliteSynchronous::Normal,
            Self::Off => sqlx::sqlite::SqliteSynchronous::Off,
        }
    }
}

/// An SQLite database file behind the [`Store`] trait.
pub struct SqliteStore {
    path: PathBuf,
    synchronous: SqliteSynchronous,
    reads: SqlitePool,
    writer: Arc<SqliteWriter>,
    commits: GroupCommit,
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
        let mut writer = options
            .clone()
            .create_if_missing(true)
            // WAL: readers never block the writer, and a commit is one
            // sequential append (plus one fsync under FULL).
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(config.sqlite_synchronous.to_sqlx())
            .connect()
            .await
            .map_err(db("connect"))?;
        // run_direct, not run(&mut conn): run's `Acquire<'a>` bound makes
        // this future "not general enough" to be Send, and open() must be
        // spawnable. sqlx keeps run_direct public for exactly this.
        sqlx::migrate!("./migrations/sqlite")
            .run_direct(&mut writer)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                source,
            })?;

        // Read-only, so nothing outside the writer task can take the write lock.
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            // A local file connection does not go stale: skip the ping
            // (a worker-thread round trip) before every read.
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await
            .map_err(db("connect"))?;

        let writer = Arc::new(SqliteWriter {
            conn: tokio::sync::Mutex::new(Some(writer)),
        });
        let commits = GroupCommit::start(writer.clone(), BACKEND, &config.group_commit);
        Ok(Self {
            path,
            synchronous: config.sqlite_synchronous,
            reads,
            writer,
            commits,
        })
    }
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

/// The one connection that writes, used only by the group-commit task.
struct SqliteWriter {
    /// A mutex only to satisfy `&self`: the single writer task never
    /// contends for it; `close` takes the connection out after the task ends.
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
}

#[async_trait::async_trait]
impl BatchWriter for SqliteWriter {
    async fn write_batch(&self, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        let headers = rows
            .iter()
            .map(encode_headers)
            .collect::<Result<Vec<_>, _>>()?;
        let mut guard = self.conn.lock().await;
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        // IMMEDIATE takes the write lock now (waiting up to busy_timeout if
        // another process holds it) instead of failing at the first INSERT.
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db("begin"))?;

        let mut inserted = HashSet::with_capacity(rows.len());
        let per_statement = MAX_VARIABLES / INSERT_COLUMNS;
        for (chunk, headers) in rows
            .chunks(per_statement)
            .zip(headers.chunks(per_statement))
        {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events \
                 (id, source, idem_key, method, path, headers, body, received_at_ms, verification) ",
            );
            insert.push_values(chunk.iter().zip(headers), |mut values, (row, headers)| {
                values
                    .push_bind(row.id.as_str())
                    .push_bind(row.source.as_str())
                    .push_bind(row.idem_key.as_str())
                    .push_bind(row.method.as_str())
                    .push_bind(row.path.as_str())
                    .push_bind(headers.as_str())
                    .push_bind(&row.body[..])
                    .push_bind(row.received_at_ms)
                    .push_bind(row.verification.as_str());
            });
            // RETURNING yields only the rows actually inserted.
            insert.push(" ON CONFLICT (source, idem_key) DO NOTHING RETURNING id");
            let ids: Vec<String> = insert
                .build_query_scalar()
                .fetch_all(&mut *tx)
                .await
                .map_err(db("insert events"))?;
            inserted.extend(ids);
        }

        // The rest are duplicates of stored rows: fetch their ids in the
        // same transaction, so the answer matches what is committed.
        let mut existing = HashMap::new();
        let duplicates: Vec<&NewEvent> = rows
            .iter()
            .filter(|row| !inserted.contains(row.id.as_str()))
            .collect();
        for chunk in duplicates.chunks(MAX_VARIABLES / 2) {
            let mut select = duplicates_query(chunk);
            let found: Vec<(String, String, String)> = select
                .build_query_as()
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

/// Selects the stored (id, source, idem_key) of `rows`' keys. A join, not
/// `(source, idem_key) IN (VALUES ...)`: SQLite plans that IN as a scan of
/// the whole table, and the join as one unique-index lookup per key.
fn duplicates_query<'a>(rows: &[&'a NewEvent]) -> QueryBuilder<'a, Sqlite> {
    let mut select = QueryBuilder::<Sqlite>::new("SELECT e.id, e.source, e.idem_key FROM (");
    select.push_values(rows, |mut values, row| {
        values
            .push_bind(row.source.as_str())
            .push_bind(row.idem_key.as_str());
    });
    select.push(") AS k JOIN events e ON e.source = k.column1 AND e.idem_key = k.column2");
    select
}

/// Reads one event by id.
const GET_EVENT: &str = "SELECT id, source, idem_key, method, path, headers, body, \
                         received_at_ms, verification, status FROM events WHERE id = ?";

/// Reads one event by (source, idem_key).
const FIND_EVENT: &str = "SELECT id, source, idem_key, method, path, headers, body, \
                          received_at_ms, verification, status FROM events \
                          WHERE source = ? AND idem_key = ?";

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
        row.map(EventRow::decode).transpose()
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
        row.map(EventRow::decode).transpose()
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

    async fn close(&self) {
        self.commits.close().await;
        self.reads.close().await;
        // Closed last, the writer checkpoints the WAL into the database file.
        if let Some(conn) = self.writer.conn.lock().await.take() {
            if let Err(error) = conn.close().await {
                tracing::warn!(
                    path = %self.path.display(),
                    error = &error as &dyn std::error::Error,
                    "Closing the SQLite writer connection failed."
                );
            }
        }
    }
}

/// JSON text of the header list, as the `headers` column stores it.
fn encode_headers(row: &NewEvent) -> Result<String, StoreError> {
    serde_json::to_string(&row.headers).map_err(|e| StoreError::Corrupt {
        backend: BACKEND,
        id: row.id.to_string(),
        reason: format!("headers not encodable as JSON: {e}"),
    })
}

/// One `events` row as read.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    source: String,
    idem_key: String,
    method: String,
    path: String,
    headers: String,
    body: Vec<u8>,
    received_at_ms: i64,
    verification: String,
    status: String,
}

impl EventRow {
    fn decode(self) -> Result<StoredEvent, StoreError> {
        let headers: Vec<(String, HeaderValueRepr)> =
            serde_json::from_str(&self.headers).map_err(|e| StoreError::Corrupt {
                backend: BACKEND,
                id: self.id.clone(),
                reason: format!("headers are not the expected JSON: {e}"),
            })?;
        Ok(StoredEvent {
            id: EventId::from_string(self.id),
            source: self.source,
            idem_key: self.idem_key,
            method: self.method,
            path: self.path,
            headers,
            body: self.body,
            received_at_ms: self.received_at_ms,
            verification: self.verification,
            status: self.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::GroupCommitConfig;

    /// The duplicate lookup must stay an index search as the table grows.
    #[tokio::test]
    async fn the_duplicate_lookup_uses_the_unique_index() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: format!("sqlite://{}/plan.db", dir.path().display()),
            sqlite_synchronous: SqliteSynchronous::Full,
            group_commit: GroupCommitConfig::default(),
        };
        let store = SqliteStore::open(&config).await.unwrap();
        let rows: Vec<NewEvent> = (0..3)
            .map(|i| NewEvent {
                id: EventId::generate(),
                source: "s".into(),
                idem_key: format!("k{i}"),
                method: "POST".into(),
                path: "/".into(),
                headers: vec![],
                body: bytes::Bytes::new(),
                received_at_ms: 0,
                verification: "none".into(),
            })
            .collect();
        let refs: Vec<&NewEvent> = rows.iter().collect();
        let sql = format!("EXPLAIN QUERY PLAN {}", duplicates_query(&refs).sql());
        let mut explain = sqlx::query_as::<_, (i64, i64, i64, String)>(&sql);
        for row in &rows {
            explain = explain
                .bind(row.source.as_str())
                .bind(row.idem_key.as_str());
        }
        let plan = explain.fetch_all(&store.reads).await.unwrap();
        let details: Vec<&str> = plan.iter().map(|(_, _, _, d)| d.as_str()).collect();
        assert!(
            details
                .iter()
                .any(|d| d.starts_with("SEARCH e USING INDEX")),
            "plan: {details:?}"
        );
        assert!(
            !details.iter().any(|d| d.starts_with("SCAN e")),
            "plan: {details:?}"
        );
        store.close().await;
    }

    /// The ack's durability promise rests on these two pragmas of the writer.
    #[tokio::test]
    async fn the_writer_runs_wal_with_the_configured_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        for (level, pragma_value) in [(SqliteSynchronous::Full, 2), (SqliteSynchronous::Normal, 1)]
        {
            let config = StoreConfig {
                url: format!("sqlite://{}/{level:?}.db", dir.path().display()),
                sqlite_synchronous: level,
                group_commit: GroupCommitConfig::default(),
            };
            let store = SqliteStore::open(&config).await.unwrap();
            {
                let mut guard = store.writer.conn.lock().await;
                let conn = guard.as_mut().unwrap();
                let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
                assert_eq!((mode.as_str(), sync), ("wal", pragma_value));
            }
            store.close().await;
        }
    }
}
