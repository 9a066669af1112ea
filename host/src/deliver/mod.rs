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
//! - Shutdown stops claiming, gives sends in flight a grace period, writes
//!   every result, and releases what is left so it is due at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::{JoinHandle, JoinSet};
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
    workers: Vec<JoinHandle<JoinSet<()>>>,
    finisher: JoinHandle<()>,
    in_flight: Arc<Mutex<HashSet<String>>>,
    store: Arc<dyn Store>,
    sinks: Vec<Arc<dyn Sink>>,
    handoff: DeliveryHandoff,
    grace: Duration,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Starts a worker per sink and the finisher. Each worker's first claim
    /// runs at once, picking up what an earlier run left.
    pub fn start(
        store: Arc<dyn Store>,
        sinks: BTreeMap<String, (SinkConfig, Arc<dyn Sink>)>,
        options: DeliveryOptions,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (results, finished) = mpsc::channel::<DeliveryResult>(FINISH_BATCH * 4);
        let stop = CancellationToken::new();
        let in_flight = Arc::new(Mutex::new(HashSet::new()));
        let mut inboxes = HashMap::new();
        let mut workers = Vec::new();
        let mut built = Vec::new();
        for (name, (config, sink)) in sinks {
            let lease = lease_for(&config, options.lease);
            let (queue, handed) = mpsc::channel(handoff_capacity(&config, lease));
            let (wake, due) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
            let sink_metrics = metrics.sink(&name);
            inboxes.insert(
                name,
                handoff::Inbox {
                    queue,
                    due: due.clone(),
                    wake: wake.clone(),
                    lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                },
            );
            built.push(sink.clone());
            let worker = worker::SinkWorker {
                lease,
                config,
                sink,
                store: store.clone(),
                results: results.clone(),
                wake,
                due,
                in_flight: in_flight.clone(),
                poll: options.poll,
                metrics: sink_metrics,
            };
            workers.push(tokio::spawn(worker.run(handed, stop.clone())));
        }
        drop(results);
        let finisher = tokio::spawn(finish(store.clone(), finished));
        Self {
            stop,
            workers,
            finisher,
            in_flight,
            store,
            sinks: built,
            handoff: DeliveryHandoff::new(inboxes),
            grace: options.grace,
        }
    }

    /// The hand-off for the dispatcher.
    pub fn handoff(&self) -> DeliveryHandoff {
        self.handoff.clone()
    }

    /// Stops claiming, lets sends in flight finish within the grace period
    /// (then cuts them short), writes every result, releases deliveries
    /// whose send was cut short (due at once: the next start, or another
    /// process, takes them), and closes the sinks.
    pub async fn stop(self) {
        self.stop.cancel();
        let mut sends = Vec::new();
        for worker in self.workers {
            if let Ok(set) = worker.await {
                sends.push(set);
            }
        }
        let drain = async {
            for set in &mut sends {
                while set.join_next().await.is_some() {}
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
        let _ = self.finisher.await;
        let left: Vec<String> = self
            .in_flight
            .lock()
            .map(|mut ids| ids.drain().collect())
            .unwrap_or_default();
        if !left.is_empty() {
            match self.store.release_deliveries(left, now_ms()).await {
                Ok(released) => tracing::info!(released, "Released unfinished deliveries."),
                Err(error) => tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "Could not release unfinished deliveries; they are due again when their lease ends."
                ),
            }
        }
        for sink in self.sinks {
            sink.close().await;
        }
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
