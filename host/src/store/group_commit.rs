//! Group commit: concurrent inserts share one transaction (and so one
//! fsync), then every waiter is answered.
//!
//! There is no timer. The writer waits for one insert, then takes whatever
//! else is already queued (up to `max_batch`) and commits it all. While that
//! commit runs, new requests queue up and form the next batch, so batches
//! grow exactly as fast as load does and an idle store adds no latency. The
//! queue is bounded: when it is full an insert fails at once with
//! [`StoreError::Overloaded`] (the HTTP layer answers 503 + Retry-After)
//! instead of piling up memory and latency.
//!
//! The writer is whoever holds the [`Intake`]: a tokio task for Postgres
//! ([`GroupCommit::start`] with a [`BatchWriter`]), or the SQLite writer's
//! own OS thread, which takes batches straight off the queue with
//! [`Intake::blocking_next`] so no async task sits between the
//! requests and the database (a hop each way per batch, each a wait for a
//! busy worker's attention; see `sqlite_writer.rs`).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{EventId, Inserted, NewEvent, StoreError};

/// Batching of the store's writer (`[store]` `max_batch`, `queue_capacity`).
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

/// A backend that commits batches from an async task.
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

/// Where an insert's answer goes.
type Answer = oneshot::Sender<Result<Inserted, StoreError>>;

/// What the queue carries. `J` is other work for the same writer (the
/// SQLite writer's dispatch writes, which must not contend with ingest for
/// the file lock); a writer without such work uses [`NoJobs`].
#[expect(
    clippy::large_enum_variant,
    reason = "nearly all messages are inserts; boxing would allocate per insert"
)]
enum Msg<J> {
    /// An insert waiting for its batch.
    Insert(NewEvent, Answer),
    /// Other work, run between two batches in queue order.
    Job(J),
    /// Sent by [`GroupCommit::close`]: take no more, finish what is queued.
    Stop,
}

/// The job type of a writer that takes only inserts.
pub(crate) enum NoJobs {}

/// What a writer on its own thread takes next.
pub(crate) enum Work<J> {
    /// Inserts to commit together.
    Batch(Batch),
    /// One job.
    Job(J),
}

/// The sending side: what the store's `insert_event` and `close` use.
#[derive(Debug)]
pub(crate) struct GroupCommit<J = NoJobs> {
    queue: mpsc::Sender<Msg<J>>,
    /// Set by `close`: inserts are refused from then on.
    closing: AtomicBool,
    /// Cancelled when the writer has dropped its [`Intake`], i.e. finished.
    finished: CancellationToken,
}

impl<J> std::fmt::Debug for Msg<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Insert(..) => "Insert",
            Self::Job(_) => "Job",
            Self::Stop => "Stop",
        })
    }
}

impl<J: Send + 'static> GroupCommit<J> {
    /// A queue and its receiving end, for a writer that runs its own loop.
    pub(crate) fn channel(config: &GroupCommitConfig) -> (Self, Intake<J>) {
        // Zero would panic (channel) or never commit (batch): treat it as 1.
        let (queue, rx) = mpsc::channel(config.queue_capacity.max(1));
        let finished = CancellationToken::new();
        let intake = Intake {
            rx,
            held: None,
            max_batch: config.max_batch.max(1),
            _finished: finished.clone().drop_guard(),
        };
        let commits = Self {
            queue,
            closing: AtomicBool::new(false),
            finished,
        };
        (commits, intake)
    }

    /// Queues `event` and waits until its batch is committed.
    pub(crate) async fn insert(&self, event: NewEvent) -> Result<Inserted, StoreError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (answer, answered) = oneshot::channel();
        // try_send, never send().await: waiting for room would only turn
        // overload into unbounded latency; the provider retries a 503.
        self.queue
            .try_send(Msg::Insert(event, answer))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?;
        // A dropped sender means the writer ended without answering (it panicked).
        answered.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Queues `job` behind everything already queued, waiting for room
    /// (jobs come from background work, which can wait; inserts cannot).
    pub(crate) async fn job(&self, job: J) -> Result<(), StoreError> {
        if self.closing.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.queue
            .send(Msg::Job(job))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Whether the writer still accepts inserts.
    pub(crate) fn is_running(&self) -> bool {
        !self.closing.load(Ordering::Acquire)
            && !self.queue.is_closed()
            && !self.finished.is_cancelled()
    }

    /// Stops intake, lets the writer commit everything already queued, and
    /// waits for it to finish. Safe to call more than once.
    pub(crate) async fn close(&self) {
        self.closing.store(true, Ordering::Release);
        // Behind everything queued; an error means the writer is gone already.
        let _ = self.queue.send(Msg::Stop).await;
        self.finished.cancelled().await;
    }
}

/// The receiving side, held by the writer. Dropping it tells `close` that
/// the writer has finished.
#[derive(Debug)]
pub(crate) struct Intake<J = NoJobs> {
    rx: mpsc::Receiver<Msg<J>>,
    /// A job met while filling a batch: it runs right after that batch.
    held: Option<J>,
    max_batch: usize,
    _finished: DropGuard,
}

impl GroupCommit<NoJobs> {
    /// A queue served by a tokio task that commits through `writer`
    /// (`backend` names it in errors).
    pub(crate) fn start<W: BatchWriter>(
        writer: Arc<W>,
        backend: &'static str,
        config: &GroupCommitConfig,
    ) -> Self {
        let (commits, intake) = Self::channel(config);
        tokio::spawn(run_writer(writer, backend, intake));
        commits
    }
}

