//! Store suite cases for dispatch: claims, leases, outcomes written with
//! their runs and deliveries, and the first finisher winning.

use std::collections::HashSet;
use std::sync::Arc;

use super::super::{
    DispatchOutcome, EventId, EventOutcome, NewDelivery, NewPluginRun, Store, DISPATCH_GRACE_MS,
};
use super::{event, TestDb};
use crate::store::GroupCommitConfig;

/// Received long enough ago to be due for a sweep.
const NOW: i64 = 1_700_000_100_000;

async fn store_with(db: &TestDb, count: usize) -> (Arc<dyn Store>, Vec<EventId>) {
    let store = crate::store::open(&db.config(GroupCommitConfig::default()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..count {
        let mut ev = event("github", &format!("d-{i}"));
        ev.received_at_ms = NOW - DISPATCH_GRACE_MS - 1_000 + i as i64;
        ids.push(store.insert_event(ev).await.unwrap().id);
    }
    (store, ids)
}

fn delivery(seq: u32, sink: &str) -> NewDelivery {
    NewDelivery {
        id: format!("dlv_{}", ulid::Ulid::new()),
        seq,
        sink: sink.into(),
        payload: format!("payload-{seq}").into_bytes(),
        headers: vec![("content-type".into(), "application/json".into())],
        subject_suffix: Some("push".into()),
        key: Some("d-0".into()),
        leased_until_ms: None,
    }
}

fn outcome(id: &EventId, outcome: EventOutcome, deliveries: Vec<NewDelivery>) -> DispatchOutcome {
    DispatchOutcome {
        event_id: id.clone(),
        source: "github".into(),
        event_at_ms: NOW - DISPATCH_GRACE_MS,
        outcome,
        run: Some(NewPluginRun {
            id: format!("run_{}", ulid::Ulid::new()),
            plugin: "github-router".into(),
            version: "sha256:abc".into(),
            fuel_used: 4242,
            duration_us: 17,
            actions: r#"[{"deliver":"archive","bytes":9}]"#.into(),
            ran_at_ms: NOW,
        }),
        deliveries,
        at_ms: NOW,
    }
}

pub(super) async fn claims_lease_events_and_outcomes_land_with_runs_and_deliveries(db: TestDb) {
    let (store, ids) = store_with(&db, 3).await;
    let claimed = store.claim_due_events(NOW, 60_000, 10).await.unwrap();
    let claimed_ids: Vec<_> = claimed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(claimed_ids, ids, "all three, oldest first");
    assert!(claimed.iter().all(|e| e.dispatch_attempts == 0));
    assert!(
        store
            .claim_due_events(NOW, 60_000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased events are not claimed twice"
    );

    let applied = store
        .finish_dispatch(vec![
            outcome(
                &ids[0],
                EventOutcome::Processed,
                vec![delivery(0, "archive"), delivery(1, "ops")],
            ),
            outcome(&ids[1], EventOutcome::Dropped("not routed".into()), vec![]),
            outcome(
                &ids[2],
                EventOutcome::Retry {
                    at_ms: NOW + 1_000,
                    reason: "internal".into(),
                },
                vec![],
            ),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, true, true]);

    let first = store.get_event(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (first.status.as_str(), first.dispatch_attempts),
        ("processed", 1)
    );
    let dropped = store.get_event(&ids[1]).await.unwrap().unwrap();
    assert_eq!(dropped.status, "dropped");
    assert_eq!(dropped.status_reason.as_deref(), Some("not routed"));
    let retried = store.get_event(&ids[2]).await.unwrap().unwrap();
    assert_eq!(
        (retried.status.as_str(), retried.dispatch_attempts),
        ("received", 1)
    );

    let runs = store.plugin_runs(&ids[0]).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].plugin.as_str(),
            runs[0].version.as_str(),
            runs[0].outcome.as_str()
        ),
        ("github-router", "sha256:abc", "delivered")
    );
    assert_eq!((runs[0].fuel_used, runs[0].duration_us), (4242, 17));
    let deliveries = store.deliveries(&ids[0]).await.unwrap();
    let summary: Vec<_> = deliveries
        .iter()
        .map(|d| {
            (
                d.seq,
                d.sink.as_str(),
                d.payload.as_slice(),
                d.status.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "archive", &b"payload-0"[..], "pending"),
            (1, "ops", &b"payload-1"[..], "pending")
        ]
    );
    assert_eq!(deliveries[0].run_id.as_deref(), Some(runs[0].id.as_str()));
    assert_eq!(deliveries[0].msg_key.as_deref(), Some("d-0"));
    assert_eq!(deliveries[0].subject_suffix.as_deref(), Some("push"));
    assert_eq!(
        deliveries[0].headers,
        r#"[["content-type","application/json"]]"#
    );

    let backlog = store.backlog().await.unwrap();
    assert_eq!((backlog.undispatched, backlog.pending_deliveries), (1, 2));

    // Another claimer finishing the same event later changes nothing.
    let late = store
        .finish_dispatch(vec![outcome(
            &ids[0],
            EventOutcome::Processed,
            vec![delivery(0, "archive")],
        )])
        .await
        .unwrap();
    assert_eq!(late, vec![false]);
    assert_eq!(store.deliveries(&ids[0]).await.unwrap().len(), 2);
    assert_eq!(store.plugin_runs(&ids[0]).await.unwrap().len(), 1);

    // The retry is due once its backoff has passed, with its attempt count.
    assert!(store
        .claim_due_events(NOW + 999, 60_000, 10)
        .await
        .unwrap()
        .is_empty());
    let again = store
        .claim_due_events(NOW + 1_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.clone(), again[0].dispatch_attempts),
        (ids[2].clone(), 1)
    );
    store.close().await;
}

