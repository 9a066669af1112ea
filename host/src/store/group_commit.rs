//! Group commit: one writer task per store turns concurrent inserts into one
//! transaction (and so one fsync), then answers every waiter.
//!
//! There is no timer. The writer waits for one insert, then takes whatever
//! else is already queued (up to `max_batch`) and commits it all. While that
//! commit runs, new requests queue up and form the next batch, so batches
//! grow exactly as fast as load does and an idle store adds no latency. The
//! queue is bounded: when it is full an insert fails at once with
//! [`StoreError::Overloaded`] (the HTTP layer answers 503 + Retry-After)
//! instead of piling up memory and latency.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{EventId, Inserted, NewEvent, StoreError};

/// Batching of the store's writer task (`[store.group_commit]`).
#[derive(Debug, Clone)]
pub struct GroupCommitConfig {
    /// Most rows committed in one transaction. Bigger batches amortise the
    /// fsync further but make each statement (and each waiter's wait) longer.
    pub max_batch: usize,
    /// Most inserts waiting for the writer; past it inserts are shed with
    /// [`StoreError::Overloaded`].
    pub queue_capacity: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self {
            // 256 rows x 9 columns stays well under SQLite's bound-variable limit.
            max_batch: 256,
            // About 16 full batches: a few seconds of backlog at most before
            // shedding, far less memory than the HTTP layer allows in flight.
            queue_capacity: 4096,
        }
    }
}

/// A backend's way to commit one batch.
#[async_trait::async_trait]
pub(crate) trait BatchWriter: Send + Sync + 'static {
    /// Inserts `rows` in ONE transaction, skipping rows whose (source,
    /// idem_key) is already stored, and returns one result per row, in order:
    /// the new id, or the stored id with `duplicate: true`. The rows have
    /// distinct (source, idem_key) pairs. On error nothing is committed.
    async fn write_batch(&self, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError>;
}

/// Builds a [`BatchWriter::write_batch`] answer once the backend knows which
/// ids its INSERT returned (`inserted`) and, for the other rows, which id is
/// stored under their (source, idem_key) (`existing`). A row in neither
/// means the database broke the ON CONFLICT contract: reported, not guessed.
pub(crate) fn answers(
    backend: &'static str,
    rows: &[NewEvent],
    inserted: &HashSet<String>,
    existing: &HashMap<(String, String), String>,
) -> Result<Vec<Inserted>, StoreError> {
    rows.iter()
        .map(|row| {
            if inserted.contains(row.id.as_str()) {
                return Ok(Inserted {
                    id: row.id.clone(),
                    duplicate: false,
                });
            }
            // Allocation-free lookup would need a borrowed tuple key; batches
            // have few duplicates, so cloning the key is cheap enough.
            match existing.get(&(row.source.clone(), row.idem_key.clone())) {
                Some(id) => Ok(Inserted {
                    id: EventId::from_string(id.clone()),
                    duplicate: true,
                }),
                None => Err(StoreError::Corrupt {
                    backend,
                    id: row.id.to_string(),
                    reason: "row neither inserted nor found under its key".into(),
                }),
            }
        })
        .collect()
}

/// An insert waiting for the writer, with where to send its answer.
type Job = (NewEvent, oneshot::Sender<Result<Inserted, StoreError>>);

/// The queue in front of one writer task.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Job>,
    /// Tells the writer to stop taking new work once the queue is drained.
    stop: CancellationToken,
    /// Holds the writer task so that `close` (possibly called twice) can wait for it.
    tasks: TaskTracker,
}

impl GroupCommit {
    /// Spawns the writer task for `writer` (`backend` names it in errors).
    pub(crate) fn start<W: BatchWriter>(
        writer: Arc<W>,
        backend: &'static str,
        config: &GroupCommitConfig,
    ) -> Self {
        // Zero would panic (channel) or never commit (batch): treat it as 1.
        let (queue, rx) = mpsc::channel(config.queue_capacity.max(1));
        let max_batch = config.max_batch.max(1);
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(run_writer(writer, backend, max_batch, rx, stop.clone()));
        tasks.close();
        Self { queue, stop, tasks }
    }

