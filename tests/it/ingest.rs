//! Each preset end to end: a signed request is acknowledged once, its
//! repeats are duplicates with the same id, and the row holds the raw request.

use hookyard::store::{EventId, HeaderValueRepr};
use hookyard_tests::sign::{self, with_headers, Headers};
use hookyard_tests::{client, open_store, secrets, InProcess};
use serde_json::Value;

async fn post(url: &str, headers: &Headers, body: &[u8]) -> (u16, Value) {
    let rb = with_headers(client().post(url), headers).body(body.to_vec());
    let resp = rb.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json body"))
}

/// Sends once, then twice more: one new event, then duplicates of it.
async fn assert_exactly_once(
    router: &InProcess,
    source: &str,
    headers: &Headers,
    body: &[u8],
) -> String {
    let (status, first) = post(&router.webhook(source), headers, body).await;
    assert_eq!(status, 200, "{source}: {first}");
    assert_eq!(first["duplicate"], false, "{source}");
    let id = first["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("evt_"), "{id}");
    for _ in 0..2 {
        let (status, again) = post(&router.webhook(source), headers, body).await;
        assert_eq!(status, 200, "{source}: {again}");
        assert_eq!(again["duplicate"], true, "{source}");
        assert_eq!(again["id"], id.as_str(), "{source}");
    }
    id
}

#[tokio::test]
async fn every_preset_is_verified_and_stored_exactly_once() {
    let router = InProcess::start_sqlite().await;
    let now = sign::now();
    let gh = br#"{"action":"opened","number":1}"#;
    let stripe = br#"{"id":"evt_123","type":"payment_intent.succeeded"}"#;
    let slack = br#"{"type":"event_callback","event_id":"Ev1"}"#;
    let shop = br#"{"id":820982911946154508,"total_price":"2000.00"}"#;
    let std_body = br#"{"type":"contact.created"}"#;
    let raw = b"\xff\xfe not utf-8 \x00";

    let ids = [
        assert_exactly_once(
            &router,
            "github",
            &sign::github(secrets::GITHUB, "d-1", gh),
            gh,
        )
        .await,
        assert_exactly_once(
            &router,
            "stripe",
            &sign::stripe(secrets::STRIPE, now, stripe),
            stripe,
        )
        .await,
        assert_exactly_once(
            &router,
            "slack",
            &sign::slack(secrets::SLACK, now, slack),
            slack,
        )
        .await,
        assert_exactly_once(
            &router,
            "shopify",
            &sign::shopify(secrets::SHOPIFY, "e-1", shop),
            shop,
        )
        .await,
        assert_exactly_once(
            &router,
            "standard",
            &sign::standard("webhook", secrets::STANDARD, "msg_1", now, std_body),
            std_body,
        )
        .await,
        assert_exactly_once(
            &router,
            "svix",
            &sign::standard("svix", secrets::STANDARD, "msg_1", now, std_body),
            std_body,
        )
        .await,
        assert_exactly_once(&router, "acme", &sign::acme(secrets::ACME, "a-1", raw), raw).await,
        assert_exactly_once(&router, "internal", &vec![], raw).await,
    ];

    let store = open_store(&hookyard_tests::sqlite_url(&router.dir)).await;
    assert_eq!(store.count_events().await.unwrap(), ids.len() as u64);
    // Keys are the providers' ids where the scheme has one, else the body digest.
    let keys = [
        ("github", "d-1"),
        ("stripe", "evt_123"),
        ("shopify", "e-1"),
        ("standard", "msg_1"),
        ("svix", "msg_1"),
        ("acme", "a-1"),
    ];
    for (source, key) in keys {
        let found = store.find_event_by_key(source, key).await.unwrap();
        assert!(found.is_some(), "{source} stored under key {key}");
    }
    let slack_event = store
        .get_event(&EventId::from_string(ids[2].clone()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        slack_event.idem_key.starts_with("sha256:"),
        "{}",
        slack_event.idem_key
    );
    let internal = store
        .get_event(&EventId::from_string(ids[7].clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        internal.body,
        raw.to_vec(),
        "non-UTF-8 body kept byte for byte"
    );
    assert_eq!(internal.verification, "none");
    assert_eq!(internal.method, "POST");
    assert_eq!(internal.path, "/webhooks/internal");
    router.stop().await.unwrap();
}

#[tokio::test]
async fn credentials_in_headers_are_redacted_before_storage() {
    let router = InProcess::start_sqlite().await;
    let headers: Headers = vec![
        ("Authorization".into(), "Bearer super-secret-token".into()),
        ("Cookie".into(), "session=super-secret-cookie".into()),
        ("X-Kept".into(), "visible".into()),
    ];
    let (status, ack) = post(&router.webhook("internal"), &headers, b"{}").await;
    assert_eq!(status, 200, "{ack}");
    let store = open_store(&hookyard_tests::sqlite_url(&router.dir)).await;
    let event = store
        .get_event(&EventId::from_string(ack["id"].as_str().unwrap().into()))
        .await
        .unwrap()
        .unwrap();
    let get = |n: &str| {
        event
            .headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("authorization"),
        Some(HeaderValueRepr::Text("[redacted]".into()))
    );
    assert_eq!(
        get("cookie"),
        Some(HeaderValueRepr::Text("[redacted]".into()))
    );
    assert_eq!(get("x-kept"), Some(HeaderValueRepr::Text("visible".into())));
    router.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_duplicates_yield_one_event() {
    let router = InProcess::start_sqlite().await;
    let body = br#"{"same":"delivery"}"#;
    let headers = sign::github(secrets::GITHUB, "dup-race", body);
    let url = router.webhook("github");
    let sends = (0..32).map(|_| post(&url, &headers, body));
    let results = futures::future::join_all(sends).await;
    let ids: std::collections::BTreeSet<_> =
        results.iter().map(|(_, v)| v["id"].to_string()).collect();
    assert_eq!(ids.len(), 1, "every answer carries the one event id");
    let fresh = results
        .iter()
        .filter(|(_, v)| v["duplicate"] == false)
        .count();
    assert_eq!(fresh, 1, "exactly one answer says duplicate: false");
    assert!(results.iter().all(|(s, _)| *s == 200));
    router.stop().await.unwrap();
}
