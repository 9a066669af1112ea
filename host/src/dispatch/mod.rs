//! Dispatch: every stored event goes through its source's plugin (or to its
//! source's sinks) after the ack, never in it.
//!
//! - Ingest hands each newly stored event over in memory
//!   ([`DispatchHandle::offer`]); a full queue is not an error, the row is
//!   there.
//! - Worker threads (one per core) run plugins; wasm calls are CPU work,
//!   kept off the async runtime's threads.
//! - A finisher writes outcomes in batches: each event's status, its plugin
//!   run and its deliveries in one transaction, and only if the event is
//!   still `received` (the first finisher wins; see `store::dispatch`).
//! - A sweeper claims due rows every second: events left by a crash or a
//!   restart, a full hand-off queue, another process (Postgres), or a
//!   retry whose backoff has passed.
//!
//! So an event is dispatched at least once and its deliveries are written
//! exactly once; a crash between a plugin call and its commit only costs a
//! second call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::admin::metrics::{EventLabels, PluginLabel};
use crate::admin::Metrics;
use crate::clock::now_ms;
use crate::config::SourceRoute;
use crate::deliver::DeliveryHandoff;
use crate::live::Live;
use crate::plugin::registry::Plugins;
use crate::store::{DispatchOutcome, EventOutcome, Store};

pub mod decide;
mod job;

pub use job::DispatchJob;

/// Events waiting for a worker. Past it, hand-offs are left to the sweeper.
const QUEUE: usize = 4096;
/// Outcomes written in one transaction, at most.
const FINISH_BATCH: usize = 256;
/// Events claimed by one sweep query.
const SWEEP_BATCH: usize = 256;
/// How long a claimed event is this process's before another may take it.
const LEASE_MS: i64 = 60_000;
/// Time between sweeps when the last one found nothing.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How often an idle worker looks at the stop flag.
const WORKER_POLL: Duration = Duration::from_millis(100);

/// What dispatch routes by.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Each source's route.
    pub sources: BTreeMap<String, SourceRoute>,
    /// The loaded plugins.
    pub plugins: Arc<Plugins>,
}

impl Routes {
    /// The routes of `config`'s sources, through `plugins`.
    pub fn new(config: &crate::config::Config, plugins: Arc<Plugins>) -> Self {
        Self {
            sources: config
                .sources
                .iter()
                .map(|(name, source)| (name.clone(), source.route.clone()))
                .collect(),
            plugins,
        }
    }
}

/// Ingest's side: offers stored events to the workers.
#[derive(Debug, Clone)]
pub struct DispatchHandle {
    queue: std_mpsc::SyncSender<DispatchJob>,
    overflowed: Arc<AtomicU64>,
}