    /// Queues `event` and waits until its batch is committed.
    pub(crate) async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        let (answer, answered) = oneshot::channel();
        // try_send, never send().await: waiting for room would only turn
        // overload into unbounded latency; the provider retries a 503.
        self.queue.try_send((event, answer)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        // A dropped sender means the writer task ended without answering (it panicked).
        answered.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Whether the writer still accepts inserts.
    pub(crate) fn is_running(&self) -> bool {
        !self.queue.is_closed() && !self.stop.is_cancelled()
    }

    /// Stops intake, lets the writer commit everything already queued, and
    /// waits for it to finish.
    pub(crate) async fn close(&self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }
}

/// The writer task: one batch at a time until stopped and drained.
async fn run_writer<W: BatchWriter>(
    writer: Arc<W>,
    backend: &'static str,
    max_batch: usize,
    mut rx: mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    let mut closing = false;
    loop {
        let first = tokio::select! {
            // Queued work first, so a stop never strands an accepted insert.
            biased;
            job = rx.recv() => match job {
                Some(job) => job,
                // Closed and drained, or every sender dropped.
                None => break,
            },
            () = stop.cancelled(), if !closing => {
                // Refuse new inserts; recv() still yields what is buffered.
                rx.close();
                closing = true;
                continue;
            }
        };
        let mut batch = Vec::with_capacity(max_batch.min(rx.len() + 1));
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(&*writer, backend, batch).await;
    }
}

/// Where a queued insert's answer comes from.
enum Slot {
    /// It is row `i` of the batch written.
    Own(usize),
    /// Its (source, idem_key) appeared earlier in the same batch, as row `i`.
    SameAs(usize),
}

/// Commits one batch and answers each waiter.
async fn commit<W: BatchWriter>(writer: &W, backend: &'static str, batch: Vec<Job>) {
    let size = batch.len();
    // A key twice in one batch: the first occurrence is the inserter, later
    // ones are duplicates of it. Deduplicating here keeps the backends'
    // statements simple (no row conflicts with another row of the same
    // statement) and the rule identical on both.
    let mut rows = Vec::with_capacity(size);
    let mut slots = Vec::with_capacity(size);
    let mut waiters = Vec::with_capacity(size);
    let mut seen: HashMap<(String, String), usize> = HashMap::with_capacity(size);
    for (event, answer) in batch {
        waiters.push(answer);
        let key = (event.source.clone(), event.idem_key.clone());
        match seen.get(&key) {
            Some(&first) => slots.push(Slot::SameAs(first)),
            None => {
                seen.insert(key, rows.len());
                slots.push(Slot::Own(rows.len()));
                rows.push(event);
            }
        }
    }

    let started = std::time::Instant::now();
    let written = writer.write_batch(&rows).await;
    // One line per commit at DEBUG (off by default): batch sizes and commit
    // times are what to look at when ack latency or throughput disappoints.
    tracing::debug!(
        backend,
        rows = rows.len(),
        waiters = size,
        commit_us = started.elapsed().as_micros() as u64,
        ok = written.is_ok(),
        "Batch committed."
    );
    match written {
        Ok(results) => {
            debug_assert_eq!(results.len(), rows.len(), "one result per row");
            for (slot, answer) in slots.into_iter().zip(waiters) {
                let result = match slot {
                    Slot::Own(i) => results.get(i).cloned(),
                    Slot::SameAs(i) => results.get(i).map(|first| Inserted {
                        id: first.id.clone(),
                        duplicate: true,
                    }),
                };
                // A missing result (a backend bug) drops the sender: the
                // waiter sees Closed rather than a wrong answer. A waiter
                // that gave up (client gone) is fine: its row is committed.
                if let Some(result) = result {
                    let _ = answer.send(Ok(result));
                }
            }
            tracing::trace!(backend, rows = size, "Committed batch.");
        }
        Err(error) => {
            // One transaction: nothing of the batch is committed, every
            // waiter gets the same cause (StoreError is not Clone, hence Arc).
            let cause = Arc::new(error);
            for answer in waiters {
                let _ = answer.send(Err(StoreError::BatchFailed {
                    backend,
                    source: Arc::clone(&cause),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use bytes::Bytes;
    use tokio::sync::Notify;

    use super::*;

    /// An in-memory writer that records batch sizes, can be told to fail,
    /// and can hold a batch until released (to make queues fill up).
    #[derive(Default)]
    struct FakeWriter {
        stored: Mutex<HashMap<(String, String), EventId>>,
        batches: Mutex<Vec<usize>>,
        fail: AtomicBool,
        hold: AtomicBool,
        entered: Notify,
        release: Notify,
    }

    #[async_trait::async_trait]
    impl BatchWriter for FakeWriter {
        async fn write_batch(&self, rows: &[NewEvent]) -> Result<Vec<Inserted>, StoreError> {
            self.batches.lock().unwrap().push(rows.len());
            if self.hold.load(Ordering::SeqCst) {
                self.entered.notify_one();
                self.release.notified().await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Closed);
            }
            let mut stored = self.stored.lock().unwrap();
            Ok(rows
                .iter()
                .map(|row| {
                    let key = (row.source.clone(), row.idem_key.clone());
                    match stored.get(&key) {
                        Some(id) => Inserted {
                            id: id.clone(),
                            duplicate: true,
                        },
                        None => {
                            stored.insert(key, row.id.clone());
                            Inserted {
                                id: row.id.clone(),
                                duplicate: false,
                            }
                        }
                    }
                })
                .collect())
        }
    }

    fn event(key: &str) -> NewEvent {
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
        }
    }

    fn config(max_batch: usize, queue_capacity: usize) -> GroupCommitConfig {
        GroupCommitConfig {
            max_batch,
            queue_capacity,
        }
    }

    #[tokio::test]
    async fn queued_inserts_share_a_batch_and_duplicates_in_it_get_the_first_id() {
        let writer = Arc::new(FakeWriter {
            hold: AtomicBool::new(true),
            ..Default::default()
        });
        let gc = Arc::new(GroupCommit::start(writer.clone(), "fake", &config(256, 64)));

        // The first insert occupies the writer; the next three queue behind it.
        let first = tokio::spawn({
            let gc = gc.clone();
            async move { gc.insert(event("a")).await }
        });
        writer.entered.notified().await;
        writer.hold.store(false, Ordering::SeqCst);
        let (b1, b2, c) = (event("b"), event("b"), event("c"));
        let b1_id = b1.id.clone();
        let rest = tokio::spawn({
            let gc = gc.clone();
            async move { futures::join!(gc.insert(b1), gc.insert(b2), gc.insert(c)) }
        });
        tokio::task::yield_now().await;
        writer.release.notify_one();

        assert!(!first.await.unwrap().unwrap().duplicate);
        let (r1, r2, r3) = rest.await.unwrap();
        assert_eq!(
            r1.unwrap(),
            Inserted {
                id: b1_id.clone(),
                duplicate: false
            }
        );
        assert_eq!(
            r2.unwrap(),
            Inserted {
                id: b1_id,
                duplicate: true
            }
        );
        assert!(!r3.unwrap().duplicate);
        // Two rows written in the second batch: "b" once, "c".
        assert_eq!(*writer.batches.lock().unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_waiter_with_the_cause() {
        let writer = Arc::new(FakeWriter {
            fail: AtomicBool::new(true),
            ..Default::default()
        });
        let gc = GroupCommit::start(writer, "fake", &config(256, 64));
        let (a, b) = futures::join!(gc.insert(event("a")), gc.insert(event("b")));
        for result in [a, b] {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::BatchFailed {
                        backend: "fake",
                        ..
                    }
                ),
                "{err:?}"
            );
            let cause = std::error::Error::source(&err).unwrap();
            assert_eq!(cause.to_string(), StoreError::Closed.to_string());
        }
    }

    #[tokio::test]
    async fn a_full_queue_sheds_load() {
        let writer = Arc::new(FakeWriter {
            hold: AtomicBool::new(true),
            ..Default::default()
        });
        let gc = Arc::new(GroupCommit::start(writer.clone(), "fake", &config(1, 1)));
        let busy = tokio::spawn({
            let gc = gc.clone();
            async move { gc.insert(event("a")).await }
        });
        writer.entered.notified().await;
        writer.hold.store(false, Ordering::SeqCst);
        // The writer is busy: one insert fits in the queue, the next is shed.
        let queued = tokio::spawn({
            let gc = gc.clone();
            async move { gc.insert(event("b")).await }
        });
        tokio::task::yield_now().await;
        assert!(matches!(
            gc.insert(event("c")).await,
            Err(StoreError::Overloaded)
        ));
        writer.release.notify_one();
        assert!(busy.await.unwrap().is_ok());
        assert!(queued.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn close_commits_what_is_queued_then_refuses() {
        let writer = Arc::new(FakeWriter {
            hold: AtomicBool::new(true),
            ..Default::default()
        });
        let gc = Arc::new(GroupCommit::start(writer.clone(), "fake", &config(256, 64)));
        let pending: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|key| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.insert(event(key)).await })
            })
            .collect();
        writer.entered.notified().await;
        writer.hold.store(false, Ordering::SeqCst);
        let closing = tokio::spawn({
            let gc = gc.clone();
            async move { gc.close().await }
        });
        tokio::task::yield_now().await;
        writer.release.notify_one();
        closing.await.unwrap();
        for task in pending {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(writer.stored.lock().unwrap().len(), 3);
        assert!(!gc.is_running());
        assert!(matches!(
            gc.insert(event("d")).await,
            Err(StoreError::Closed)
        ));
        gc.close().await; // twice is fine
    }
}
