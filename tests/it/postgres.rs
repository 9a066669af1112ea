//! The same receive path on Postgres: exactly once, also across a restart.

use hookyard_tests::services::{drop_database, fresh_postgres};
use hookyard_tests::sign::{self, with_headers};
use hookyard_tests::{client, config_toml, secrets, InProcess};

#[tokio::test]
async fn postgres_store_acks_once_and_detects_duplicates_after_restart() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(&url, "");
    let send = |router_url: String, n: usize| async move {
        let delivery = format!("pg-{n}");
        let body = format!(r#"{{"n":{n}}}"#);
        let headers = sign::github(secrets::GITHUB, &delivery, body.as_bytes());
        let resp = with_headers(client().post(router_url), &headers)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<serde_json::Value>().await.unwrap()
    };

    let router = InProcess::start_with(dir.path(), &text).await;
    let first = futures::future::join_all((0..50).map(|n| send(router.webhook("github"), n))).await;
    assert!(first.iter().all(|a| a["duplicate"] == false));
    router.stop().await.unwrap();

    let router = InProcess::start_with(dir.path(), &text).await;
    let again = futures::future::join_all((0..50).map(|n| send(router.webhook("github"), n))).await;
    for (a, b) in first.iter().zip(&again) {
        assert_eq!(b["duplicate"], true);
        assert_eq!(a["id"], b["id"]);
    }
    router.stop().await.unwrap();
    drop_database(&url).await;
}