impl DispatchHandle {
    /// Queues `job` for a worker without waiting. When the queue is full the
    /// event stays for the sweeper (after [`crate::store::DISPATCH_GRACE_MS`]).
    pub fn offer(&self, job: DispatchJob) {
        if self.queue.try_send(job).is_err() {
            self.overflowed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events the full queue left to the sweeper so far.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

/// The running dispatch stage.
pub struct Dispatcher {
    handle: DispatchHandle,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    finisher: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
    stop_sweeping: CancellationToken,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts workers, finisher and sweeper. The first sweep runs at once,
    /// picking up what an earlier run left undispatched.
    pub fn start(
        store: Arc<dyn Store>,
        routes: Arc<Live<Routes>>,
        handoff: DeliveryHandoff,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = std_mpsc::sync_channel::<DispatchJob>(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        let (outcomes, finished) = mpsc::channel::<DispatchOutcome>(FINISH_BATCH * 4);
        let stopping = Arc::new(AtomicBool::new(false));
        let count = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut workers = Vec::with_capacity(count);
        for i in 0..count {
            let (jobs, outcomes, stopping, routes) = (
                jobs.clone(),
                outcomes.clone(),
                stopping.clone(),
                routes.clone(),
            );
            workers.push(
                std::thread::Builder::new()
                    .name(format!("hookyard-dispatch-{i}"))
                    .spawn(move || work(&jobs, &outcomes, &stopping, &routes))?,
            );
        }
        drop(outcomes);
        let handle = DispatchHandle {
            queue,
            overflowed: Arc::new(AtomicU64::new(0)),
        };
        let stop_sweeping = CancellationToken::new();
        let finisher = tokio::spawn(finish(store.clone(), finished, handoff, metrics));
        let sweeper = tokio::spawn(sweep(store, handle.queue.clone(), stop_sweeping.clone()));
        Ok(Self {
            handle,
            stopping,
            workers,
            finisher,
            sweeper,
            stop_sweeping,
        })
    }

    /// The hand-off for ingest.
    pub fn handle(&self) -> DispatchHandle {
        self.handle.clone()
    }

    /// Stops: no more sweeps, workers finish the event in hand and leave
    /// the rest queued in memory (still `received` in the store, so the
    /// next start dispatches them), and every outcome produced is written.
    pub async fn stop(self) {
        self.stop_sweeping.cancel();
        let _ = self.sweeper.await;
        self.stopping.store(true, Ordering::Release);
        drop(self.handle);
        let workers = self.workers;
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        let _ = self.finisher.await;
    }
}

/// A worker thread: one event at a time until stopped or the queue closes.
fn work(
    jobs: &Mutex<std_mpsc::Receiver<DispatchJob>>,
    outcomes: &mpsc::Sender<DispatchOutcome>,
    stopping: &AtomicBool,
    routes: &Live<Routes>,
) {
    loop {
        if stopping.load(Ordering::Acquire) {
            return;
        }
        let next = match jobs.lock() {
            Ok(jobs) => jobs.recv_timeout(WORKER_POLL),
            Err(_) => return,
        };
        let job = match next {
            Ok(job) => job,
            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if stopping.load(Ordering::Acquire) {
            return;
        }
        // The routes of the moment: a reload between two events applies
        // to the second.
        let outcome = dispatch_one(&job, &routes.get());
        if outcomes.blocking_send(outcome).is_err() {
            return;
        }
    }
}

/// Runs one event through its route.
fn dispatch_one(job: &DispatchJob, routes: &Routes) -> DispatchOutcome {
    let Some(route) = routes.sources.get(&job.source) else {
        return decide::unroutable(
            job,
            format!(
                "source `{}` is not in the configuration any more",
                job.source
            ),
            now_ms(),
        );
    };
    match route {
        SourceRoute::StoreOnly => decide::store_only(job, now_ms()),
        SourceRoute::Sinks(sinks) => decide::raw_to_sinks(job, sinks, now_ms()),
        SourceRoute::Plugin(name) => {
            let Some(slot) = routes.plugins.get(name) else {
                return decide::unroutable(job, format!("plugin `{name}` is not loaded"), now_ms());
            };
            // Held for the whole call: a reload meanwhile does not touch it.
            let plugin = slot.current();
            let call = routes.plugins.runtime().call(
                name,
                &plugin,
                &slot.config.config,
                slot.config.limits,
                &job.plugin_event(),
            );
            if let Err(error) = &call.result {
                tracing::warn!(event_id = %job.id, plugin = %name, version = %plugin.version, %error, "Plugin failed on an event.");
            }
            decide::after_plugin(
                job,
                name,
                &plugin.version,
                &slot.config.sinks,
                call,
                now_ms(),
            )
        }
    }
}

/// Writes outcomes, as many per transaction as are waiting, and hands the
/// deliveries written to their sinks' workers (see [`crate::deliver::handoff`]).
async fn finish(
    store: Arc<dyn Store>,
    mut outcomes: mpsc::Receiver<DispatchOutcome>,
    handoff: DeliveryHandoff,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while outcomes.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let count = batch.len();
        let labels: Vec<EventLabels> = batch.iter().map(|o| record_run(&metrics, o)).collect();
        let reserved = handoff.reserve(&mut batch);
        match store.finish_dispatch(std::mem::take(&mut batch)).await {
            Ok(applied) => {
                handoff.complete(reserved, &applied);
                for (labels, applied) in labels.iter().zip(applied) {
                    if applied {
                        metrics.events.get_or_create(labels).inc();
                    }
                }
            }
            Err(error) => {
                // Nothing of these was written: the events are still
                // `received`, and a sweep takes them again after their lease.
                tracing::error!(
                    error = &error as &dyn std::error::Error,
                    events = count,
                    "Could not record dispatch outcomes; the events will be dispatched again."
                );
            }
        }
    }
}

/// Records a plugin call's time and fuel; returns the labels its event is
/// counted under once written.
fn record_run(metrics: &Metrics, outcome: &DispatchOutcome) -> EventLabels {
    let plugin = outcome.run.as_ref().map_or("-", |r| r.plugin.as_str());
    if let Some(run) = &outcome.run {
        let label = PluginLabel {
            plugin: run.plugin.clone(),
        };
        metrics
            .plugin_duration
            .get_or_create(&label)
            .observe(run.duration_us as f64 / 1e6);
        metrics
            .plugin_fuel
            .get_or_create(&label)
            .observe(run.fuel_used as f64);
    }
    let result = match &outcome.outcome {
        EventOutcome::Processed => "processed",
        EventOutcome::Dropped(_) => "dropped",
        EventOutcome::Failed(_) => "failed",
        EventOutcome::Retry { .. } => "retry",
    };
    EventLabels {
        plugin: plugin.to_string(),
        outcome: result.to_string(),
    }
}

/// Claims due events every [`SWEEP_INTERVAL`], at once again after a full batch.
async fn sweep(
    store: Arc<dyn Store>,
    queue: std_mpsc::SyncSender<DispatchJob>,
    stop: CancellationToken,
) {
    loop {
        let claimed = match store
            .claim_due_events(now_ms(), LEASE_MS, SWEEP_BATCH)
            .await
        {
            Ok(events) => events,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "Dispatch sweep failed; retrying."
                );
                Vec::new()
            }
        };
        let full = claimed.len() == SWEEP_BATCH;
        if !claimed.is_empty() {
            tracing::debug!(events = claimed.len(), "Sweep claimed undispatched events.");
        }
        for event in claimed {
            let mut job = DispatchJob::from_stored(event);
            // Wait for room: these are already leased to this process.
            loop {
                match queue.try_send(job) {
                    Ok(()) => break,
                    Err(std_mpsc::TrySendError::Full(back)) => {
                        job = back;
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(5)) => {}
                        }
                    }
                    Err(std_mpsc::TrySendError::Disconnected(_)) => return,
                }
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SWEEP_INTERVAL) => {}
        }
    }
}
