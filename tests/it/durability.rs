//! The ack is a promise: SIGKILL the router while requests are in flight,
//! restart it, and every acknowledged event is still there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookyard_tests::sign::{self, with_headers};
use hookyard_tests::{client, config_toml, open_store, secrets, sqlite_url, Router};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(&sqlite_url(dir.path()), "");
    let mut router = Router::start(dir.path(), &text, &[]);
    let url = router.webhook("github");

    // 16 senders post distinct signed events until the router dies.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default(); // (delivery, event id)
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for worker in 0..16 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
        senders.push(tokio::spawn(async move {
            let client = client();
            for n in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let delivery = format!("kill-{worker}-{n}");
                let body = format!(r#"{{"delivery":"{delivery}","pad":"{}"}}"#, "x".repeat(200));
                let headers = sign::github(secrets::GITHUB, &delivery, body.as_bytes());
                let sent = with_headers(client.post(&url), &headers)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(resp) if resp.status() == 200 => {
                        let ack: serde_json::Value = match resp.json().await {
                            Ok(v) => v,
                            Err(_) => break, // died mid-response: not acknowledged
                        };
                        let id = ack["id"].as_str().unwrap().to_string();
                        acked.lock().unwrap().push((delivery, id));
                    }
                    // Connection reset or refused: the router is gone.
                    _ => break,
                }
            }
        }));
    }
    // Let a few hundred acks through, then kill without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "router too slow to ack 300 events"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // Every acknowledged event is in the database after the crash...
    let store = open_store(&sqlite_url(dir.path())).await;
    for (delivery, id) in &acked {
        let found = store.find_event_by_key("github", delivery).await.unwrap();
        assert_eq!(
            found.map(|e| e.id.to_string()),
            Some(id.clone()),
            "{delivery} lost"
        );
    }
    store.close().await;

    // ...and a restarted router answers duplicate with the same id.
    let router = Router::start(dir.path(), &text, &[]);
    let client = client();
    for (delivery, id) in acked.iter().step_by(7) {
        let body = format!(r#"{{"delivery":"{delivery}","pad":"{}"}}"#, "x".repeat(200));
        let headers = sign::github(secrets::GITHUB, delivery, body.as_bytes());
        let resp = with_headers(client.post(router.webhook("github")), &headers)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ack: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(ack["duplicate"], true, "{delivery}");
        assert_eq!(ack["id"], id.as_str(), "{delivery}");
    }
}
