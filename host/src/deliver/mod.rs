//! Delivery: deliveries the dispatcher wrote (the transactional outbox) go
//! to their sinks, at least once, each with its stable idempotency key.
//!
//! - One worker per sink ([`worker`]) claims that sink's due deliveries
//!   under a lease, within its `max_concurrency` and `rate_per_s`, and sends
//!   them in the sink's batch size.
//! - Each attempt's result goes to one finisher, which writes results in
//!   batches: done, due again after a backoff with full jitter honouring
//!   `Retry-After` ([`retry`]), or dead after the sink's attempts.
//! - New deliveries go to their sink's worker in memory, written already
//!   leased to it ([`handoff`]); when its queue is full they are written
//!   due and the worker is told to claim. Otherwise a worker claims every
//!   second (retries coming due, another process's work on Postgres,
//!   deliveries left by a crash whose lease has run out).
//! - A configuration reload replaces the workers of changed sinks and
//!   starts or stops those added or removed ([`Deliverer::reconfigure`]).
//! - Shutdown stops claiming, gives sends in flight a grace period, writes
//!   every result, and releases what is left so it is due at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::Metrics;
use crate::clock::now_ms;
use crate::config::{SinkConfig, SinkKind};
use crate::sinks::Sink;
use crate::store::{DeliveryResult, Store};

pub mod handoff;
pub mod rate;
pub mod retry;
mod worker;

pub use handoff::DeliveryHandoff;

/// Results written in one transaction, at most.
const FINISH_BATCH: usize = 512;

/// How the delivery stage runs.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryOptions {
    /// Longest wait between two claims of an idle sink.
    pub poll: Duration,
    /// How long a claim is this process's (see [`crate::config::DeliverySettings`]).
    pub lease: Duration,
    /// How long shutdown lets sends in flight finish.
    pub grace: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            grace: Duration::from_secs(10),
        }
    }
}

/// The running delivery stage.
pub struct Deliverer {
    stop: CancellationToken,
    /// What every worker is built with (`None` once stopping).
    shared: Mutex<Option<Shared>>,
    /// The running worker of each sink.
    workers: Mutex<BTreeMap<String, RunningSink>>,
    /// Workers a reload replaced, finishing their sends.
    retired: Mutex<Vec<JoinHandle<()>>>,
    finisher: Mutex<Option<JoinHandle<()>>>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    store: Arc<dyn Store>,
    handoff: DeliveryHandoff,
    grace: Duration,
}

/// What a new sink worker needs from the stage.
#[derive(Clone)]
struct Shared {
    results: mpsc::Sender<DeliveryResult>,
    options: DeliveryOptions,
    metrics: Arc<Metrics>,
}

/// One sink's worker, as the stage holds it.
struct RunningSink {
    sink: Arc<dyn Sink>,
    stop: CancellationToken,
    task: JoinHandle<worker::Stopped>,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sinks: Vec<String> = lock(&self.workers).keys().cloned().collect();
        f.debug_struct("Deliverer")
            .field("sinks", &sinks)
            .finish_non_exhaustive()
    }
}

/// A sink for [`Deliverer::start`] and [`Deliverer::reconfigure`]: its
/// settings and the sink built from them.
pub type BuiltSink = (SinkConfig, Arc<dyn Sink>);

impl Deliverer {
    /// Starts a worker per sink and the finisher. Each worker's first claim
    /// runs at once, picking up what an earlier run left.
    pub fn start(
        store: Arc<dyn Store>,
        sinks: BTreeMap<String, BuiltSink>,
        options: DeliveryOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (results, finished) = mpsc::channel::<DeliveryResult>(FINISH_BATCH * 4);
        let finisher = tokio::spawn(finish(store.clone(), finished));
        let deliverer = Self {
            stop: CancellationToken::new(),
            shared: Mutex::new(Some(Shared {
                results,
                options,
                metrics,
            })),
            workers: Mutex::new(BTreeMap::new()),
            retired: Mutex::new(Vec::new()),
            finisher: Mutex::new(Some(finisher)),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            store,
            handoff: DeliveryHandoff::new(HashMap::new()),
            grace: options.grace,
        };
        deliverer.reconfigure(sinks, &[]);
        deliverer
    }

    /// The hand-off for the dispatcher.
    pub fn handoff(&self) -> DeliveryHandoff {
        self.handoff.clone()
    }

    /// Applies a configuration reload: each sink in `fresh` gets a new
    /// worker (replacing the one of that name, if any), and the workers of
    /// `gone` stop. A replaced or stopped worker finishes the sends it has
    /// started with its old settings; what was handed to it but not sent
    /// is released, due at once for the new worker. A sink that is gone
    /// keeps its undelivered rows in the store: they resume if a sink of
    /// that name comes back.
    pub fn reconfigure(&self, fresh: BTreeMap<String, BuiltSink>, gone: &[String]) {
        let Some(shared) = lock(&self.shared).clone() else {
            return;
        };
        let mut inboxes = HashMap::new();
        let mut started = Vec::new();
        for (name, (config, sink)) in fresh {
            let lease = lease_for(&config, shared.options.lease);
            let (queue, handed) = mpsc::channel(handoff_capacity(&config, lease));
            let (wake, due) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
            inboxes.insert(
                name.clone(),
                handoff::Inbox {
                    queue,
                    due: due.clone(),
                    wake: wake.clone(),
                    lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                },
            );
            let worker = worker::SinkWorker {
                lease,
                config,
                sink: sink.clone(),
                store: self.store.clone(),
                results: shared.results.clone(),
                wake,
                due,
                in_flight: self.in_flight.clone(),
                poll: shared.options.poll,
                metrics: shared.metrics.sink(&name),
            };
            started.push((name, sink, worker, handed));
        }
        // The new inboxes take deliveries before the old workers stop, so
        // no reservation lands in a queue nobody reads for long.
        self.handoff.replace(gone, inboxes);
        let mut workers = lock(&self.workers);
        let mut replaced = Vec::new();
        for name in gone {
            replaced.extend(workers.remove(name).map(|old| (name.clone(), old)));
        }
        for (name, sink, worker, handed) in started {
            let stop = self.stop.child_token();
            let task = tokio::spawn(worker.run(handed, stop.clone()));
            let old = workers.insert(name.clone(), RunningSink { sink, stop, task });
            replaced.extend(old.map(|old| (name, old)));
        }
        drop(workers);
        let mut retired = lock(&self.retired);
        for (name, old) in replaced {
            old.stop.cancel();
            retired.push(tokio::spawn(retire(
                name,
                old,
                self.store.clone(),
                self.handoff.clone(),
            )));
        }
    }

