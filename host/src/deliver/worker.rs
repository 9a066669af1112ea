//! One sink's worker: claims that sink's due deliveries as its concurrency
//! permits and rate allow, sends them in the sink's batch size, and hands
//! every attempt's result to the finisher.
//!
//! Why one worker per sink: a slow sink holds its own permits only, so it
//! never takes claim slots or time from another sink (the file sink keeps
//! its pace beside an HTTP receiver that takes seconds per request).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::rate::TokenBucket;
use super::retry;
use crate::clock::now_ms;
use crate::config::SinkConfig;
use crate::sinks::{Outbound, SendOutcome, Sink};
use crate::store::{ClaimedDelivery, DeliveryResult, Store};

/// Deliveries one claim takes at most.
const CLAIM_MAX: usize = 256;

/// What a sink's worker and its send tasks share.
pub(super) struct SinkWorker {
    pub(super) config: SinkConfig,
    pub(super) sink: Arc<dyn Sink>,
    pub(super) store: Arc<dyn Store>,
    pub(super) results: mpsc::Sender<DeliveryResult>,
    pub(super) wake: Arc<Notify>,
    /// Ids claimed by this process whose result has not reached the
    /// finisher: released at shutdown if their send was cut short.
    pub(super) in_flight: Arc<Mutex<HashSet<String>>>,
    /// How long a claim is this process's.
    pub(super) lease: Duration,
    /// Longest wait between two claims when nothing is due.
    pub(super) poll: Duration,
}

impl SinkWorker {
    /// Claims and sends until `stop`; returns the sends still running, for
    /// shutdown to give them their grace.
    pub(super) async fn run(self, stop: CancellationToken) -> JoinSet<()> {
        let worker = Arc::new(self);
        let permits = Arc::new(Semaphore::new(worker.config.max_concurrency));
        let bucket = worker
            .config
            .rate_per_s
            .map(|rate| Mutex::new(TokenBucket::new(rate)));
        let lease_ms = i64::try_from(worker.lease.as_millis()).unwrap_or(i64::MAX);
        let mut sends = JoinSet::new();
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
            let claimed = match worker
                .store
                .claim_deliveries(&worker.config.name, now_ms(), lease_ms, want)
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::warn!(
                        sink = %worker.config.name,
                        error = &error as &dyn std::error::Error,
                        "Could not claim deliveries; trying again."
                    );
                    Vec::new()
                }
            };
            if let Some(Ok(mut bucket)) = bucket.as_ref().map(Mutex::lock) {
                bucket.refund(want - claimed.len());
            }
            if claimed.is_empty() {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = worker.wake.notified() => {}
                    () = tokio::time::sleep(worker.poll) => {}
                }
                continue;
            }
            if let Ok(mut ids) = worker.in_flight.lock() {
                ids.extend(claimed.iter().map(|d| d.id.clone()));
            }
            let count = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
            // Only this task takes permits, and `want` of them were free.
            let Ok(mut permit) = permits.clone().try_acquire_many_owned(count) else {
                tracing::error!(sink = %worker.config.name, "Delivery permits were taken by another task; stopping this worker.");
                break;
            };
            let batch = worker.sink.max_batch().max(1);
            let mut claimed = claimed.into_iter().peekable();
            while claimed.peek().is_some() {
                let chunk: Vec<ClaimedDelivery> = claimed.by_ref().take(batch).collect();
                let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                let chunk_permit = permit.split(n as usize).unwrap_or_else(|| {
                    // The last chunk takes what is left.
                    std::mem::replace(&mut permit, empty_permit(&permits))
                });
                sends.spawn(worker.clone().send(chunk, chunk_permit));
            }
        }
        sends
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
        for (delivery, sent) in chunk.iter().zip(outcomes) {
            let outcome = retry::decide(&self.config.retry, delivery, sent, at_ms, fastrand::f64());
            log_attempt(&self.config.name, delivery, &outcome);
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
    use crate::store::AttemptOutcome;
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
