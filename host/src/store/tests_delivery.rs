//! Store suite cases for delivery: per-sink claims under a lease, attempt
//! results (done, due again, dead) with their history, dead letters sent
//! again with a fresh budget, releases, replays, and retention.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::{
    AttemptOutcome, Cutoffs, DeadQuery, DeadSelector, DeliveryResult, DispatchOutcome, EventId,
    EventOutcome, NewDelivery, ReplaySelector, SinkBacklog, Store, DISPATCH_GRACE_MS,
};
use super::{event, TestDb};
use crate::store::GroupCommitConfig;

const NOW: i64 = 1_700_000_100_000;

/// `count` events, each processed into one delivery to `archive` and one to `ops`.
async fn with_deliveries(db: &TestDb, count: usize) -> (Arc<dyn Store>, Vec<EventId>) {
    let store = crate::store::open(&db.config(GroupCommitConfig::default()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..count {
        let mut ev = event("github", &format!("d-{i}"));
        ev.received_at_ms = NOW - DISPATCH_GRACE_MS - 1_000 + i as i64;
        let id = store.insert_event(ev).await.unwrap().id;
        outcomes.push(DispatchOutcome {
            event_id: id.clone(),
            source: "github".into(),
            event_at_ms: NOW - 1_000,
            outcome: EventOutcome::Processed,
            run: None,
            deliveries: ["archive", "ops"]
                .iter()
                .enumerate()
                .map(|(seq, sink)| NewDelivery {
                    id: delivery_id(2 * i + seq),
                    seq: seq as u32,
                    sink: (*sink).into(),
                    payload: format!("{sink}-{i}").into_bytes(),
                    headers: vec![("x-n".into(), i.to_string())],
                    subject_suffix: None,
                    key: None,
                    leased_until_ms: None,
                })
                .collect(),
            at_ms: NOW,
        });
        ids.push(id);
    }
    assert_eq!(
        store.finish_dispatch(outcomes).await.unwrap(),
        vec![true; count]
    );
    (store, ids)
}

/// Ids in creation order (`Ulid::new` is random within a millisecond).
fn delivery_id(n: usize) -> String {
    let now = u64::try_from(crate::clock::now_ms()).unwrap();
    format!("dlv_{}", ulid::Ulid::from_parts(now, n as u128))
}

fn result(id: &str, attempt: u32, outcome: AttemptOutcome) -> DeliveryResult {
    DeliveryResult {
        id: id.into(),
        attempt,
        outcome,
        at_ms: NOW + 10,
        duration_us: 250,
    }
}

pub(super) async fn deliveries_are_claimed_per_sink_under_a_lease_and_finished_with_history(
    db: TestDb,
) {
    let (store, ids) = with_deliveries(&db, 2).await;
    let archive = store
        .claim_deliveries("archive", NOW, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(archive.len(), 2, "only archive's");
    assert!(archive
        .iter()
        .all(|d| d.sink == "archive" && d.attempts == 0));
    assert_eq!(archive[0].event_id, ids[0]);
    assert_eq!(archive[0].source, "github");
    assert_eq!(archive[0].event_at_ms, NOW - 1_000);
    assert_eq!(archive[0].payload, b"archive-0");
    assert_eq!(archive[0].headers, [("x-n".to_string(), "0".to_string())]);
    assert!(
        store
            .claim_deliveries("archive", NOW + 29_999, 30_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased deliveries are not claimed again"
    );
    assert_eq!(
        store
            .claim_deliveries("ops", NOW, 30_000, 10)
            .await
            .unwrap()
            .len(),
        2,
        "another sink's claims are its own"
    );

    let (done, retry) = (&archive[0].id, &archive[1].id);
    let applied = store
        .finish_deliveries(vec![
            result(done, 1, AttemptOutcome::Delivered),
            result(
                retry,
                1,
                AttemptOutcome::Retry {
                    at_ms: NOW + 5_000,
                    error: "HTTP 503".into(),
                },
            ),
        ])
        .await
        .unwrap();
    assert_eq!(applied, 2);
    let record = store.get_delivery(done).await.unwrap().unwrap();
    assert_eq!(
        (
            record.status.as_str(),
            record.attempts,
            record.finished_at_ms
        ),
        ("done", 1, Some(NOW + 10))
    );
    assert!(store.delivery_attempts(done).await.unwrap().is_empty());
    // A late result for the same attempt (a second worker after an expired
    // lease) changes nothing.
    let late = store
        .finish_deliveries(vec![result(
            retry,
            1,
            AttemptOutcome::Dead {
                error: "late".into(),
            },
        )])
        .await
        .unwrap();
    assert_eq!(late, 0);

    // Due again at its backoff, with its attempt count, not before.
    assert!(store
        .claim_deliveries("archive", NOW + 4_999, 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .claim_deliveries("archive", NOW + 5_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    store
        .finish_deliveries(vec![result(
            retry,
            2,
            AttemptOutcome::Dead {
                error: "HTTP 404 (permanent)".into(),
            },
        )])
        .await
        .unwrap();
    let history = store.delivery_attempts(retry).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.error.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "retry", "HTTP 503"),
            (2, "dead", "HTTP 404 (permanent)")
        ]
    );
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.pending_deliveries, 2, "ops' two");
    store.close().await;
}

/// One batch holding a delivery's attempt 1 (a retry), a late copy of
/// attempt 1 and attempt 2 (done) means what applying them one by one
/// means: attempt 1 then 2 apply, the late copy does not, and the history
/// keeps attempt 1's error.
pub(super) async fn a_delivery_twice_in_one_batch_applies_in_order(db: TestDb) {
    let (store, _) = with_deliveries(&db, 2).await;
    let claimed = store
        .claim_deliveries("archive", NOW, 30_000, 10)
        .await
        .unwrap();
    let (twice, once) = (&claimed[0].id, &claimed[1].id);
    let retry = AttemptOutcome::Retry {
        at_ms: NOW + 5_000,
        error: "HTTP 503".into(),
    };
    let applied = store
        .finish_deliveries(vec![
            result(twice, 1, retry),
            result(once, 1, AttemptOutcome::Delivered),
            result(
                twice,
                1,
                AttemptOutcome::Dead {
                    error: "late".into(),
                },
            ),
            result(twice, 2, AttemptOutcome::Delivered),
        ])
        .await
        .unwrap();
    assert_eq!(applied, 3);
    let record = store.get_delivery(twice).await.unwrap().unwrap();
    assert_eq!((record.status.as_str(), record.attempts), ("done", 2));
    let history = store.delivery_attempts(twice).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|a| (a.attempt, a.outcome.as_str(), a.error.as_str()))
        .collect();
    assert_eq!(summary, [(1, "retry", "HTTP 503")]);
    let other = store.get_delivery(once).await.unwrap().unwrap();
    assert_eq!((other.status.as_str(), other.attempts), ("done", 1));
    store.close().await;
}

pub(super) async fn dead_letters_are_listed_and_sent_again_with_a_fresh_budget(db: TestDb) {
    let (store, _) = with_deliveries(&db, 3).await;
    let claimed = store
        .claim_deliveries("archive", NOW, 30_000, 10)
        .await
        .unwrap();
    let dead: Vec<_> = claimed
        .iter()
        .map(|d| {
            result(
                &d.id,
                1,
                AttemptOutcome::Dead {
                    error: format!("refused {}", d.id),
                },
            )
        })
        .collect();
    store.finish_deliveries(dead).await.unwrap();
    let listed = store
        .dead_deliveries(DeadQuery {
            sink: Some("archive".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .all(|d| d.attempts == 1 && d.sink == "archive"));
    let per_sink = store.sink_backlog().await.unwrap();
    assert_eq!(
        (per_sink["archive"], per_sink["ops"], per_sink.len()),
        (
            SinkBacklog {
                pending: 0,
                dead: 3
            },
            SinkBacklog {
                pending: 3,
                dead: 0
            },
            2
        )
    );
    assert!(store
        .dead_deliveries(DeadQuery {
            sink: Some("ops".into()),
            limit: 10
        })
        .await
        .unwrap()
        .is_empty());

    let one = &claimed[0].id;
    assert_eq!(
        store
            .retry_dead(DeadSelector::One(one.clone()), NOW + 20)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .retry_dead(DeadSelector::One(one.clone()), NOW + 20)
            .await
            .unwrap(),
        0,
        "no longer dead"
    );
    let resent = store
        .claim_deliveries("archive", NOW + 20, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(resent.len(), 1);
    assert_eq!(
        (&resent[0].id, resent[0].attempts, resent[0].round_start),
        (one, 1, 1),
        "same id (same idempotency key), a new round"
    );
    let rest = store
        .retry_dead(DeadSelector::All { sink: None }, NOW + 30)
        .await
        .unwrap();
    assert_eq!(rest, 2);
    assert!(store
        .dead_deliveries(DeadQuery {
            sink: None,
            limit: 10
        })
        .await
        .unwrap()
        .is_empty());
    store.close().await;
}

pub(super) async fn released_deliveries_are_due_at_once(db: TestDb) {
    let (store, _) = with_deliveries(&db, 2).await;
    let claimed = store
        .claim_deliveries("ops", NOW, 60_000, 10)
        .await
        .unwrap();
    let ids: Vec<String> = claimed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(
        store
            .release_deliveries(ids.clone(), NOW + 1)
            .await
            .unwrap(),
        2
    );
    let again = store
        .claim_deliveries("ops", NOW + 1, 60_000, 10)
        .await
        .unwrap();
    let again: Vec<String> = again.into_iter().map(|d| d.id).collect();
    assert_eq!(again, ids);
    store.close().await;
}

pub(super) async fn deliveries_handed_off_in_memory_are_leased_from_the_start(db: TestDb) {
    let store = crate::store::open(&db.config(GroupCommitConfig::default()))
        .await
        .unwrap();
    let mut ev = event("github", "handed");
    ev.received_at_ms = NOW - DISPATCH_GRACE_MS - 1;
    let id = store.insert_event(ev).await.unwrap().id;
    let ids = [delivery_id(0), delivery_id(1)];
    let delivery = |seq: u32, leased_until_ms| NewDelivery {
        id: ids[seq as usize].clone(),
        seq,
        sink: "archive".into(),
        payload: b"p".to_vec(),
        headers: Vec::new(),
        subject_suffix: None,
        key: None,
        leased_until_ms,
    };
    let applied = store
        .finish_dispatch(vec![DispatchOutcome {
            event_id: id.clone(),
            source: "github".into(),
            event_at_ms: NOW - 1_000,
            outcome: EventOutcome::Processed,
            run: None,
            deliveries: vec![delivery(0, Some(NOW + 60_000)), delivery(1, None)],
            at_ms: NOW,
        }])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let now: Vec<String> = store
        .claim_deliveries("archive", NOW, 120_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(now, [ids[1].clone()], "the handed-off one is not claimable");
    let records = store.deliveries(&id).await.unwrap();
    assert_eq!(
        (records[0].created_at_ms, records[0].next_attempt_at_ms),
        (NOW, NOW + 60_000),
        "created when written, due when its lease ends"
    );
    let later: Vec<String> = store
        .claim_deliveries("archive", NOW + 60_000, 60_000, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(
        later,
        [ids[0].clone()],
        "claimable once its lease ran out (a crash)"
    );
    store.close().await;
}

pub(super) async fn replays_queue_finished_events_for_dispatch_again(db: TestDb) {
    let (store, ids) = with_deliveries(&db, 3).await;
    // One failed, one still waiting for dispatch.
    let mut waiting = event("github", "waiting");
    waiting.received_at_ms = NOW;
    let waiting = store.insert_event(waiting).await.unwrap().id;
    let mut failed = event("stripe", "failed");
    failed.received_at_ms = NOW - DISPATCH_GRACE_MS - 1;
    let failed = store.insert_event(failed).await.unwrap().id;
    store
        .finish_dispatch(vec![DispatchOutcome {
            event_id: failed.clone(),
            source: "stripe".into(),
            event_at_ms: NOW,
            outcome: EventOutcome::Failed("trap".into()),
            run: None,
            deliveries: vec![],
            at_ms: NOW,
        }])
        .await
        .unwrap();

    let one = store
        .request_replay(ReplaySelector::One(ids[1].clone()), NOW + 100)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let replayed = store.get_event(&ids[1]).await.unwrap().unwrap();
    assert_eq!(replayed.status, "received");
    let due = store.claim_due_events(NOW + 100, 60_000, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        [ids[1].clone()],
        "due at once; the new event still in its grace"
    );
    assert_eq!(
        store
            .request_replay(ReplaySelector::One(waiting.clone()), NOW)
            .await
            .unwrap(),
        0,
        "an event waiting for dispatch is not queued twice"
    );

    let failed_only = ReplaySelector::Filter {
        source: None,
        since_ms: None,
        until_ms: None,
        status: Some("failed".into()),
    };
    assert_eq!(store.request_replay(failed_only, NOW).await.unwrap(), 1);
    assert_eq!(
        store.get_event(&failed).await.unwrap().unwrap().status,
        "received"
    );
    let github_processed = ReplaySelector::Filter {
        source: Some("github".into()),
        since_ms: Some(NOW - DISPATCH_GRACE_MS - 1_000),
        until_ms: Some(NOW),
        status: None,
    };
    assert_eq!(
        store.request_replay(github_processed, NOW).await.unwrap(),
        2,
        "ids[0] and ids[2]; ids[1] is already queued, `waiting` is too new"
    );
    store.close().await;
}

pub(super) async fn retention_purges_done_deliveries_only(db: TestDb) {
    let (store, ids) = with_deliveries(&db, 2).await;
    let claimed = store
        .claim_deliveries("archive", NOW, 30_000, 10)
        .await
        .unwrap();
    store
        .finish_deliveries(vec![
            result(&claimed[0].id, 1, AttemptOutcome::Delivered),
            result(
                &claimed[1].id,
                1,
                AttemptOutcome::Dead {
                    error: "gone".into(),
                },
            ),
        ])
        .await
        .unwrap();
    // Delivery ids carry their creation time (now): a cutoff ahead of it.
    let later = crate::clock::now_ms() + 60_000;
    let purged = store
        .purge(Cutoffs {
            now_ms: later,
            bodies_before_ms: None,
            rows_before_ms: None,
            deliveries_before_ms: Some(later),
        })
        .await
        .unwrap();
    assert_eq!(purged.deliveries, 1, "the done one; dead and pending stay");
    assert!(store.get_delivery(&claimed[0].id).await.unwrap().is_none());
    assert!(store.get_delivery(&claimed[1].id).await.unwrap().is_some());
    assert_eq!(
        store.deliveries(&ids[0]).await.unwrap().len(),
        1,
        "ops' delivery is left"
    );
    store.close().await;
}

/// Several claimers at once (router processes on Postgres) never get the
/// same delivery.
pub(super) async fn concurrent_delivery_claimers_never_share_a_delivery(db: TestDb) {
    let (store, _) = with_deliveries(&db, 100).await;
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_deliveries("archive", NOW, 60_000, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 100);
    store.close().await;
}
