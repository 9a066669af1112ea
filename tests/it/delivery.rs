//! Delivery end to end: the router's workers send what dispatch wrote to
//! real receivers, retry through an outage with the same idempotency key,
//! dead-letter what is refused, keep one slow sink from holding back
//! another, and release what is in flight at shutdown.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hookyard::store::EventId;
use hookyard_tests::receiver::{free_port, Receiver, Script};
use hookyard_tests::{deliveries_settled, open_store, post, sqlite_url, InProcess};
use serde_json::Value;
use sha2::Sha256;

/// `whsec_` + base64("hookyard-test-signing-key").
const SIGN_SECRET: &str = "whsec_aG9va3lhcmQtdGVzdC1zaWduaW5nLWtleQ==";

/// A router.toml: `sinks` verbatim, and source `raw` (no verification)
/// sending its raw events to `route`.
fn config(dir: &Path, sinks: &str, route: &[&str]) -> String {
    let route: Vec<String> = route.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout_s = 2
[store]
url = "{store}"
[delivery]
poll_ms = 50
lease_s = 5
{sinks}
[sources.raw]
verify = "none"
sinks = [{route}]
"#,
        store = sqlite_url(dir),
        route = route.join(", "),
    )
}

/// An HTTP sink named `name` with fast retries.
fn http_sink(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[sinks.{name}]
type = "http"
url = "{url}"
timeout_ms = 2000
retry = {{ attempts = 100, base_ms = 50, cap_ms = 400 }}
{extra}
"#
    )
}

/// Posts `n` distinct JSON events to `raw`; returns their ids.
async fn send_events(router: &InProcess, n: usize, tag: &str) -> Vec<EventId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let body = format!(r#"{{"tag":"{tag}","n":{i}}}"#);
        let resp = post(&router.webhook("raw"), &vec![], body.as_bytes()).await;
        assert_eq!(resp.status(), 200);
        let ack: Value = resp.json().await.unwrap();
        ids.push(EventId::from_string(ack["id"].as_str().unwrap().into()));
    }
    ids
}

/// The Standard Webhooks signature a receiver computes for a request.
fn expected_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SIGN_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// A receiver that is down (a closed port) for a while: the deliveries
/// fail and wait; once it listens, every one arrives, exactly once, signed,
/// with the delivery's id as its idempotency key.
#[tokio::test(flavor = "multi_thread")]
async fn a_sink_down_for_a_while_gets_every_delivery_once_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let sinks = http_sink("down", &url, &format!("sign_secret = \"{SIGN_SECRET}\""));
    let router = InProcess::start_with(tmp.path(), &config(tmp.path(), &sinks, &["down"])).await;
    let store = open_store(&sqlite_url(tmp.path())).await;

    let ids = send_events(&router, 40, "outage").await;
    // Every delivery has failed at least once against the closed port.
    let deadline = Instant::now() + Duration::from_secs(30);
    'outage: loop {
        let mut failed = 0;
        for id in &ids {
            let deliveries = store.deliveries(id).await.unwrap();
            if let Some(d) = deliveries.first() {
                if d.attempts >= 1 {
                    assert_eq!(d.status, "pending", "retried, not dead");
                    let error = d.last_error.as_deref().unwrap_or_default();
                    assert!(
                        error.contains("refused") || error.contains("connect"),
                        "{error}"
                    );
                    failed += 1;
                }
            }
        }
        if failed == ids.len() {
            break 'outage;
        }
        assert!(
            Instant::now() < deadline,
            "only {failed} deliveries attempted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let receiver = Receiver::start_on(port, Script::default()).await;
    deliveries_settled(&store, Duration::from_secs(60)).await;
    let delivered = receiver.delivered();
    let mut expected = HashSet::new();
    for id in &ids {
        let deliveries = store.deliveries(id).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        let d = &deliveries[0];
        assert_eq!(d.status, "done", "{id}");
        assert!(d.attempts >= 2, "failed during the outage, then delivered");
        assert_eq!(delivered.get(&d.id), Some(&1), "{} delivered once", d.id);
        expected.insert(d.id.clone());
    }
    assert_eq!(delivered.len(), ids.len(), "nothing else arrived");
    for request in receiver.received() {
        assert!(expected.contains(&request.key));
        assert_eq!(request.header("webhook-id"), Some(request.key.as_str()));
        let ts = request.header("webhook-timestamp").expect("signed");
        assert_eq!(
            request.header("webhook-signature"),
            Some(expected_signature(&request.key, ts, &request.body).as_str())
        );
    }
    store.close().await;
    router.stop().await.unwrap();
    receiver.stop().await;
}

