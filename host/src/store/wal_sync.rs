//! Pipelined WAL fsync for the SQLite writer: while this thread makes batch
//! N durable, the writer is already executing batch N+1; batch N's answers
//! are released only after an fsync that started after its COMMIT.
//!
//! Why this is the same promise as SQLite's own `synchronous = FULL`: in WAL
//! mode, FULL differs from NORMAL only by one fsync of the WAL file at the
//! end of each COMMIT (the WAL header at a restart and every checkpoint are
//! synced in both). The writer runs FULL through `sqlite_wal_vfs`, whose
//! COMMIT-time sync only writes the commit's frames out, and this thread
//! performs the fsync instead, on its own descriptor of the same file,
//! before anyone is told the batch is stored. fdatasync covers every write made to the file
//! before the call, whichever descriptor made it, so one fsync here can also
//! cover several batches that committed while the previous one ran: a second
//! level of group commit.
//!
//! An fsync that fails leaves the page cache in an unknown state (the kernel
//! may drop the dirty pages and report later fsyncs as successful), so the
//! first failure is final: every later batch is refused until restart, the
//! way PostgreSQL treats the same failure.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use rustix::fs::{AtFlags, StatxFlags};

use super::checkpoint_sync::{self, Registration};
use super::StoreError;

/// What to do once the WAL is synced past a commit (answer its waiters),
/// given the sync's outcome.
pub(super) type Release = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Handle to the sync thread, owned by the writer thread.
pub(super) struct WalSync {
    queue: Option<std_mpsc::Sender<Release>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<OnceLock<Arc<std::io::Error>>>,
    /// Completed fsyncs (tests and diagnostics).
    syncs: Arc<AtomicU64>,
    wal_path: PathBuf,
    /// Checkpoints of this WAL send their syncs here too (`checkpoint_sync`).
    checkpoints: Option<Registration>,
}

impl WalSync {
    /// Starts the thread for the WAL of the database at `db_path`. The
    /// writer connection must already be open in WAL mode (so the file exists).
    pub(super) fn start(db_path: &Path) -> Result<Self, StoreError> {
        let mut wal_path = db_path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal_path = PathBuf::from(wal_path);
        let open_error = |reason: String| StoreError::Open {
            url: db_path.display().to_string(),
            reason,
        };
        let wal = WalFile::open(&wal_path)
            .map_err(|e| open_error(format!("cannot open `{}`: {e}", wal_path.display())))?;
        let failure = Arc::new(OnceLock::new());
        let syncs = Arc::new(AtomicU64::new(0));
        let (queue, inbox) = std_mpsc::channel::<Release>();
        // Canonical, as the VFS's lookup is: SQLite names the WAL by its
        // full path, the configuration may have given a relative one.
        let canonical = std::fs::canonicalize(&wal_path)
            .map_err(|e| open_error(format!("cannot resolve `{}`: {e}", wal_path.display())))?;
        let checkpoints = checkpoint_sync::register(canonical, queue.clone());
        let thread = std::thread::Builder::new()
            .name("hookyard-sqlite-fsync".into())
            .spawn({
                let failure = Arc::clone(&failure);
                let syncs = Arc::clone(&syncs);
                move || run(wal, &inbox, &failure, &syncs)
            })
            .map_err(|e| open_error(format!("cannot start the fsync thread: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            failure,
            syncs,
            wal_path,
            checkpoints: Some(checkpoints),
        })
    }

    /// Runs `release` after the next fsync of the WAL (one that starts
    /// after this call), with its outcome. Call it right after a COMMIT.
    pub(super) fn after_next_sync(&self, release: Release) {
        let Some(queue) = &self.queue else { return };
        if let Err(std_mpsc::SendError(release)) = queue.send(release) {
            // The thread is gone (it cannot panic short of a bug): the
            // batch's durability is unknown, so it is not acknowledged.
            release(Err(StoreError::Closed));
        }
    }

    /// How many fsyncs have completed.
    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Acquire)
    }

    /// The live count of completed fsyncs.
    pub(super) fn sync_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.syncs)
    }

    /// The failure that stopped durable writes, if an fsync has failed.
    pub(super) fn failed(&self) -> Option<StoreError> {
        self.failure.get().map(|source| StoreError::Fsync {
            path: self.wal_path.display().to_string(),
            source: Arc::clone(source),
        })
    }
}

impl Drop for WalSync {
    /// Syncs and answers everything handed over, then stops the thread.
    fn drop(&mut self) {
        // First, so that no checkpoint's request keeps the thread alive.
        drop(self.checkpoints.take());
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync loop: take everything committed so far, one fsync, answer all.
fn run(
    mut wal: WalFile,
    inbox: &std_mpsc::Receiver<Release>,
    failure: &OnceLock<Arc<std::io::Error>>,
    syncs: &AtomicU64,
) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        group.extend(inbox.try_iter());
        let synced = match failure.get() {
            Some(earlier) => Err(Arc::clone(earlier)),
            None => wal
                .sync()
                .map(|()| {
                    syncs.fetch_add(1, Ordering::Release);
                })
                .map_err(|error| {
                    tracing::error!(
                        path = %wal.path.display(),
                        error = &error as &dyn std::error::Error,
                        "fsync of the SQLite WAL failed: refusing every write until restart."
                    );
                    Arc::clone(failure.get_or_init(|| Arc::new(error)))
                }),
        };
        for release in group {
            release(match &synced {
                Ok(()) => Ok(()),
                Err(source) => Err(StoreError::Fsync {
                    path: wal.path.display().to_string(),
                    source: Arc::clone(source),
                }),
            });
        }
    }
}

