//! Dispatch end to end: signed requests in, the example plugin built from
//! source runs after the ack, and each event ends with its status, its
//! plugin run and its deliveries in the store; limits fail only
//! their own event; what a crash left undispatched is dispatched at start.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookyard::store::{EventId, HeaderValueRepr, NewEvent};
use hookyard_tests::{
    deliveries_settled, dispatched, open_store, plugins, post, sign, sqlite_url, InProcess,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: &str = "dispatch-test-secret";

/// A router.toml with the GitHub router plugin, raw-sink and store-only
/// sources, and one source per limit of the fixture plugin.
fn config(dir: &Path) -> String {
    let github = plugins::wasm("github-router");
    let fixture = plugins::wasm("limits-fixture");
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"

[sinks.archive]
type = "file"
path = "{dir}/archive.jsonl"
[sinks.ops]
type = "http"
url = "http://127.0.0.1:9/ops"
[sinks.out]
type = "file"
path = "{dir}/out.jsonl"

[plugins.github-router]
wasm = "{github}"
sinks = ["archive", "ops"]
config = {{ repos = "acme/api", route_push = "archive", route_issues = "ops" }}

[plugins.greedy-router]
wasm = "{github}"
sinks = ["archive"]
config = {{ route_push = "ops" }}

[sources.github]
verify = "github"
secrets = ["{SECRET}"]
plugin = "github-router"

[sources.greedy]
verify = "github"
secrets = ["{SECRET}"]
plugin = "greedy-router"

[sources.raw]
verify = "none"
sinks = ["archive", "out"]

[sources.kept]
verify = "none"
"#,
        store = sqlite_url(dir),
        dir = dir.display(),
        github = github.display(),
    );
    for mode in ["spin", "grow", "panic", "big", "error", "none", "echo"] {
        text.push_str(&format!(
            r#"
[plugins.fixture-{mode}]
wasm = "{fixture}"
sinks = ["out"]
fuel = {fuel}
timeout_ms = 2000
memory_mb = 16
max_output_bytes = 1000
config = {{ mode = "{mode}", bytes = "2000" }}

[sources.limit-{mode}]
verify = "none"
plugin = "fixture-{mode}"
"#,
            fixture = fixture.display(),
            // Filling 16 MiB takes more fuel than the others' budget.
            fuel = if mode == "grow" {
                2_000_000_000u64
            } else {
                5_000_000
            },
        ));
    }
    text
}

fn push(repo: &str, n: usize) -> Vec<u8> {
    format!(r#"{{"ref":"refs/heads/main","n":{n},"repository":{{"full_name":"{repo}"}}}}"#)
        .into_bytes()
}

/// POSTs and returns the acknowledged event id.
async fn send(router: &InProcess, source: &str, headers: &sign::Headers, body: &[u8]) -> EventId {
    let resp = post(&router.webhook(source), headers, body).await;
    assert_eq!(resp.status(), 200, "{source}");
    let ack: Value = resp.json().await.unwrap();
    EventId::from_string(ack["id"].as_str().unwrap().to_string())
}

async fn github(
    router: &InProcess,
    source: &str,
    delivery: &str,
    kind: &str,
    body: &[u8],
) -> EventId {
    let mut headers = sign::github(SECRET, delivery, body);
    headers.push(("X-GitHub-Event".into(), kind.into()));
    send(router, source, &headers, body).await
}

fn version_of(path: &Path) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_events_go_through_their_plugin_into_deliveries() {
    let tmp = tempfile::tempdir().unwrap();
    let router = InProcess::start_with(tmp.path(), &config(tmp.path())).await;
    let store = open_store(&sqlite_url(tmp.path())).await;
    let version = version_of(&plugins::wasm("github-router"));

    let body = push("acme/api", 1);
    let routed = github(&router, "github", "d-routed", "push", &body).await;
    let event = dispatched(&store, &routed).await;
    assert_eq!(event.status, "processed");
    let deliveries = store.deliveries(&routed).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d.sink.as_str(), "archive");
    assert_eq!(d.payload, body, "the plugin forwards the body as received");
    assert_eq!(d.msg_key.as_deref(), Some("d-routed"));
    assert_eq!(d.subject_suffix.as_deref(), Some("push"));
    let runs = store.plugin_runs(&routed).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        (run.plugin.as_str(), run.version.as_str()),
        ("github-router", version.as_str())
    );
    assert_eq!(run.outcome, "delivered");
    assert!(run.fuel_used > 0, "fuel is recorded");
    assert_eq!(d.run_id.as_deref(), Some(run.id.as_str()));
    let actions: Value = serde_json::from_str(&run.actions).unwrap();
    assert_eq!(
        actions,
        serde_json::json!([{ "deliver": "archive", "bytes": body.len() }])
    );

    // A repository the config does not route: dropped on purpose, with the reason.
    let other = github(&router, "github", "d-other", "push", &push("evil/repo", 2)).await;
    let event = dispatched(&store, &other).await;
    assert_eq!(event.status, "dropped");
    assert_eq!(
        event.status_reason.as_deref(),
        Some("repository evil/repo is not routed")
    );
    assert!(store.deliveries(&other).await.unwrap().is_empty());

    // A sink the plugin was not granted: the event fails, nothing is delivered.
    let greedy = github(&router, "greedy", "d-greedy", "push", &push("acme/api", 3)).await;
    let event = dispatched(&store, &greedy).await;
    assert_eq!(event.status, "failed");
    let reason = event.status_reason.unwrap();
    assert!(
        reason.contains("plugin greedy-router") && reason.contains("`ops`"),
        "{reason}"
    );
    assert!(reason.contains("granted: archive"), "{reason}");
    assert!(store.deliveries(&greedy).await.unwrap().is_empty());

    // No plugin: the raw event to each of the source's sinks.
    let raw_body = br#"{"hello":"sinks"}"#;
    let raw = send(
        &router,
        "raw",
        &vec![("content-type".into(), "application/json".into())],
        raw_body,
    )
    .await;
    assert_eq!(dispatched(&store, &raw).await.status, "processed");
    let raw_deliveries = store.deliveries(&raw).await.unwrap();
    let sinks: Vec<_> = raw_deliveries.iter().map(|d| d.sink.as_str()).collect();
    assert_eq!(sinks, ["archive", "out"]);
    assert!(raw_deliveries
        .iter()
        .all(|d| d.payload == raw_body && d.run_id.is_none()));
    assert!(store.plugin_runs(&raw).await.unwrap().is_empty());

    // Neither: stored, processed, nothing to deliver.
    let kept = send(&router, "kept", &vec![], b"just keep me").await;
    assert_eq!(dispatched(&store, &kept).await.status, "processed");
    assert!(store.deliveries(&kept).await.unwrap().is_empty());

    store.close().await;
    router.stop().await.unwrap();
}

