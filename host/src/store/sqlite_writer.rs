//! The SQLite writer: one OS thread owning one rusqlite connection, taking
//! whole batches straight off the group-commit queue.
//!
//! Why not sqlx here, as everywhere else: sqlx runs each SQLite statement
//! as a hop to its connection's worker thread and builds a fresh multi-row
//! statement per batch size. A batch here is one hop to this thread, then
//! per row one cached prepared INSERT (and, for a duplicate, one cached
//! SELECT) in plain C, then one COMMIT: measured in `bench/` at a fraction
//! of the CPU per row. Reads and migrations stay on sqlx.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::group_commit::{log_commit, Batch, Intake, Work};
use super::sqlite_wal_vfs;
use super::wal_sync::WalSync;
use super::{EventId, Inserted, NewEvent, SqliteSynchronous, StoreError};

const BACKEND: &str = "sqlite";

const INSERT: &str = "INSERT INTO events \
    (id, source, idem_key, method, path, headers, body, received_at_ms, verification, \
     dispatch_at_ms, status) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
    ON CONFLICT (source, idem_key) DO NOTHING";

const EXISTING: &str = "SELECT id FROM events WHERE source = ?1 AND idem_key = ?2";

/// Rows committed between two nudges of the checkpointer. Small: each
/// background checkpoint then copies little, and the automatic checkpoint
/// left in the writer's commit finds the WAL nearly backfilled. Measured
/// with `bench/` (c64): p99 ack latency fell from ~18 ms (automatic
/// checkpoints only) to ~8-10 ms.
const CHECKPOINT_EVERY_ROWS: usize = 100;

/// WAL pages after which a commit of the writer runs SQLite's automatic
/// checkpoint (`wal_autocheckpoint`; SQLite's default is 1000). That
/// checkpoint is what completes the WAL so it can restart, and it fsyncs
/// the database file each time. Under the end-to-end load (6-9 WAL pages
/// per event: insert, dispatch outcome, delivery result) the default ran
/// it ~50-80 times a second, an eighth of the writer's time, half of it in
/// that fsync. At 8000 pages (a WAL of up to ~32 MiB between restarts) it
/// runs a few times a second. Measured (bench/README.md): c64 ingest 3-14%
/// more req/s with p99 unchanged within the noise; at 10,000 events/s
/// offered end to end, 11-23% more delivered and the writer's CPU per
/// event 10-20% lower.
const WRITER_AUTOCHECKPOINT_PAGES: u32 = 8000;

/// A thread with its own connection that copies WAL frames into the
/// database file (PASSIVE: never blocks the writer) whenever nudged, so the
/// writer's own automatic checkpoints (every [`WRITER_AUTOCHECKPOINT_PAGES`])
/// have almost nothing left to copy inside a commit.
///
/// The writer's automatic checkpoint must stay: a PASSIVE checkpoint racing
/// a busy writer never finishes the WAL, and only a completed checkpoint
/// lets the writer restart it. Tried without it, the WAL grew by hundreds
/// of MB in seconds.
///
/// Its connection is opened as the writer's is (same VFS and sync
/// settings), so that under `full` its checkpoints' syncs of the WAL are
/// the fsync thread's next fsync rather than one more of their own (see
/// `checkpoint_sync.rs`).
struct Checkpointer {
    nudges: std_mpsc::SyncSender<()>,
}

impl Checkpointer {
    fn start(
        path: &Path,
        synchronous: SqliteSynchronous,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(path, synchronous, busy_timeout, "open checkpointer")?;
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

/// Other writes the writer thread runs between batches (dispatch claims and
/// outcomes), given the connection, or the fsync failure that refuses
/// every write. A job answers its caller itself (through a oneshot).
pub(super) type SqliteJob =
    Box<dyn FnOnce(Result<&mut rusqlite::Connection, StoreError>) + Send + 'static>;

/// Handle to the writer thread.
pub(super) struct SqliteWriter {
    /// Yields the connection when the thread ends, so that `close` can
    /// close it last (after the read pool), which checkpoints the WAL.
    thread: Mutex<Option<JoinHandle<rusqlite::Connection>>>,
    /// Completed WAL fsyncs under `full`.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "read by tests; the metrics issue will export it")
    )]
    fsyncs: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteWriter").finish_non_exhaustive()
    }
}

