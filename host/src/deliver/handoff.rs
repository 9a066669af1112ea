//! Fresh deliveries go from the dispatch finisher to their sink's worker in
//! memory, written already leased to that worker, so the common path never
//! claims them back out of the store (one write and one payload read fewer
//! per delivery).
//!
//! The rules that keep it at least once and never twice at a time:
//! - A place in the worker's queue is reserved before the outcome is
//!   written; only then is the delivery written leased (due when the lease
//!   ends), otherwise it is written due at once and a claim takes it.
//! - It is queued only if its outcome was applied (the first finisher of an
//!   event wins; a loser's deliveries do not exist).
//! - The worker sends it only if the send starts within a quarter of the
//!   lease (a send is cut at half the lease), so no claim after the lease
//!   can overlap it; a stale one is left to that claim.
//! - A crash loses only the queue: the rows are there, due when the lease ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use crate::clock::now_ms;
use crate::live::Live;
use crate::store::{ClaimedDelivery, DispatchOutcome, NewDelivery};

/// A delivery in a worker's queue.
#[derive(Debug)]
pub(super) struct Handed {
    /// What the sink sends.
    pub(super) delivery: ClaimedDelivery,
    /// The send must start by then (unix ms), or the delivery is left to a
    /// claim after its lease.
    pub(super) send_by_ms: i64,
}

/// One sink's side of the hand-off.
#[derive(Debug, Clone)]
pub(super) struct Inbox {
    pub(super) queue: mpsc::Sender<Handed>,
    /// Set when deliveries were written due at once: the worker claims.
    pub(super) due: Arc<AtomicBool>,
    pub(super) wake: Arc<Notify>,
    /// The sink's lease, milliseconds.
    pub(super) lease_ms: i64,
}

/// The dispatch finisher's way to the sink workers. A configuration
/// reload replaces the map; a batch keeps the map it reserved in.
#[derive(Debug, Clone)]
pub struct DeliveryHandoff {
    sinks: Arc<Live<HashMap<String, Inbox>>>,
}

/// Places reserved for one batch of outcomes, to fill once it is written.
#[derive(Debug, Default)]
pub struct Reserved {
    /// (outcome index, reserved place, the delivery).
    handed: Vec<(usize, mpsc::OwnedPermit<Handed>, Handed)>,
    /// (outcome index, sink) of deliveries written due at once.
    due: Vec<(usize, String)>,
}

impl DeliveryHandoff {
    pub(super) fn new(sinks: HashMap<String, Inbox>) -> Self {
        Self {
            sinks: Arc::new(Live::new(sinks)),
        }
    }

    /// Drops the inboxes of `gone` and adds (or replaces) those of
    /// `fresh`: from now on their deliveries go to the new workers.
    pub(super) fn replace(&self, gone: &[String], fresh: HashMap<String, Inbox>) {
        let mut next: HashMap<String, Inbox> = (*self.sinks.get()).clone();
        for name in gone {
            next.remove(name);
        }
        next.extend(fresh);
        self.sinks.set(Arc::new(next));
    }

    /// Before `outcomes` are written: reserves a queue place for each
    /// delivery whose sink's worker has room and marks it leased.
    pub fn reserve(&self, outcomes: &mut [DispatchOutcome]) -> Reserved {
        let mut reserved = Reserved::default();
        let sinks = self.sinks.get();
        let now = now_ms();
        for (index, outcome) in outcomes.iter_mut().enumerate() {
            let (event_id, source, event_at_ms) = (
                &outcome.event_id,
                outcome.source.as_str(),
                outcome.event_at_ms,
            );
            for d in &mut outcome.deliveries {
                let place = sinks
                    .get(&d.sink)
                    .and_then(|inbox| Some((inbox, inbox.queue.clone().try_reserve_owned().ok()?)));
                let Some((inbox, place)) = place else {
                    reserved.due.push((index, d.sink.clone()));
                    continue;
                };
                d.leased_until_ms = Some(now.saturating_add(inbox.lease_ms));
                let handed = Handed {
                    delivery: claimed(d, event_id, source, event_at_ms),
                    // A quarter, not half: the margin covers the worker's
                    // own wait for a claim query before the send starts.
                    send_by_ms: now.saturating_add(inbox.lease_ms / 4),
                };
                reserved.handed.push((index, place, handed));
            }
        }
        reserved
    }

    /// After the outcomes were written (`applied[i]` for outcome `i`):
    /// queues the handed deliveries of applied outcomes and wakes the
    /// workers of sinks with deliveries due at once. Places of outcomes not
    /// applied are given back.
    pub fn complete(&self, reserved: Reserved, applied: &[bool]) {
        let applied = |index: usize| applied.get(index).copied().unwrap_or(false);
        for (index, place, handed) in reserved.handed {
            if applied(index) {
                place.send(handed);
            }
        }
        for (index, sink) in reserved.due {
            if applied(index) {
                self.wake(&sink);
            }
        }
    }