/// Our own descriptor of the WAL file.
struct WalFile {
    path: PathBuf,
    file: File,
    /// (device, inode) of `file`, to notice the path naming another file.
    identity: (u64, u64),
}

impl WalFile {
    fn open(path: &Path) -> std::io::Result<Self> {
        // Write access: fsync on a read-only descriptor works on Linux but
        // POSIX leaves it unspecified. Never created here: SQLite owns it.
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        // A full stat once at open costs nothing that matters (see `sync`).
        let meta = file.metadata()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// fdatasync of the file the path names now. SQLite keeps one WAL file
    /// while any connection is open (ours is, for the writer's whole life),
    /// so the path should never change files; a `statx` per sync (about a
    /// microsecond, against the fsync's hundreds) makes that checked, not assumed.
    ///
    /// It asks for the inode number only, never the timestamps. Since Linux
    /// 6.13 (multigrain timestamps: ext4, XFS, btrfs, tmpfs), a query of a
    /// file's times makes its next write stamp a fine-grained time, which
    /// always differs from the last one and so dirties the inode; every
    /// fdatasync after that also writes the inode's block, one more request
    /// to the disk. A full `stat` here made that happen at nearly every
    /// sync: 3.0 disk writes per `fdatasync` against 2.2 with this mask,
    /// measured with a write-statx-fdatasync loop (bench/README.md, "The
    /// sync thread's stat and the inode write").
    fn sync(&mut self) -> std::io::Result<()> {
        if identity_of(&self.path)? != self.identity {
            *self = Self::open(&self.path)?;
        }
        self.file.sync_data()
    }
}

/// (device, inode) of the file `path` names, as `std`'s `dev()` and `ino()`
/// give them, asking `statx` for the inode number only (the device is
/// always filled in).
pub(super) fn identity_of(path: &Path) -> std::io::Result<(u64, u64)> {
    match rustix::fs::statx(rustix::fs::CWD, path, AtFlags::empty(), StatxFlags::INO) {
        Ok(stat) => Ok((
            rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor),
            stat.stx_ino,
        )),
        // No `statx` (Linux before 4.11, some container sandboxes): a full
        // stat, which brings the inode writes back but still checks.
        Err(rustix::io::Errno::NOSYS) => std::fs::metadata(path).map(|m| (m.dev(), m.ino())),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// A release that reports the sync's outcome on a channel.
    fn release() -> (Release, oneshot::Receiver<Result<(), StoreError>>) {
        let (tx, rx) = oneshot::channel();
        let release: Release = Box::new(move |synced| {
            let _ = tx.send(synced);
        });
        (release, rx)
    }

    fn start_with_wal(dir: &Path) -> WalSync {
        std::fs::write(dir.join("x.db-wal"), b"").unwrap();
        WalSync::start(&dir.join("x.db")).unwrap()
    }

    #[tokio::test]
    async fn releases_run_after_a_sync_in_handover_order() {
        let dir = tempfile::tempdir().unwrap();
        let sync = start_with_wal(dir.path());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut done = Vec::new();
        for i in 0..3 {
            let (tx, rx) = oneshot::channel();
            let order = Arc::clone(&order);
            sync.after_next_sync(Box::new(move |synced| {
                order.lock().unwrap().push((i, synced.is_ok()));
                let _ = tx.send(());
            }));
            done.push(rx);
        }
        for rx in done {
            rx.await.unwrap();
        }
        assert_eq!(
            *order.lock().unwrap(),
            vec![(0, true), (1, true), (2, true)]
        );
        assert!(sync.syncs() >= 1);
        assert!(sync.failed().is_none());
    }

    #[tokio::test]
    async fn a_replaced_wal_file_is_reopened_and_a_missing_one_fails_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("x.db-wal");
        let sync = start_with_wal(dir.path());

        // Same path, new inode: synced through a fresh descriptor.
        std::fs::remove_file(&wal).unwrap();
        std::fs::write(&wal, b"new").unwrap();
        let (r, rx) = release();
        sync.after_next_sync(r);
        assert!(rx.await.unwrap().is_ok());

        // No file: the batch is not acknowledged, nor is any later one.
        std::fs::remove_file(&wal).unwrap();
        let (r, rx) = release();
        sync.after_next_sync(r);
        let err = rx.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::Fsync { .. }), "{err:?}");
        assert!(err.to_string().contains("x.db-wal"), "{err}");
        std::fs::write(&wal, b"back").unwrap();
        let (r, rx) = release();
        sync.after_next_sync(r);
        assert!(matches!(rx.await.unwrap(), Err(StoreError::Fsync { .. })));
        assert!(matches!(sync.failed(), Some(StoreError::Fsync { .. })));
    }

    #[test]
    fn the_inode_only_identity_matches_a_full_stat() {
        // The sync compares it with the full stat taken at open: the two
        // must encode the device the same way, or every sync would reopen.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db-wal");
        std::fs::write(&path, b"").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(identity_of(&path).unwrap(), (meta.dev(), meta.ino()));
        assert!(identity_of(&dir.path().join("missing")).is_err());
    }

    #[tokio::test]
    async fn dropping_the_handle_runs_every_release_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let sync = start_with_wal(dir.path());
        let receivers: Vec<_> = (0..50)
            .map(|_| {
                let (r, rx) = release();
                sync.after_next_sync(r);
                rx
            })
            .collect();
        drop(sync);
        for rx in receivers {
            assert!(rx.await.unwrap().is_ok());
        }
    }
}
