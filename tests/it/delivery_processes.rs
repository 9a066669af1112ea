//! Delivery across processes: replay from the CLI beside a running router,
//! a SIGTERM that releases what is in flight, and three routers on one
//! Postgres database sharing the work, with and without a crash.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hookyard::store::EventId;
use hookyard_tests::receiver::{free_port, Receiver, Script};
use hookyard_tests::services::{drop_database, fresh_postgres};
use hookyard_tests::{
    client, deliveries_settled, dispatched, open_store, plugins, post, process, sign, sqlite_url,
    InProcess, Router,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const SECRET: &str = "delivery-test-secret";

fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(process::bin())
        .arg("--config")
        .arg(dir.join("router.toml"))
        .args(args)
        .output()
        .expect("run hookyard")
}

/// `hookyard replay <id>` runs the current plugin version on a stored
/// event again: a second plugin run, a second delivery (a new key); the
/// bulk form replays by source and time.
#[tokio::test(flavor = "multi_thread")]
async fn replay_from_the_cli_runs_the_plugin_again_into_new_deliveries() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[delivery]
poll_ms = 50
[sinks.archive]
type = "file"
path = "{dir}/archive.jsonl"
[plugins.github-router]
wasm = "{wasm}"
sinks = ["archive"]
config = {{ route_push = "archive" }}
[sources.github]
verify = "github"
secrets = ["{SECRET}"]
plugin = "github-router"
"#,
        store = sqlite_url(tmp.path()),
        dir = tmp.path().display(),
        wasm = plugins::wasm("github-router").display(),
    );
    let router = InProcess::start_with(tmp.path(), &text).await;
    let store = open_store(&sqlite_url(tmp.path())).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let body = format!(
            r#"{{"ref":"refs/heads/main","n":{n},"repository":{{"full_name":"acme/api"}}}}"#
        );
        let mut headers = sign::github(SECRET, &format!("replay-{n}"), body.as_bytes());
        headers.push(("X-GitHub-Event".into(), "push".into()));
        let resp = post(&router.webhook("github"), &headers, body.as_bytes()).await;
        assert_eq!(resp.status(), 200);
        let ack: Value = resp.json().await.unwrap();
        ids.push(EventId::from_string(ack["id"].as_str().unwrap().into()));
    }
    for id in &ids {
        assert_eq!(dispatched(&store, id).await.status, "processed");
    }
    deliveries_settled(&store, Duration::from_secs(30)).await;

    let out = cli(tmp.path(), &["replay", ids[0].as_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("queued 1 event"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.plugin_runs(&ids[0]).await.unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "replay never ran");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    deliveries_settled(&store, Duration::from_secs(30)).await;
    let deliveries = store.deliveries(&ids[0]).await.unwrap();
    assert_eq!(deliveries.len(), 2);
    assert_ne!(
        deliveries[0].id, deliveries[1].id,
        "a replay is a new delivery"
    );
    assert!(deliveries.iter().all(|d| d.status == "done"));
    let archive = std::fs::read_to_string(tmp.path().join("archive.jsonl")).unwrap();
    assert_eq!(archive.lines().count(), 4);

    let out = cli(
        tmp.path(),
        &["replay", "--source", "github", "--since", "1h"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("queued 3 events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(tmp.path(), &["replay", "evt_nonexistent"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such event"));
    let out = cli(tmp.path(), &["replay"]);
    assert!(
        !out.status.success(),
        "a replay of everything needs a filter"
    );

    store.close().await;
    router.stop().await.unwrap();
}

/// SIGTERM while a slow receiver holds deliveries: the router exits within
/// its deadline, leaves nothing claimed (all pending deliveries are due at
/// once), and the next start delivers every one.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_deliveries_in_flight_and_the_next_start_sends_them() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout_s = 1
[store]
url = "{store}"
[delivery]
poll_ms = 50
lease_s = 600
[sinks.slow]
type = "http"
url = "http://127.0.0.1:{port}/hook"
timeout_ms = 60000
max_concurrency = 4
[sources.raw]
verify = "none"
sinks = ["slow"]
"#,
        store = sqlite_url(tmp.path()),
    );
    let slow = Receiver::start_on(
        port,
        Script {
            delay: Duration::from_secs(20),
            ..Script::default()
        },
    )
    .await;
    let mut router = Router::start(tmp.path(), &text, &[]);
    for n in 0..8 {
        let resp = post(
            &router.webhook("raw"),
            &vec![],
            format!(r#"{{"n":{n}}}"#).as_bytes(),
        )
        .await;
        assert_eq!(resp.status(), 200);
    }
    // Wait for all eight to be dispatched into deliveries, not only for the
    // four sends: on a loaded machine the last events can still be queued
    // for dispatch when the first sends arrive, and a SIGTERM then leaves
    // them undispatched (correct, but not what this test is about).
    let store = open_store(&sqlite_url(tmp.path())).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let backlog = store.backlog().await.unwrap();
        if slow.arrived() >= 4 && backlog.undispatched == 0 && backlog.pending_deliveries == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never 4 in flight and 8 pending: {} arrived, {backlog:?}",
            slow.arrived()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    router.signal(Signal::SIGTERM);
    let status = router.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}\n{}", router.logs());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "took {:?}",
        stopping.elapsed()
    );
    slow.stop().await;

    let backlog = store.backlog().await.unwrap();
    assert_eq!(
        (
            backlog.undispatched,
            backlog.pending_deliveries,
            backlog.dead_deliveries
        ),
        (0, 8, 0),
        "none was answered in time: {backlog:?}"
    );
    // Released, not leased for lease_s = 600: due at once, the four that
    // were in flight included.
    let due = store
        .claim_deliveries("slow", hookyard::clock::now_ms(), 1, 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 8, "every delivery is due, none left claimed");
    assert_eq!(
        due.iter().filter(|d| d.attempts == 0).count(),
        8,
        "a send cut short is not counted as an attempt"
    );
    let fast = Receiver::start_on(port, Script::default()).await;
    let router = Router::start(tmp.path(), &text, &[]);
    deliveries_settled(&store, Duration::from_secs(30)).await;
    assert_eq!(fast.delivered().len(), 8);
    drop(router);
    store.close().await;
    fast.stop().await;
}