    /// Tells `sink`'s worker that deliveries are due (a no-op for unknown names).
    pub fn wake(&self, sink: &str) {
        if let Some(inbox) = self.sinks.get().get(sink) {
            inbox.due.store(true, Ordering::Release);
            inbox.wake.notify_one();
        }
    }
}

/// The worker's view of a delivery just created (no attempts yet).
fn claimed(
    d: &NewDelivery,
    event_id: &crate::store::EventId,
    source: &str,
    event_at_ms: i64,
) -> ClaimedDelivery {
    ClaimedDelivery {
        id: d.id.clone(),
        event_id: event_id.clone(),
        source: source.to_string(),
        event_at_ms,
        sink: d.sink.clone(),
        payload: d.payload.clone(),
        headers: d.headers.clone(),
        subject_suffix: d.subject_suffix.clone(),
        msg_key: d.key.clone(),
        attempts: 0,
        round_start: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventId, EventOutcome};

    const LEASE_MS: i64 = 60_000;

    fn inbox(capacity: usize) -> (DeliveryHandoff, mpsc::Receiver<Handed>, Arc<AtomicBool>) {
        let (queue, handed) = mpsc::channel(capacity);
        let due = Arc::new(AtomicBool::new(false));
        let inbox = Inbox {
            queue,
            due: due.clone(),
            wake: Arc::new(Notify::new()),
            lease_ms: LEASE_MS,
        };
        let handoff = DeliveryHandoff::new(HashMap::from([("archive".to_string(), inbox)]));
        (handoff, handed, due)
    }

    fn outcome(sinks: &[&str]) -> DispatchOutcome {
        DispatchOutcome {
            event_id: EventId::generate(),
            source: "github".into(),
            event_at_ms: 1,
            outcome: EventOutcome::Processed,
            run: None,
            deliveries: sinks
                .iter()
                .enumerate()
                .map(|(seq, sink)| NewDelivery {
                    id: format!("dlv_{seq}"),
                    seq: seq as u32,
                    sink: (*sink).into(),
                    payload: b"{}".to_vec(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    subject_suffix: None,
                    key: Some("k".into()),
                    leased_until_ms: None,
                })
                .collect(),
            at_ms: 1,
        }
    }

    #[test]
    fn what_fits_is_leased_and_queued_and_the_rest_is_written_due() {
        let (handoff, mut handed, due) = inbox(1);
        let mut outcomes = vec![outcome(&["archive", "archive", "elsewhere"])];
        let before = now_ms();
        let reserved = handoff.reserve(&mut outcomes);
        let leases: Vec<Option<i64>> = outcomes[0]
            .deliveries
            .iter()
            .map(|d| d.leased_until_ms)
            .collect();
        let lease = leases[0].expect("the first fits the queue");
        assert!((before + LEASE_MS..=now_ms() + LEASE_MS).contains(&lease));
        assert_eq!(leases[1..], [None, None], "a full queue, an unknown sink");
        assert!(
            handed.try_recv().is_err(),
            "nothing queued before the write"
        );

        handoff.complete(reserved, &[true]);
        let first = handed.try_recv().unwrap();
        assert_eq!(first.delivery.id, "dlv_0");
        assert_eq!(first.delivery.payload, b"{}");
        assert_eq!(first.delivery.msg_key.as_deref(), Some("k"));
        assert_eq!(first.delivery.attempts, 0);
        assert_eq!(first.send_by_ms, lease - LEASE_MS + LEASE_MS / 4);
        assert!(handed.try_recv().is_err());
        assert!(
            due.load(Ordering::Acquire),
            "the one written due wakes a claim"
        );
    }

    #[test]
    fn an_outcome_not_applied_queues_nothing_and_gives_its_places_back() {
        let (handoff, mut handed, due) = inbox(1);
        let mut outcomes = vec![outcome(&["archive", "archive"])];
        let reserved = handoff.reserve(&mut outcomes);
        handoff.complete(reserved, &[false]);
        assert!(handed.try_recv().is_err());
        assert!(!due.load(Ordering::Acquire));

        let mut again = vec![outcome(&["archive"])];
        let reserved = handoff.reserve(&mut again);
        assert!(
            again[0].deliveries[0].leased_until_ms.is_some(),
            "the place is free again"
        );
        handoff.complete(reserved, &[true]);
        assert_eq!(handed.try_recv().unwrap().delivery.id, "dlv_0");
    }
}