/// Maps a rusqlite error for operation `op`.
pub(super) fn sqlite(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { op, source }
}

impl SqliteWriter {
    /// Opens the writer connection (WAL, the configured `synchronous`) on an
    /// existing, migrated database file and starts its thread, which takes
    /// its batches from `intake` until the group commit is closed.
    pub(super) fn start(
        path: &Path,
        synchronous: SqliteSynchronous,
        busy_timeout: Duration,
        intake: Intake<SqliteJob>,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(path, synchronous, busy_timeout, "open writer")?;
        // Opened after the connection, which has created the WAL file.
        let wal_sync = match synchronous {
            SqliteSynchronous::Full => Some(WalSync::start(path)?),
            SqliteSynchronous::Normal | SqliteSynchronous::Off => None,
        };
        let fsyncs = wal_sync.as_ref().map(WalSync::sync_counter);
        let checkpointer = Checkpointer::start(path, synchronous, busy_timeout)?;
        let thread = std::thread::Builder::new()
            .name("hookyard-sqlite-writer".into())
            .spawn(move || run(conn, intake, wal_sync, &checkpointer))
            .map_err(|e| StoreError::Open {
                url: path.display().to_string(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Self {
            thread: Mutex::new(Some(thread)),
            fsyncs,
        })
    }

    /// WAL fsyncs completed so far (`None` unless `synchronous = "full"`).
    #[cfg(test)]
    fn fsyncs(&self) -> Option<u64> {
        self.fsyncs
            .as_ref()
            .map(|n| n.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Waits for the thread (it ends once the group commit is closed and
    /// drained), then closes the connection, which checkpoints the WAL into
    /// the database file if no other connection is open.
    pub(super) async fn close(&self) {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join().map(drop)).await;
        }
    }
}

/// The writer thread: batches straight off the group-commit queue until it
/// is closed and drained. Returns the connection for `close` to close.
fn run(
    mut conn: rusqlite::Connection,
    mut intake: Intake<SqliteJob>,
    wal_sync: Option<WalSync>,
    checkpointer: &Checkpointer,
) -> rusqlite::Connection {
    let mut since_nudge = 0;
    while let Some(work) = intake.blocking_next() {
        let batch = match work {
            Work::Batch(batch) => batch,
            Work::Job(job) => {
                // Not fsynced before it answers: dispatch writes promise
                // nothing to a provider, and a lost one is redone (see
                // `dispatch/`). The next batch's fsync covers it anyway.
                match wal_sync.as_ref().and_then(WalSync::failed) {
                    Some(failed) => job(Err(failed)),
                    None => job(Ok(&mut conn)),
                }
                continue;
            }
        };
        let started = std::time::Instant::now();
        since_nudge += batch.rows().len();
        let written = commit(&mut conn, &batch, wal_sync.as_ref());
        log_commit(BACKEND, &batch, started, written.is_ok());
        match written {
            Ok(answers) => match &wal_sync {
                // Answered by the fsync thread, while this one writes on.
                Some(wal_sync) => wal_sync.after_next_sync(Box::new(move |synced| {
                    batch.answer(BACKEND, synced.map(|()| answers));
                })),
                None => batch.answer(BACKEND, Ok(answers)),
            },
            Err(error) => batch.answer(BACKEND, Err(error)),
        }
        if since_nudge >= CHECKPOINT_EVERY_ROWS {
            since_nudge = 0;
            checkpointer.nudge();
        }
    }
    // The last batches' fsync and answers, before the group commit learns
    // (from the intake's drop) that the writer has finished.
    drop(wal_sync);
    drop(intake);
    conn
}

/// Writes one batch, unless an earlier fsync failed: then nothing can be
/// promised any more, and it is refused before anything is written.
fn commit(
    conn: &mut rusqlite::Connection,
    batch: &Batch,
    wal_sync: Option<&WalSync>,
) -> Result<Vec<Inserted>, StoreError> {
    if let Some(failed) = wal_sync.and_then(WalSync::failed) {
        return Err(failed);
    }
    write(conn, batch.rows())
}

/// The writer's connection: WAL, so readers never block it and a commit is
/// one sequential append. Under `full` and `normal` it opens through
/// [`sqlite_wal_vfs`], which gathers a commit's WAL frames into one write,
/// and runs SQLite's FULL with `checkpoint_fullfsync`: the sync FULL asks
/// for at each COMMIT is where that VFS writes the frames out, and it
/// stops there; under `full` [`WalSync`] then fsyncs the append before
/// anyone is answered, which is what makes the ack a promise (the same
/// fsync SQLite's FULL makes inside COMMIT, moved off the writer's path:
/// see `wal_sync.rs`). Checkpoints sync as SQLite always does. `off` syncs
/// nothing, so it has no COMMIT-time sync to write out at, and writes
/// frame by frame through the default VFS.
fn open_connection(
    path: &Path,
    synchronous: SqliteSynchronous,
    busy_timeout: Duration,
    op: &'static str,
) -> Result<rusqlite::Connection, StoreError> {
    let conn = match synchronous {
        SqliteSynchronous::Full | SqliteSynchronous::Normal => {
            let vfs = sqlite_wal_vfs::register().map_err(|code| StoreError::Open {
                url: path.display().to_string(),
                reason: format!("cannot register the WAL write VFS (SQLite error {code})"),
            })?;
            rusqlite::Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs)
        }
        SqliteSynchronous::Off => rusqlite::Connection::open(path),
    }
    .map_err(sqlite(op))?;
    conn.busy_timeout(busy_timeout)
        .map_err(sqlite("set busy_timeout"))?;
    let level = match synchronous {
        SqliteSynchronous::Full | SqliteSynchronous::Normal => {
            "FULL; PRAGMA checkpoint_fullfsync = ON"
        }
        SqliteSynchronous::Off => "OFF",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {level}; PRAGMA foreign_keys = ON; \
         PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES};"
    ))
    .map_err(sqlite("set pragmas"))?;
    Ok(conn)
}

