//! The SQLite writer: one OS thread owning one rusqlite connection, fed
//! whole batches by group commit.
//!
//! Why not sqlx here, as everywhere else: sqlx runs each SQLite statement
//! as a hop to its connection's worker thread and builds a fresh multi-row
//! statement per batch size. A batch here is one hop to this thread, then
//! per row one cached prepared INSERT (and, for a duplicate, one cached
//! SELECT) in plain C, then one COMMIT: measured in `bench/` at a fraction
//! of the CPU per row. Reads and migrations stay on sqlx.

use std::path::Path;
use std::sync::mpsc as std_mpsc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::group_commit::BatchWriter;
use super::{EventId, Inserted, NewEvent, SqliteSynchronous, StoreError};

const BACKEND: &str = "sqlite";

const INSERT: &str = "INSERT INTO events \
    (id, source, idem_key, method, path, headers, body, received_at_ms, verification) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
    ON CONFLICT (source, idem_key) DO NOTHING";

const EXISTING: &str = "SELECT id FROM events WHERE source = ?1 AND idem_key = ?2";

/// Rows committed between two nudges of the checkpointer. Small: each
/// background checkpoint then copies little, and the automatic checkpoint
/// left in the writer's commit finds the WAL nearly backfilled. Measured
/// with `bench/` (c64): p99 ack latency fell from ~18 ms (automatic
/// checkpoints only) to ~8-10 ms.
const CHECKPOINT_EVERY_ROWS: usize = 100;

/// A thread with its own connection that copies WAL frames into the
/// database file (PASSIVE: never blocks the writer) whenever nudged, so the
/// writer's own automatic checkpoints, still on at SQLite's default of 1000
/// pages, have almost nothing left to copy and sync inside a commit.
///
/// The writer's automatic checkpoint must stay: a PASSIVE checkpoint racing
/// a busy writer never finishes the WAL, and only a completed checkpoint
/// lets the writer restart it. Tried without it, the WAL grew by hundreds
/// of MB in seconds.
struct Checkpointer {
    nudges: std_mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path).map_err(sqlite("open checkpointer"))?;
        conn.busy_timeout(busy_timeout)
            .map_err(sqlite("set busy_timeout"))?;
        // Capacity 1: nudges arriving while a checkpoint runs collapse into one.
        let (nudges, inbox) = std_mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("hookyard-sqlite-checkpoint".into())
            .spawn(move || {
                // Ends when the writer thread, which holds the sender, ends.
                for () in inbox {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(error) = done {
                        tracing::warn!(
                            error = &error as &dyn std::error::Error,
                            "Background SQLite checkpoint failed; the writer's own checkpoints continue."
                        );
                    }
                }
            })
            .map_err(|e| StoreError::Open {
                url: path.display().to_string(),
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Self { nudges })
    }

    /// Asks for a checkpoint unless one is already pending.
    fn nudge(&self) {
        let _ = self.nudges.try_send(());
    }
}

/// One row as the writer thread needs it: headers already JSON-encoded on
/// the async side, the body shared (not copied).
struct Row {
    id: EventId,
    source: String,
    idem_key: String,
    method: String,
    path: String,
    headers: String,
    body: Bytes,
    received_at_ms: i64,
    verification: String,
}

type Reply = oneshot::Sender<Result<Vec<Inserted>, StoreError>>;

/// A batch for the writer thread and where to send its answer.
type Job = (Vec<Row>, Reply);

/// Handle to the writer thread.
pub(super) struct SqliteWriter {
    jobs: Mutex<Option<std_mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

/// Maps a rusqlite error for operation `op`.
fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { op, source }
}

