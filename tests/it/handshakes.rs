//! Providers' endpoint checks are answered by the router itself, only once
//! verified, and never stored as events.

use hookyard_tests::sign;
use hookyard_tests::{open_store, post, secrets, sqlite_url, InProcess};
use serde_json::Value;

#[tokio::test]
async fn slack_url_verification_is_answered_after_verification_and_not_stored() {
    let router = InProcess::start_sqlite().await;
    let body = br#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595","type":"url_verification"}"#;
    let headers = sign::slack(secrets::SLACK, sign::now(), body);
    let resp = post(&router.webhook("slack"), &headers, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({ "challenge": "3eZbrw1aBm2rZgRNFdxV2595" })
    );

    // Unsigned, the same check is refused like any request.
    let unsigned = post(&router.webhook("slack"), &vec![], body).await;
    assert_eq!(unsigned.status(), 401);

    // An ordinary signed event on the same source is stored as usual.
    let event = br#"{"type":"event_callback","event":{"type":"app_mention"}}"#;
    let headers = sign::slack(secrets::SLACK, sign::now(), event);
    let resp = post(&router.webhook("slack"), &headers, event).await;
    assert_eq!(resp.status(), 200);
    let ack: Value = resp.json().await.unwrap();
    assert_eq!(ack["duplicate"], false);

    let store = open_store(&sqlite_url(&router.dir)).await;
    assert_eq!(
        store.count_events().await.unwrap(),
        1,
        "only the event is stored"
    );
    store.close().await;
    router.stop().await.unwrap();
}