/// Writes one batch in one IMMEDIATE transaction (the write lock is taken
/// at BEGIN, waiting up to busy_timeout for another process).
fn write(conn: &mut rusqlite::Connection, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
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
            // Encoded here, on the writer's thread: one less copy of the
            // header list crossing threads.
            let headers = super::row::encode_headers(BACKEND, row)?;
            let changed = insert
                .execute(params![
                    row.id.as_str(),
                    row.source,
                    row.idem_key,
                    row.method,
                    row.path,
                    headers,
                    &row.body[..],
                    row.received_at_ms,
                    row.verification,
                    row.received_at_ms.saturating_add(super::DISPATCH_GRACE_MS),
                    super::initial_status(row),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_event as event;

    use super::super::group_commit::{GroupCommit, GroupCommitConfig};

    /// The ack's durability promise rests on WAL mode plus, under `full`,
    /// the fsync thread (the connection runs FULL, whose COMMIT-time sync
    /// only writes the frames out: see `sqlite_wal_vfs.rs`, `wal_sync.rs`),
    /// with checkpoints' syncs marked as full ones so they are made; the
    /// automatic checkpoint runs at the writer's own threshold.
    #[test]
    fn the_writer_runs_wal_with_the_configured_synchronous_level() {
        let dir = tempfile::tempdir().unwrap();
        for (level, expected, checkpoint_fullfsync) in [
            (SqliteSynchronous::Full, 2, 1),
            (SqliteSynchronous::Normal, 2, 1),
            (SqliteSynchronous::Off, 0, 0),
        ] {
            let path = dir.path().join(format!("{level:?}.db"));
            let conn = open_connection(&path, level, Duration::from_secs(1), "open").unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!((mode.as_str(), sync), ("wal", expected), "{level:?}");
            let fullfsync: i64 = conn
                .query_row("PRAGMA checkpoint_fullfsync", [], |r| r.get(0))
                .unwrap();
            assert_eq!(fullfsync, checkpoint_fullfsync, "{level:?}");
            let autocheckpoint: u32 = conn
                .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
                .unwrap();
            assert_eq!(autocheckpoint, WRITER_AUTOCHECKPOINT_PAGES);
        }
    }

    /// Under `full` an insert is answered only after an fsync of the WAL
    /// that followed its commit; `normal` answers without any.
    #[tokio::test]
    async fn under_full_every_answer_follows_an_fsync_of_its_commit() {
        let dir = tempfile::tempdir().unwrap();
        for level in [SqliteSynchronous::Full, SqliteSynchronous::Normal] {
            let path = dir.path().join(format!("{level:?}.db"));
            let setup = open_connection(&path, level, Duration::from_secs(1), "open").unwrap();
            for migration in [
                include_str!("../../migrations/sqlite/0001_events.sql"),
                include_str!("../../migrations/sqlite/0002_retention.sql"),
                include_str!("../../migrations/sqlite/0003_dispatch.sql"),
            ] {
                setup.execute_batch(migration).unwrap();
            }
            drop(setup);
            let (commits, intake) = GroupCommit::channel(&GroupCommitConfig::default());
            let writer = SqliteWriter::start(&path, level, Duration::from_secs(1), intake).unwrap();
            for i in 1..=3u64 {
                let inserted = commits.insert(event(&format!("k{i}"))).await.unwrap();
                assert!(!inserted.duplicate);
                match level {
                    SqliteSynchronous::Full => {
                        let fsyncs = writer.fsyncs().unwrap();
                        assert!(fsyncs >= i, "insert {i} answered after {fsyncs} fsyncs");
                    }
                    _ => assert_eq!(writer.fsyncs(), None),
                }
            }
            let again = commits.insert(event("k1")).await.unwrap();
            assert!(again.duplicate);
            commits.close().await;
            writer.close().await;
        }
    }

    /// Under `full` a checkpoint's sync of the WAL is one more fsync of
    /// the writer's sync thread, not one of its own; with no sync thread
    /// (the writer closed) the checkpoint syncs the WAL itself, and both
    /// complete. The database is named through a symlinked directory: the
    /// sync thread and SQLite must still find the same WAL.
    #[tokio::test]
    async fn under_full_a_checkpoint_syncs_the_wal_through_the_fsync_thread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        let path = dir.path().join("link").join("ckpt.db");
        let level = SqliteSynchronous::Full;
        let open = || open_connection(&path, level, Duration::from_secs(1), "open").unwrap();
        open()
            .execute_batch(concat!(
                include_str!("../../migrations/sqlite/0001_events.sql"),
                include_str!("../../migrations/sqlite/0002_retention.sql"),
                include_str!("../../migrations/sqlite/0003_dispatch.sql"),
            ))
            .unwrap();
        let (commits, intake) = GroupCommit::channel(&GroupCommitConfig::default());
        let writer = SqliteWriter::start(&path, level, Duration::from_secs(1), intake).unwrap();
        for i in 0..3 {
            commits.insert(event(&format!("k{i}"))).await.unwrap();
        }
        // Opened as the background checkpointer's connection is.
        let checkpointer = open();
        let checkpoint = |conn: &rusqlite::Connection| -> (i64, i64, i64) {
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap()
        };
        let before = writer.fsyncs().unwrap();
        let (busy, frames, copied) = checkpoint(&checkpointer);
        assert_eq!(busy, 0);
        assert!(
            frames > 0 && copied == frames,
            "{frames} frames, {copied} copied"
        );
        let after = writer.fsyncs().unwrap();
        assert!(
            after > before,
            "the checkpoint made no fsync of the sync thread ({before} before, {after} after)"
        );

        commits.close().await;
        writer.close().await;
        checkpointer
            .execute(
                "INSERT INTO events (id, source, idem_key, method, path, headers, body, \
                 received_at_ms, verification) VALUES ('evt_x', 's', 'k9', 'POST', '/', '[]', x'', 0, 'none')",
                [],
            )
            .unwrap();
        let (busy, frames, copied) = checkpoint(&checkpointer);
        assert_eq!(busy, 0);
        assert!(
            frames > 0 && copied == frames,
            "{frames} frames, {copied} copied"
        );
    }
}