impl SqliteWriter {
    /// Opens the writer connection (WAL, the configured `synchronous`) on an
    /// existing, migrated database file and starts its thread.
    pub(super) fn start(
        path: &Path,
        synchronous: SqliteSynchronous,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(path, synchronous, busy_timeout)?;
        let checkpointer = Checkpointer::start(path, busy_timeout)?;
        let (jobs, inbox) = std_mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("hookyard-sqlite-writer".into())
            .spawn(move || {
                // Ends when the sender is dropped (close) and the inbox is drained.
                let mut conn = conn;
                let mut since_nudge = 0;
                for (rows, reply) in inbox {
                    since_nudge += rows.len();
                    let _ = reply.send(write(&mut conn, &rows));
                    if since_nudge >= CHECKPOINT_EVERY_ROWS {
                        since_nudge = 0;
                        checkpointer.nudge();
                    }
                }
            })
            .map_err(|e| StoreError::Open {
                url: path.display().to_string(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Stops the thread after the batches already sent; closing the
    /// connection checkpoints the WAL into the database file.
    pub(super) async fn close(&self) {
        drop(self.jobs.lock().map(|mut j| j.take()).ok().flatten());
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// The writer's connection: WAL, so readers never block it and a commit is
/// one sequential append; under `synchronous = FULL` that append is fsynced
/// before COMMIT returns, which is what makes the ack a promise.
fn open_connection(
    path: &Path,
    synchronous: SqliteSynchronous,
    busy_timeout: Duration,
) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(sqlite("open writer"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(sqlite("set busy_timeout"))?;
    let level = match synchronous {
        SqliteSynchronous::Full => "FULL",
        SqliteSynchronous::Normal => "NORMAL",
        SqliteSynchronous::Off => "OFF",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {level}; PRAGMA foreign_keys = ON;"
    ))
    .map_err(sqlite("set pragmas"))?;
    Ok(conn)
}

/// Writes one batch in one IMMEDIATE transaction (the write lock is taken
/// at BEGIN, waiting up to busy_timeout for another process).
fn write(conn: &mut rusqlite::Connection, rows: &[Row]) -> Result<Vec<Inserted>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite("begin"))?;
    let mut answers = Vec::with_capacity(rows.len());
    {
        let mut insert = tx
            .prepare_cached(INSERT)
            .map_err(sqlite("prepare insert"))?;
        let mut existing = tx
            .prepare_cached(EXISTING)
            .map_err(sqlite("prepare select"))?;
        for row in rows {
            let changed = insert
                .execute(params![
                    row.id.as_str(),
                    row.source,
                    row.idem_key,
                    row.method,
                    row.path,
                    row.headers,
                    &row.body[..],
                    row.received_at_ms,
                    row.verification,
                ])
                .map_err(sqlite("insert event"))?;
            if changed == 1 {
                answers.push(Inserted {
                    id: row.id.clone(),
                    duplicate: false,
                });
                continue;
            }
            // ON CONFLICT skipped it: answer with the id stored first.
            let id: Option<String> = existing
                .query_row(params![row.source, row.idem_key], |r| r.get(0))
                .optional()
                .map_err(sqlite("select duplicate event"))?;
            match id {
                Some(id) => answers.push(Inserted {
                    id: EventId::from_string(id),
                    duplicate: true,
                }),
                None => {
                    return Err(StoreError::Corrupt {
                        backend: BACKEND,
                        id: row.id.to_string(),
                        reason: "row neither inserted nor found under its key".into(),
                    })
                }
            }
        }
    }
    tx.commit().map_err(sqlite("commit"))?;
    Ok(answers)
}

#[async_trait::async_trait]
impl BatchWriter for SqliteWriter {
    async fn write_batch(&self, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
        let rows = rows
            .iter()
            .map(|row| {
                Ok(Row {
                    id: row.id.clone(),
                    source: row.source.clone(),
                    idem_key: row.idem_key.clone(),
                    method: row.method.clone(),
                    path: row.path.clone(),
                    headers: super::row::encode_headers(BACKEND, row)?,
                    body: row.body.clone(),
                    received_at_ms: row.received_at_ms,
                    verification: row.verification.clone(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (reply, answer) = oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.as_ref().map(|j| j.send((rows, reply)).is_ok()));
        if sent != Some(true) {
            return Err(StoreError::Closed);
        }
        answer.await.unwrap_or(Err(StoreError::Closed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ack's durability promise rests on these two pragmas of the writer.
    #[test]
    fn the_writer_runs_wal_with_the_configured_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        for (level, expected) in [
            (SqliteSynchronous::Full, 2),
            (SqliteSynchronous::Normal, 1),
            (SqliteSynchronous::Off, 0),
        ] {
            let path = dir.path().join(format!("{level:?}.db"));
            let conn = open_connection(&path, level, Duration::from_secs(1)).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!((mode.as_str(), sync), ("wal", expected), "{level:?}");
        }
    }
}