    /// Stops claiming, lets sends in flight finish within the grace period
    /// (then cuts them short), writes every result, releases deliveries
    /// whose send was cut short (due at once: the next start, or another
    /// process, takes them), and closes the sinks.
    pub async fn stop(&self) {
        self.stop.cancel();
        // Workers hold the only result senders from now on: the finisher
        // ends when their sends have.
        lock(&self.shared).take();
        let workers = std::mem::take(&mut *lock(&self.workers));
        let retired = std::mem::take(&mut *lock(&self.retired));
        let mut sends = Vec::new();
        let mut unsent = Vec::new();
        let mut sinks = Vec::new();
        for (_, running) in workers {
            sinks.push(running.sink);
            if let Ok(stopped) = running.task.await {
                sends.push(stopped.sends);
                unsent.extend(stopped.unsent);
            }
        }
        let drain = async {
            for set in &mut sends {
                while set.join_next().await.is_some() {}
            }
            for task in retired {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(self.grace, drain).await.is_err() {
            tracing::warn!(
                grace_ms = self.grace.as_millis() as u64,
                "Deliveries still sending at the shutdown deadline; releasing them for the next start."
            );
        }
        // Dropping a JoinSet aborts its tasks, and with them their result senders.
        drop(sends);
        let finisher = lock(&self.finisher).take();
        if let Some(finisher) = finisher {
            let _ = finisher.await;
        }
        let mut left: Vec<String> = lock(&self.in_flight).drain().collect();
        left.extend(unsent);
        if !left.is_empty() {
            match self.store.release_deliveries(left, now_ms()).await {
                Ok(released) => tracing::info!(released, "Released unfinished deliveries."),
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "Could not release unfinished deliveries; they are due again when their lease ends."
                ),
            }
        }
        for sink in sinks {
            sink.close().await;
        }
    }
}

/// Winds down a worker a reload replaced: releases what was handed to it
/// and never sent (also what a place reserved before its queue closed
/// brings in), tells the new worker of that name to claim it, lets the
/// started sends finish, and closes the old sink.
async fn retire(name: String, old: RunningSink, store: Arc<dyn Store>, handoff: DeliveryHandoff) {
    let Ok(mut stopped) = old.task.await else {
        return;
    };
    // Places are reserved and filled within one finisher batch; the map
    // without this inbox is in place, so the last ones arrive at once.
    let late = async {
        while let Some(h) = stopped.handed.recv().await {
            stopped.unsent.push(h.delivery.id);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), late).await;
    if !stopped.unsent.is_empty() {
        if let Err(error) = store
            .release_deliveries(std::mem::take(&mut stopped.unsent), now_ms())
            .await
        {
            tracing::warn!(
                sink = %name,
                error = &error as &dyn std::error::Error,
                "Could not release the replaced worker's deliveries; they are due again when their lease ends."
            );
        }
        handoff.wake(&name);
    }
    while stopped.sends.join_next().await.is_some() {}
    old.sink.close().await;
    tracing::info!(sink = %name, "Replaced sink worker finished its sends.");
}

/// A poisoned lock still holds consistent data here (every critical
/// section is a plain insert, remove or take).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// How long a claim is held: beyond the longest a send may take (a send is
/// cut at half the lease), so no second worker sends the same delivery
/// while the first still might.
fn lease_for(config: &SinkConfig, lease: Duration) -> Duration {
    match &config.kind {
        SinkKind::Http(http) => lease.max(http.timeout * 2 + Duration::from_secs(1)),
        _ => lease,
    }
}

/// How many deliveries a sink's hand-off queue holds: what its worker can
/// have in flight, and for a rate-limited sink no more than it sends in a
/// tenth of the lease, so a queued delivery starts well inside its lease.
fn handoff_capacity(config: &SinkConfig, lease: Duration) -> usize {
    let mut capacity = config.max_concurrency;
    if let Some(rate) = config.rate_per_s {
        let per_tenth_lease = rate * lease.as_secs_f64() / 10.0;
        capacity = capacity.min(per_tenth_lease as usize);
    }
    capacity.max(1)
}

/// Writes results, as many per transaction as are waiting.
async fn finish(store: Arc<dyn Store>, mut results: mpsc::Receiver<DeliveryResult>) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while results.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let count = batch.len();
        if let Err(error) = store.finish_deliveries(std::mem::take(&mut batch)).await {
            // Nothing of these was written: they stay claimed, and are due
            // again when their lease ends (sent twice at worst; the
            // idempotency key lets the receiver tell).
            tracing::error!(
                error = &error as &dyn std::error::Error,
                deliveries = count,
                "Could not record delivery results; the deliveries will be sent again."
            );
        }
    }
}
