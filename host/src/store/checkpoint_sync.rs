//! A checkpoint's sync of the WAL, made by the WAL sync thread's next
//! fsync instead of an fsync of its own.
//!
//! Why: the background checkpointer runs every 100 committed rows, and
//! each run began with an `fdatasync` of the WAL on its own descriptor,
//! beside the sync thread's ~1,000 a second: a few hundred more flush
//! requests a second to a disk where each is a VM exit, and writebacks of
//! the WAL split between two threads. With the checkpointer syncing nothing
//! at all (a throwaway build), the disk took ~35% fewer write requests per
//! webhook and the checkpointer spent ~1.5 µs less per webhook
//! (bench/README.md, "The checkpointer's WAL sync").
//!
//! Why it is the same guarantee: a checkpoint syncs the WAL before it
//! copies frames into the database file, so that no page can reach the
//! database file ahead of the frame it came from. The frames it copies
//! were all written to the WAL (`pwrite`) before it asks for that sync,
//! and [`wait_for_sync`] returns only after an fsync of the sync thread
//! that *started* after the request; an fdatasync covers every write made
//! to the file before it, whichever descriptor made it. The database
//! file's own sync (after a checkpoint that backfilled the whole WAL, and
//! before the WAL can restart) is untouched.
//!
//! The sync thread registers itself here under the WAL's canonical path
//! (the thread syncs whatever file that path names: see `wal_sync.rs`);
//! [`super::sqlite_wal_vfs`] looks it up when a checkpoint asks for a sync.
//! Not by inode: a test's WAL can be deleted under a live sync thread, and
//! its inode number reused by another database's WAL. With no thread
//! registered (`synchronous = "normal"`, or the writer closing) the VFS
//! makes the fsync itself, as before.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::wal_sync::Release;

/// The sync threads running now, by the canonical path of the WAL each syncs.
static THREADS: Mutex<Vec<(PathBuf, Weak<Queue>)>> = Mutex::new(Vec::new());

/// The sync thread's queue while it takes requests; `None` once closing.
#[derive(Debug)]
struct Queue(Mutex<Option<std_mpsc::Sender<Release>>>);

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Option<std_mpsc::Sender<Release>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn threads() -> MutexGuard<'static, Vec<(PathBuf, Weak<Queue>)>> {
    THREADS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A sync thread's entry here. Dropping it (before the thread is joined)
/// stops new requests; those already queued are still synced and answered.
#[derive(Debug)]
pub(super) struct Registration {
    queue: Arc<Queue>,
}

/// Makes the sync thread fed by `queue` take checkpoint syncs of the WAL
/// at `wal` (a canonical path). A later registration of the same path
/// takes precedence.
pub(super) fn register(wal: PathBuf, queue: std_mpsc::Sender<Release>) -> Registration {
    let queue = Arc::new(Queue(Mutex::new(Some(queue))));
    let mut threads = threads();
    threads.retain(|(_, q)| q.strong_count() > 0);
    threads.push((wal, Arc::downgrade(&queue)));
    Registration { queue }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.queue.lock().take();
        // Ours and any other registration already gone.
        let ours = Arc::as_ptr(&self.queue);
        threads().retain(|(_, q)| q.strong_count() > 0 && q.as_ptr() != ours);
    }
}

/// What came of a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waited {
    /// An fsync that started after the request completed.
    Synced,
    /// That fsync failed (and with it every durable write, until restart).
    Failed,
    /// No sync thread takes requests for this WAL: sync it yourself.
    NoThread,
}

/// Blocks until the sync thread of the WAL at `wal` (a canonical path) has
/// completed an fsync that started after this call.
pub(super) fn wait_for_sync(wal: &Path) -> Waited {
    let queue = threads()
        .iter()
        .rev()
        .find(|(path, _)| path == wal)
        .and_then(|(_, q)| q.upgrade());
    let Some(queue) = queue else {
        return Waited::NoThread;
    };
    let (done, synced) = std_mpsc::sync_channel(1);
    let sent = match queue.lock().as_ref() {
        Some(sender) => sender
            .send(Box::new(move |outcome| {
                let _ = done.send(outcome.is_ok());
            }))
            .is_ok(),
        None => false,
    };
    if !sent {
        return Waited::NoThread;
    }
    match synced.recv() {
        Ok(true) => Waited::Synced,
        Ok(false) => Waited::Failed,
        // The thread dropped the request unrun: it only does that if it
        // died, and then nothing it did is known.
        Err(_) => Waited::NoThread,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in sync thread: answers each request with `outcome`.
    fn thread(outcome: bool) -> (std_mpsc::Sender<Release>, std::thread::JoinHandle<usize>) {
        let (tx, rx) = std_mpsc::channel::<Release>();
        let handle = std::thread::spawn(move || {
            let mut served = 0;
            for release in rx {
                served += 1;
                release(if outcome {
                    Ok(())
                } else {
                    Err(super::super::StoreError::Closed)
                });
            }
            served
        });
        (tx, handle)
    }

    #[test]
    fn a_request_reaches_the_thread_of_its_wal_only_while_registered() {
        let (tx, handle) = thread(true);
        let registration = register("/test/a.db-wal".into(), tx);
        assert_eq!(wait_for_sync(Path::new("/test/a.db-wal")), Waited::Synced);
        assert_eq!(wait_for_sync(Path::new("/test/b.db-wal")), Waited::NoThread);
        drop(registration);
        assert_eq!(wait_for_sync(Path::new("/test/a.db-wal")), Waited::NoThread);
        // The registration held the thread's only sender: it has ended,
        // having served exactly the one request.
        assert_eq!(handle.join().unwrap(), 1);
    }

    #[test]
    fn a_failed_fsync_is_reported_as_such() {
        let (tx, handle) = thread(false);
        let registration = register("/test/c.db-wal".into(), tx);
        assert_eq!(wait_for_sync(Path::new("/test/c.db-wal")), Waited::Failed);
        drop(registration);
        handle.join().unwrap();
    }
}
