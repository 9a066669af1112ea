//! One sink's worker: takes deliveries handed over in memory, and claims
//! that sink's due deliveries from the store, as its concurrency permits
//! and rate allow; sends them in the sink's batch size, and hands every
//! attempt's result to the finisher.
//!
//! Why one worker per sink: a slow sink holds its own permits only, so it
//! never takes claim slots or time from another sink (the file sink keeps
//! its pace beside an HTTP receiver that takes seconds per request).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::handoff::Handed;
use super::rate::TokenBucket;
use super::retry;
use crate::admin::metrics::SinkMetrics;
use crate::clock::now_ms;
use crate::config::SinkConfig;
use crate::sinks::{Outbound, SendOutcome, Sink};
use crate::store::{AttemptOutcome, ClaimedDelivery, DeliveryResult, Store};

/// Deliveries one claim takes at most.
const CLAIM_MAX: usize = 256;

/// What a stopped worker leaves behind.
pub(super) struct Stopped {
    /// Sends still running.
    pub(super) sends: JoinSet<()>,
    /// Handed-over deliveries it never sent (leased to it: to release).
    pub(super) unsent: Vec<String>,
    /// Its closed queue: a place reserved before the close may still fill.
    pub(super) handed: mpsc::Receiver<Handed>,
}

/// What a sink's worker and its send tasks share.
pub(super) struct SinkWorker {
    pub(super) config: SinkConfig,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) store: Arc<dyn Store>,
    pub(super) results: mpsc::Sender<DeliveryResult>,
    pub(super) wake: Arc<Notify>,
    /// Set when deliveries were written due at once (see [`super::handoff`]).
    pub(super) due: Arc<AtomicBool>,
    /// Ids claimed by this process whose result has not reached the
    /// finisher: released at shutdown if their send was cut short.
    pub(super) in_flight: Arc<Mutex<HashSet<String>>>,
    /// How long a claim is this process's.
    pub(super) lease: Duration,
    /// Longest wait between two claims when nothing is due.
    pub(super) poll: Duration,
    /// Where attempts are counted.
    pub(super) metrics: SinkMetrics,
}

impl SinkWorker {
    /// Takes, claims and sends until `stop`; returns the sends still
    /// running, for shutdown to give them their grace, and the deliveries
    /// handed over but never sent, to release.
    pub(super) async fn run(
        self,
        mut handed: mpsc::Receiver<Handed>,
        stop: CancellationToken,
    ) -> Stopped {
        let worker = Arc::new(self);
        let permits = Arc::new(Semaphore::new(worker.config.max_concurrency));
        let bucket = worker
            .config
            .rate_per_s
            .map(|rate| Mutex::new(TokenBucket::new(rate)));
        let mut sends = JoinSet::new();
        // Received while idle, taken first next time round.
        let mut held: Option<Handed> = None;
        // Claim at once: an earlier run may have left due deliveries.
        let mut claim = true;
        let mut last_claim = Instant::now();
        loop {
            while sends.try_join_next().is_some() {}
            let first = tokio::select! {
                () = stop.cancelled() => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let mut want = (1 + permits.available_permits()).min(CLAIM_MAX);
            if let Some(bucket) = &bucket {
                want = tokio::select! {
                    () = stop.cancelled() => break,
                    taken = TokenBucket::acquire(bucket, want) => taken,
                };
            }
            drop(first);
            let mut batch = Vec::with_capacity(want);
            let now = now_ms();
            if let Some(h) = held.take() {
                take_in_time(&mut batch, h, now);
            }
            while batch.len() < want {
                match handed.try_recv() {
                    Ok(h) => take_in_time(&mut batch, h, now),
                    Err(_) => break,
                }
            }
            // The store holds retries coming due, releases, a full queue's
            // overflow, other processes' work and leases a crash left:
            // claimed when told, after a full claim, and every poll.
            claim |=
                worker.due.swap(false, Ordering::AcqRel) || last_claim.elapsed() >= worker.poll;
            if batch.len() < want && claim {
                let asked = want - batch.len();
                let claimed = worker.claim(asked).await;
                claim = claimed.len() == asked;
                last_claim = Instant::now();
                batch.extend(claimed);
            }
            if let Some(Ok(mut bucket)) = bucket.as_ref().map(Mutex::lock) {
                bucket.refund(want - batch.len());
            }
            if batch.is_empty() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = worker.wake.notified() => claim = true,
                    next = handed.recv() => held = next,
                    () = tokio::time::sleep(worker.poll.saturating_sub(last_claim.elapsed())) => {}
                }
                continue;
            }
            if let Ok(mut ids) = worker.in_flight.lock() {
                ids.extend(batch.iter().map(|d| d.id.clone()));
            }
            let count = u32::try_from(batch.len()).unwrap_or(u32::MAX);
            // Only this task takes permits, and `want` of them were free.
            let Ok(mut permit) = permits.clone().try_acquire_many_owned(count) else {
                tracing::error!(sink = %worker.config.name, "Delivery permits were taken by another task; stopping this worker.");
                break;
            };
            let size = worker.sink.max_batch().max(1);
            let mut batch = batch.into_iter().peekable();
            while batch.peek().is_some() {
                let chunk: Vec<ClaimedDelivery> = batch.by_ref().take(size).collect();
                let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                let chunk_permit = permit.split(n as usize).unwrap_or_else(|| {
                    // The last chunk takes what is left.
                    std::mem::replace(&mut permit, empty_permit(&permits))
                });
                sends.spawn(worker.clone().send(chunk, chunk_permit));
            }
        }
        handed.close();
        let mut unsent: Vec<String> = held.map(|h| h.delivery.id).into_iter().collect();
        while let Ok(h) = handed.try_recv() {
            unsent.push(h.delivery.id);
        }
        Stopped {
            sends,
            unsent,
            handed,
        }
    }

    /// Claims up to `want` of this sink's due deliveries (none on an error,
    /// which is logged; the next poll tries again).
    async fn claim(&self, want: usize) -> Vec<ClaimedDelivery> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .claim_deliveries(&self.config.name, now_ms(), lease_ms, want)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(
                    sink = %self.config.name,
                    error = &error as &dyn std::error::Error,
                    "Could not claim deliveries; trying again."
                );
                Vec::new()
            }
        }
    }

    /// Sends one chunk and reports each delivery's result.
    async fn send(self: Arc<Self>, mut chunk: Vec<ClaimedDelivery>, _permit: OwnedSemaphorePermit) {
        let outbound: Vec<Outbound> = chunk.iter_mut().map(outbound).collect();
        let started = Instant::now();
        // A sink has its own timeouts; this bound keeps a hung one from
        // outliving the lease, after which another worker could send too.
        let limit = self.lease / 2;
        let outcomes = match tokio::time::timeout(limit, self.sink.send(&outbound)).await {
            Ok(outcomes) if outcomes.len() == chunk.len() => outcomes,
            Ok(outcomes) => all_retry(
                chunk.len(),
                format!(
                    "sink answered {} outcomes for {} deliveries",
                    outcomes.len(),
                    chunk.len()
                ),
            ),
            Err(_) => all_retry(
                chunk.len(),
                format!("send did not finish within {} ms", limit.as_millis()),
            ),
        };
        let at_ms = now_ms();
        let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.metrics.duration.observe(duration_us as f64 / 1e6);
        self.metrics.attempts.inc_by(chunk.len() as u64);
        for (delivery, sent) in chunk.iter().zip(outcomes) {
            let outcome = retry::decide(&self.config.retry, delivery, sent, at_ms, fastrand::f64());
            log_attempt(&self.config.name, delivery, &outcome);
            match &outcome {
                AttemptOutcome::Delivered => self.metrics.delivered.inc(),
                AttemptOutcome::Retry { .. } => self.metrics.retried.inc(),
                AttemptOutcome::Dead { .. } => self.metrics.dead.inc(),
            };
            let result = DeliveryResult {
                id: delivery.id.clone(),
                attempt: delivery.attempts.saturating_add(1),
                outcome,
                at_ms,
                duration_us,
            };
            if self.results.send(result).await.is_err() {
                // The finisher has stopped: leave it claimed-in-flight, so
                // shutdown releases it.
                return;
            }
            if let Ok(mut ids) = self.in_flight.lock() {
                ids.remove(&delivery.id);
            }
        }
    }
}