/// A batch is written as a whole (on Postgres: one statement per table for
/// all its rows); the first finisher still wins within it.
pub(super) async fn an_event_twice_in_one_batch_applies_its_first_outcome_only(db: TestDb) {
    let (store, ids) = store_with(&db, 2).await;
    store.claim_due_events(NOW, 60_000, 10).await.unwrap();
    let applied = store
        .finish_dispatch(vec![
            outcome(
                &ids[0],
                EventOutcome::Processed,
                vec![delivery(0, "archive")],
            ),
            outcome(
                &ids[0],
                EventOutcome::Dropped("second".into()),
                vec![delivery(0, "ops")],
            ),
            outcome(&ids[1], EventOutcome::Processed, vec![delivery(0, "ops")]),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false, true]);
    let first = store.get_event(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (first.status.as_str(), first.dispatch_attempts),
        ("processed", 1)
    );
    let sinks = |d: Vec<crate::store::DeliveryRecord>| -> Vec<String> {
        d.into_iter().map(|d| d.sink).collect()
    };
    assert_eq!(sinks(store.deliveries(&ids[0]).await.unwrap()), ["archive"]);
    assert_eq!(sinks(store.deliveries(&ids[1]).await.unwrap()), ["ops"]);
    assert_eq!(store.plugin_runs(&ids[0]).await.unwrap().len(), 1);
    assert_eq!(store.plugin_runs(&ids[1]).await.unwrap().len(), 1);
    store.close().await;
}

pub(super) async fn a_new_event_is_due_for_a_sweep_only_after_the_grace(db: TestDb) {
    let store = crate::store::open(&db.config(GroupCommitConfig::default()))
        .await
        .unwrap();
    let mut ev = event("github", "fresh");
    ev.received_at_ms = NOW;
    let id = store.insert_event(ev).await.unwrap().id;
    assert!(store
        .claim_due_events(NOW + DISPATCH_GRACE_MS - 1, 1_000, 10)
        .await
        .unwrap()
        .is_empty());
    let due = store
        .claim_due_events(NOW + DISPATCH_GRACE_MS, 1_000, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, id);
    store.close().await;
}

/// Several claimers at once (router processes on Postgres) never get the same event.
pub(super) async fn concurrent_claimers_never_share_an_event(db: TestDb) {
    let (store, ids) = store_with(&db, 120).await;
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due_events(NOW, 60_000, 7).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|e| e.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for id in claimer.await.unwrap() {
            total += 1;
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(total, ids.len());
    store.close().await;
}