/// 503s are retried with the same key until they pass; a 4xx is dead at
/// once; `hookyard dlq retry` sends a dead letter again with its old key.
#[tokio::test(flavor = "multi_thread")]
async fn retries_keep_their_key_and_refusals_go_to_the_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let flaky = Receiver::start(Script {
        fail_first: 2,
        ..Script::default()
    })
    .await;
    let refusing = Receiver::start(Script {
        status: 422,
        ..Script::default()
    })
    .await;
    let sinks = format!(
        "{}{}",
        http_sink("flaky", &flaky.url, ""),
        http_sink("refusing", &refusing.url, "")
    );
    let text = config(tmp.path(), &sinks, &["flaky", "refusing"]);
    let router = InProcess::start_with(tmp.path(), &text).await;
    let store = open_store(&sqlite_url(tmp.path())).await;

    let ids = send_events(&router, 3, "retry").await;
    deliveries_settled(&store, Duration::from_secs(60)).await;
    for id in &ids {
        let deliveries = store.deliveries(id).await.unwrap();
        let by_sink = |sink: &str| deliveries.iter().find(|d| d.sink == sink).unwrap().clone();
        let ok = by_sink("flaky");
        assert_eq!((ok.status.as_str(), ok.attempts), ("done", 3));
        let tries: Vec<_> = flaky
            .received()
            .into_iter()
            .filter(|r| r.key == ok.id)
            .collect();
        assert_eq!(tries.len(), 3, "the same key on every attempt");
        let history = store.delivery_attempts(&ok.id).await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(history
            .iter()
            .all(|a| a.outcome == "retry" && a.error.contains("503")));

        let dead = by_sink("refusing");
        assert_eq!((dead.status.as_str(), dead.attempts), ("dead", 1));
        assert!(
            dead.last_error.as_deref().unwrap().contains("422"),
            "{:?}",
            dead.last_error
        );
    }
    let listed = store
        .dead_deliveries(hookyard::store::DeadQuery {
            sink: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);

    // The CLI beside the running router: list, then send one again.
    let cli = |args: &[&str]| {
        std::process::Command::new(hookyard_tests::process::bin())
            .arg("--config")
            .arg(tmp.path().join("router.toml"))
            .args(args)
            .output()
            .expect("run hookyard")
    };
    let out = cli(&["dlq", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let again = lines[0]["id"].as_str().unwrap().to_string();
    let out = cli(&["dlq", "retry", &again]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = store.get_delivery(&again).await.unwrap().unwrap();
        if d.status == "dead" && d.attempts == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not sent again: {d:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resent: Vec<_> = refusing
        .received()
        .into_iter()
        .filter(|r| r.key == again)
        .collect();
    assert_eq!(resent.len(), 2, "sent again with the same idempotency key");
    let out = cli(&["dlq", "retry", "dlv_nonexistent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such delivery"));

    store.close().await;
    router.stop().await.unwrap();
    flaky.stop().await;
    refusing.stop().await;
}

/// A slow HTTP receiver (one request at a time, 1 s each) does not slow
/// the file sink beside it; a rate limit holds a sink to its pace.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_sink_does_not_hold_back_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let slow = Receiver::start(Script {
        delay: Duration::from_secs(1),
        ..Script::default()
    })
    .await;
    let paced = Receiver::start(Script::default()).await;
    let sinks = format!(
        "{}{}\n[sinks.archive]\ntype = \"file\"\npath = \"{}/archive.jsonl\"\n",
        http_sink("slow", &slow.url, "max_concurrency = 1"),
        http_sink("paced", &paced.url, "rate_per_s = 20"),
        tmp.path().display()
    );
    let text = config(tmp.path(), &sinks, &["slow", "archive", "paced"]);
    let router = InProcess::start_with(tmp.path(), &text).await;
    let store = open_store(&sqlite_url(tmp.path())).await;

    let ids = send_events(&router, 40, "pace").await;
    let started = Instant::now();
    // The archive has every event long before the slow sink could have
    // taken half of them (20 x 1 s), even on a loaded CI machine.
    let deadline = started + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(tmp.path().join("archive.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "archive has {lines} lines");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let slow_done = slow.delivered().len();
    assert!(
        slow_done < ids.len() / 2,
        "the slow sink took {slow_done} while the archive took all {}",
        ids.len()
    );
    let slow_requests = slow.received();
    assert!(
        slow_requests
            .windows(2)
            .all(|w| w[1].at >= w[0].at + Duration::from_millis(900)),
        "one at a time"
    );

    // 40 at 20/s with one second banked: the last starts >= ~1 s after the first.
    let paced_all = paced.wait_for(ids.len(), Duration::from_secs(30)).await;
    assert_eq!(paced_all.len(), ids.len());
    let times: Vec<Instant> = paced.received().iter().map(|r| r.at).collect();
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        span >= Duration::from_millis(900),
        "40 deliveries at 20/s took {span:?}"
    );

    store.close().await;
    router.stop().await.unwrap();
    slow.stop().await;
    paced.stop().await;
}