/// The config three routers share: Postgres, a raw source to one HTTP sink.
fn shared_config(db: &str, receiver: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout_s = 5
[store]
url = "{db}"
[delivery]
poll_ms = 100
lease_s = 5
[sinks.out]
type = "http"
url = "{receiver}"
timeout_ms = 2000
max_concurrency = 32
retry = {{ attempts = 50, base_ms = 100, cap_ms = 1000 }}
[sources.raw]
verify = "none"
sinks = ["out"]
"#
    )
}

/// Posts `n` events spread over `urls` (32 at a time); returns the ids of
/// those acknowledged. A router that is gone just fails its share.
async fn spread(urls: &[String], n: usize, tag: &str) -> Vec<String> {
    let http = client();
    futures::stream::iter(0..n)
        .map(|i| {
            let (http, url) = (http.clone(), urls[i % urls.len()].clone());
            let body = format!(r#"{{"tag":"{tag}","n":{i}}}"#);
            async move {
                let resp = http.post(url).body(body).send().await.ok()?;
                if resp.status() != 200 {
                    return None;
                }
                let ack: Value = resp.json().await.ok()?;
                ack["id"].as_str().map(str::to_string)
            }
        })
        .buffer_unordered(32)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

/// Every delivery id in the database, and how many are not `done`.
async fn delivery_ids(db: &str) -> (HashSet<String>, i64) {
    let pool = sqlx::PgPool::connect(db).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM deliveries")
        .fetch_all(&pool)
        .await
        .unwrap();
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE status <> 'done'")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (ids.into_iter().collect(), open)
}

/// Three routers, one database, 10,000 events: every delivery arrives,
/// and none twice (no process crashed, so no lease ran out).
#[tokio::test(flavor = "multi_thread")]
async fn three_routers_on_one_postgres_deliver_every_event_once() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let receiver = Receiver::start(Script::default()).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let routers: Vec<Router> = dirs
        .iter()
        .map(|d| Router::start(d.path(), &shared_config(&db, &receiver.url), &[]))
        .collect();
    let urls: Vec<String> = routers.iter().map(|r| r.webhook("raw")).collect();
    let acked = spread(&urls, 10_000, "once").await;
    assert_eq!(acked.len(), 10_000);
    let store = open_store(&db).await;
    deliveries_settled(&store, Duration::from_secs(240)).await;
    let (ids, open) = delivery_ids(&db).await;
    assert_eq!((ids.len(), open), (10_000, 0));
    let delivered = receiver.delivered();
    assert_eq!(delivered.len(), 10_000);
    let twice: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert!(delivered.keys().all(|k| ids.contains(k)));
    store.close().await;
    drop(routers);
    receiver.stop().await;
    drop_database(&db).await;
}

/// The same with one router killed (SIGKILL) mid-run: every acknowledged
/// event's delivery still arrives (its claims come back after the lease).
#[tokio::test(flavor = "multi_thread")]
async fn a_router_killed_mid_run_loses_no_delivery() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let receiver = Receiver::start(Script {
        delay: Duration::from_millis(20),
        ..Script::default()
    })
    .await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut routers: Vec<Router> = dirs
        .iter()
        .map(|d| Router::start(d.path(), &shared_config(&db, &receiver.url), &[]))
        .collect();
    let urls: Vec<String> = routers.iter().map(|r| r.webhook("raw")).collect();
    let mut acked = spread(&urls, 3_000, "before").await;
    assert_eq!(acked.len(), 3_000);
    // Mid-run: deliveries of all three are in flight.
    routers[0].kill9();
    acked.extend(spread(&urls[1..], 2_000, "after").await);
    assert_eq!(acked.len(), 5_000, "the two left accept everything");
    let store = open_store(&db).await;
    deliveries_settled(&store, Duration::from_secs(240)).await;
    let (ids, open) = delivery_ids(&db).await;
    assert_eq!(open, 0);
    assert_eq!(
        ids.len(),
        acked.len(),
        "one delivery per acknowledged event"
    );
    let delivered = receiver.delivered();
    let lost: Vec<_> = ids
        .iter()
        .filter(|id| !delivered.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "{} deliveries never arrived", lost.len());
    store.close().await;
    drop(routers);
    receiver.stop().await;
    drop_database(&db).await;
}