/// Adds a handed-off delivery to `batch` if its send can still start in
/// time; one too late to finish inside its lease is left to the claim that
/// takes it when the lease ends.
fn take_in_time(batch: &mut Vec<ClaimedDelivery>, h: Handed, now_ms: i64) {
    if now_ms <= h.send_by_ms {
        batch.push(h.delivery);
    } else {
        tracing::debug!(delivery_id = %h.delivery.id, "Handed-off delivery too late; left to a claim after its lease.");
    }
}

/// A permit of zero, for a chunk that `split` could not serve (never in
/// practice: chunks add up to the permits taken).
fn empty_permit(permits: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    permits
        .clone()
        .try_acquire_many_owned(0)
        .unwrap_or_else(|_| unreachable!("zero permits are always available"))
}

fn all_retry(n: usize, error: String) -> Vec<SendOutcome> {
    vec![SendOutcome::retry(error); n]
}

/// The sink's view of a claimed delivery (the payload moves over).
fn outbound(d: &mut ClaimedDelivery) -> Outbound {
    Outbound {
        id: d.id.clone(),
        event_id: d.event_id.to_string(),
        source: d.source.clone(),
        event_at_ms: d.event_at_ms,
        attempt: d.attempts.saturating_add(1),
        payload: Bytes::from(std::mem::take(&mut d.payload)),
        headers: d.headers.clone(),
        subject_suffix: d.subject_suffix.clone(),
        key: d.msg_key.clone(),
    }
}

fn log_attempt(sink: &str, d: &ClaimedDelivery, outcome: &crate::store::AttemptOutcome) {
    let attempt = d.attempts.saturating_add(1);
    match outcome {
        AttemptOutcome::Delivered => {}
        AttemptOutcome::Retry { at_ms, error } => tracing::warn!(
            delivery_id = %d.id, event_id = %d.event_id, %sink, attempt,
            retry_in_ms = at_ms.saturating_sub(now_ms()), %error,
            "Delivery failed; it will be retried."
        ),
        AttemptOutcome::Dead { error } => tracing::error!(
            delivery_id = %d.id, event_id = %d.event_id, %sink, attempt, %error,
            "Delivery dead-lettered; `hookyard dlq retry` sends it again."
        ),
    }
}
