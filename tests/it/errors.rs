//! Every refusal has its status, a stable code, a JSON body without secrets,
//! and stores nothing; a storage failure answers 503 and loses nothing
//! already accepted.

use hookyard_tests::sign::{self, with_headers, Headers};
use hookyard_tests::{client, open_store, secrets, InProcess};
use serde_json::Value;

async fn post(url: &str, headers: &Headers, body: Vec<u8>) -> (u16, Option<String>, Value) {
    let resp = with_headers(client().post(url), headers)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON error body: {text}"));
    (status, retry_after, json)
}

fn assert_error(got: &(u16, Option<String>, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.2);
    assert_eq!(got.2["error"]["code"], code, "{}", got.2);
    let message = got.2["error"]["message"].as_str().expect("message");
    assert!(!message.is_empty());
    for secret in [
        secrets::GITHUB,
        secrets::STRIPE,
        secrets::SLACK,
        secrets::STANDARD,
    ] {
        assert!(
            !got.2.to_string().contains(secret),
            "secret leaked: {}",
            got.2
        );
    }
}

#[tokio::test]
async fn refusals_have_status_code_and_json_body() {
    let router = InProcess::start_sqlite().await;
    let body = br#"{"a":1}"#.to_vec();
    let now = sign::now();

    let unknown = post(&router.webhook("nope"), &vec![], body.clone()).await;
    assert_error(&unknown, 404, "unknown_source");
    let no_route = post(
        &format!("{}/hooks/github", router.url),
        &vec![],
        body.clone(),
    )
    .await;
    assert_error(&no_route, 404, "not_found");
    let get = client().get(router.webhook("github")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let get: Value = get.json().await.unwrap();
    assert_eq!(get["error"]["code"], "method_not_allowed");

    let missing = post(&router.webhook("github"), &vec![], body.clone()).await;
    assert_error(&missing, 401, "missing_signature");

    let wrong = sign::github("not-the-secret", "d", &body);
    assert_error(
        &post(&router.webhook("github"), &wrong, body.clone()).await,
        401,
        "invalid_signature",
    );

    let tampered = sign::github(secrets::GITHUB, "d", b"{\"a\":2}");
    assert_error(
        &post(&router.webhook("github"), &tampered, body.clone()).await,
        401,
        "invalid_signature",
    );

    let malformed: Headers = vec![("X-Hub-Signature-256".into(), "sha256=zz-not-hex".into())];
    assert_error(
        &post(&router.webhook("github"), &malformed, body.clone()).await,
        400,
        "malformed_signature",
    );

    let no_t: Headers = vec![("Stripe-Signature".into(), "v1=abcdef".into())];
    assert_error(
        &post(&router.webhook("stripe"), &no_t, body.clone()).await,
        400,
        "malformed_signature",
    );

    let stale = sign::stripe(secrets::STRIPE, now - 3600, &body);
    assert_error(
        &post(&router.webhook("stripe"), &stale, body.clone()).await,
        401,
        "timestamp_out_of_window",
    );
    let future = sign::standard("webhook", secrets::STANDARD, "m", now + 3600, &body);
    assert_error(
        &post(&router.webhook("standard"), &future, body.clone()).await,
        401,
        "timestamp_out_of_window",
    );

    // max_body_bytes is 65536 in the harness config.
    let big = vec![b'x'; 65537];
    let too_large = post(&router.webhook("internal"), &vec![], big).await;
    assert_error(&too_large, 413, "body_too_large");

    let store = open_store(&hookyard_tests::sqlite_url(&router.dir)).await;
    assert_eq!(
        store.count_events().await.unwrap(),
        0,
        "nothing refused was stored"
    );
    router.stop().await.unwrap();
}

#[tokio::test]
async fn storage_failure_answers_503_and_keeps_accepted_events() {
    let router = InProcess::start_sqlite().await;
    let (status, _, first) = post(&router.webhook("internal"), &vec![], b"before".to_vec()).await;
    assert_eq!(status, 200);

    // Break the table under the running router with a second connection.
    let db = format!("sqlite://{}", router.dir.join("hookyard.db").display());
    rename_table(&db, "events", "events_away").await;

    let failed = post(&router.webhook("internal"), &vec![], b"during".to_vec()).await;
    assert_error(&failed, 503, "store_unavailable");
    assert_eq!(failed.1.as_deref(), Some("1"), "503 carries Retry-After");
    assert!(
        !failed.2.to_string().contains("events"),
        "no internals in the body: {}",
        failed.2
    );

    rename_table(&db, "events_away", "events").await;
    // The provider's retry now succeeds, and the earlier event is intact.
    let (status, _, retried) = post(&router.webhook("internal"), &vec![], b"during".to_vec()).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried["duplicate"], false);
    let (_, _, again) = post(&router.webhook("internal"), &vec![], b"before".to_vec()).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    router.stop().await.unwrap();
}

async fn rename_table(db: &str, from: &str, to: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(db)
        .await
        .expect("second connection");
    sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .execute(&mut conn)
        .await
        .expect("rename");
}