/// Each limit fails only its own event, with a reason naming plugin,
/// version and limit; events around them are dispatched normally.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_breaking_a_limit_fails_only_its_event() {
    let tmp = tempfile::tempdir().unwrap();
    let router = InProcess::start_with(tmp.path(), &config(tmp.path())).await;
    let store = open_store(&sqlite_url(tmp.path())).await;
    let short = &version_of(&plugins::wasm("limits-fixture"))[..19];

    let expected = [
        ("spin", "ran out of fuel (5000000 units)"),
        ("grow", "exceeded its memory cap of 16 MiB"),
        ("panic", "trapped"),
        (
            "big",
            "returned 2003 bytes of actions, over the limit of 1000",
        ),
        ("none", "returned no action"),
    ];
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (i, (mode, _)) in expected.iter().enumerate() {
        bad.push(
            send(
                &router,
                &format!("limit-{mode}"),
                &vec![],
                format!("{{\"n\":{i}}}").as_bytes(),
            )
            .await,
        );
        good.push(
            github(
                &router,
                "github",
                &format!("d-good-{i}"),
                "push",
                &push("acme/api", i),
            )
            .await,
        );
    }
    for ((mode, limit), id) in expected.iter().zip(&bad) {
        let event = dispatched(&store, id).await;
        assert_eq!(event.status, "failed", "{mode}");
        let reason = event.status_reason.unwrap();
        assert!(
            reason.starts_with(&format!("plugin fixture-{mode} ({short})")),
            "{reason}"
        );
        assert!(reason.contains(limit), "{mode}: {reason}");
        let runs = store.plugin_runs(id).await.unwrap();
        assert_eq!(runs.len(), 1, "{mode}");
        assert_eq!(runs[0].outcome, "failed");
    }
    for id in &good {
        assert_eq!(dispatched(&store, id).await.status, "processed");
    }
    // The same plugin, well behaved, still works after all that.
    let echo = send(&router, "limit-echo", &vec![], b"{\"after\":true}").await;
    assert_eq!(dispatched(&store, &echo).await.status, "processed");
    assert_eq!(
        store.deliveries(&echo).await.unwrap()[0].payload,
        b"{\"after\":true}"
    );

    // An internal error is retried later, not dead-lettered at once.
    let retried = send(&router, "limit-error", &vec![], b"{}").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let event = store.get_event(&retried).await.unwrap().unwrap();
        if event.dispatch_attempts > 0 {
            break event;
        }
        assert!(Instant::now() < deadline, "never attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event.status, "received", "waiting for its retry");
    assert!(event.status_reason.unwrap().contains("attempt 1 of 8"));

    store.close().await;
    router.stop().await.unwrap();
}

/// Events stored before a crash, never dispatched, are dispatched when the
/// router starts again.
#[tokio::test(flavor = "multi_thread")]
async fn events_left_undispatched_are_dispatched_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let text = config(tmp.path());
    let store = open_store(&sqlite_url(tmp.path())).await;
    let mut ids = Vec::new();
    let received = sign::now() * 1000 - 60_000;
    for i in 0..20 {
        let body = push("acme/api", i);
        let inserted = store
            .insert_event(NewEvent {
                id: EventId::generate(),
                source: "github".into(),
                idem_key: format!("crash-{i}"),
                method: "POST".into(),
                path: "/webhooks/github".into(),
                headers: vec![
                    (
                        "x-github-event".into(),
                        HeaderValueRepr::Text("push".into()),
                    ),
                    (
                        "x-github-delivery".into(),
                        HeaderValueRepr::Text(format!("crash-{i}")),
                    ),
                ],
                body: Bytes::from(body),
                received_at_ms: received + i as i64,
                verification: "github".into(),
                dispatch: true,
            })
            .await
            .unwrap();
        ids.push(inserted.id);
    }
    assert_eq!(store.backlog().await.unwrap().undispatched, 20);

    let router = InProcess::start_with(tmp.path(), &text).await;
    for id in &ids {
        assert_eq!(dispatched(&store, id).await.status, "processed");
        assert_eq!(store.deliveries(id).await.unwrap().len(), 1);
    }
    // And the archive (a file sink) takes every delivery.
    deliveries_settled(&store, Duration::from_secs(60)).await;
    for id in &ids {
        let deliveries = store.deliveries(id).await.unwrap();
        assert_eq!(deliveries[0].status, "done", "{id}");
    }
    store.close().await;
    router.stop().await.unwrap();
}