impl Intake<NoJobs> {
    /// Waits for the next batch; `None` once stopped and drained.
    pub(crate) async fn next_batch(&mut self) -> Option<Batch> {
        loop {
            match self.rx.recv().await? {
                Msg::Insert(event, answer) => return Some(self.fill((event, answer))),
                Msg::Job(never) => match never {},
                Msg::Stop => self.rx.close(),
            }
        }
    }
}

impl<J> Intake<J> {
    /// The next batch or job, for a writer on its own OS thread (never
    /// call it on an async runtime's thread: it blocks); `None` once
    /// stopped and drained.
    pub(crate) fn blocking_next(&mut self) -> Option<Work<J>> {
        if let Some(job) = self.held.take() {
            return Some(Work::Job(job));
        }
        loop {
            match self.rx.blocking_recv()? {
                Msg::Insert(event, answer) => return Some(Work::Batch(self.fill((event, answer)))),
                Msg::Job(job) => return Some(Work::Job(job)),
                Msg::Stop => self.rx.close(),
            }
        }
    }

    /// A batch of `first` and whatever else is queued already.
    fn fill(&mut self, first: (NewEvent, Answer)) -> Batch {
        let mut jobs = Vec::with_capacity(self.max_batch.min(self.rx.len() + 1));
        jobs.push(first);
        while jobs.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(Msg::Insert(event, answer)) => jobs.push((event, answer)),
                // Ends the batch; the job runs next, so queue order holds.
                Ok(Msg::Job(job)) => {
                    self.held = Some(job);
                    break;
                }
                // Queued work first: closing keeps what is buffered receivable.
                Ok(Msg::Stop) => self.rx.close(),
                Err(_) => break,
            }
        }
        Batch::new(jobs)
    }
}

/// Where a queued insert's answer comes from.
#[derive(Debug)]
enum Slot {
    /// It is row `i` of the batch written.
    Own(usize),
    /// Its (source, idem_key) appeared earlier in the same batch, as row `i`.
    SameAs(usize),
}

/// Inserts to commit together, deduplicated, with their waiters.
#[derive(Debug)]
pub(crate) struct Batch {
    rows: Vec<NewEvent>,
    slots: Vec<Slot>,
    waiters: Vec<Answer>,
}

impl Batch {
    fn new(jobs: Vec<(NewEvent, Answer)>) -> Self {
        let size = jobs.len();
        // A key twice in one batch: the first occurrence is the inserter,
        // later ones are duplicates of it. Deduplicating here keeps the
        // backends' statements simple (no row conflicts with another row of
        // the same statement) and the rule identical on both. The keys are
        // borrowed (no per-row copies), so each job's slot is decided
        // before the events move into `rows`: a new key takes the next row.
        let slots: Vec<Slot> = {
            let mut seen: HashMap<(&str, &str), usize> = HashMap::with_capacity(size);
            jobs.iter()
                .map(|(event, _)| {
                    let next_row = seen.len();
                    match seen.entry((event.source.as_str(), event.idem_key.as_str())) {
                        Entry::Occupied(first) => Slot::SameAs(*first.get()),
                        Entry::Vacant(new) => Slot::Own(*new.insert(next_row)),
                    }
                })
                .collect()
        };
        let mut rows = Vec::with_capacity(size);
        let mut waiters = Vec::with_capacity(size);
        for ((event, answer), slot) in jobs.into_iter().zip(&slots) {
            waiters.push(answer);
            if let Slot::Own(_) = slot {
                rows.push(event);
            }
        }
        Self {
            rows,
            slots,
            waiters,
        }
    }

    /// The rows to write, keys distinct.
    pub(crate) fn rows(&self) -> &[NewEvent] {
        &self.rows
    }

    /// How many inserts wait on this batch.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.len()
    }

    /// Answers every waiter from the result of writing [`Batch::rows`]: one
    /// [`Inserted`] per row, in order, or the error that stopped the commit.
    pub(crate) fn answer(self, backend: &'static str, results: Result<Vec<Inserted>, StoreError>) {
        match results {
            Ok(results) => {
                debug_assert_eq!(results.len(), self.rows.len(), "one result per row");
                for (slot, answer) in self.slots.into_iter().zip(self.waiters) {
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
            }
            Err(error) => {
                // One transaction: nothing of the batch is committed (or,
                // after a failed fsync, nothing is known durable); every
                // waiter gets the same cause (StoreError is not Clone).
                let cause = Arc::new(error);
                for answer in self.waiters {
                    let _ = answer.send(Err(StoreError::BatchFailed {
                        backend,
                        source: Arc::clone(&cause),
                    }));
                }
            }
        }
    }
}

/// The writer task of [`GroupCommit::start`]: one batch at a time until
/// stopped and drained.
async fn run_writer<W: BatchWriter>(
    writer: Arc<W>,
    backend: &'static str,
    mut intake: Intake<NoJobs>,
) {
    while let Some(batch) = intake.next_batch().await {
        let started = std::time::Instant::now();
        let written = writer.write_batch(batch.rows()).await;
        log_commit(backend, &batch, started, written.is_ok());
        batch.answer(backend, written);
    }
}

/// One line per commit at DEBUG (off by default): batch sizes and commit
/// times are what to look at when ack latency or throughput disappoints.
pub(crate) fn log_commit(
    backend: &'static str,
    batch: &Batch,
    started: std::time::Instant,
    ok: bool,
) {
    tracing::debug!(
        backend,
        rows = batch.rows().len(),
        waiters = batch.waiters(),
        commit_us = started.elapsed().as_micros() as u64,
        ok,
        "Batch committed."
    );
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;
    use crate::store::test_event as event;

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
