//! Replays stay harmless after retention purged the raw request: the row
//! keeps its idempotency key, so the same delivery is a duplicate.

use hookyard::store::Cutoffs;
use hookyard_tests::sign;
use hookyard_tests::{open_store, post, secrets, sqlite_url, InProcess};
use serde_json::Value;

#[tokio::test]
async fn a_replay_after_the_body_was_purged_is_still_a_duplicate() {
    let router = InProcess::start_sqlite().await;
    let body = br#"{"zen":"replay me"}"#.to_vec();
    let headers = sign::github(secrets::GITHUB, "delivery-replay-1", &body);
    let send = || async {
        let resp = post(&router.webhook("github"), &headers, &body).await;
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()
    };
    let first = send().await;
    assert_eq!(first["duplicate"], false);

    // Retention with the body cutoff in the future purges every body now.
    let store = open_store(&sqlite_url(&router.dir)).await;
    let now_ms = sign::now() * 1000;
    let purged = store
        .purge(Cutoffs {
            now_ms,
            bodies_before_ms: Some(now_ms + 60_000),
            rows_before_ms: None,
            deliveries_before_ms: None,
        })
        .await
        .unwrap();
    assert_eq!(purged.bodies, 1);
    let id = hookyard::store::EventId::from_string(first["id"].as_str().unwrap().into());
    let stub = store.get_event(&id).await.unwrap().expect("row kept");
    assert!(stub.body.is_empty());
    store.close().await;

    let replay = send().await;
    assert_eq!(replay["duplicate"], true);
    assert_eq!(replay["id"], first["id"]);
    router.stop().await.unwrap();
}
