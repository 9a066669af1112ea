//! Configuration reload end to end: SIGHUP applies source, plugin and sink
//! changes while webhooks keep arriving, losing and duplicating none; an
//! invalid file is refused with the reason while the running configuration
//! keeps serving; `POST /api/config/reload` answers what it applied and
//! which sections wait for a restart.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookyard_tests::admin::{self, admin_up, metric};
use hookyard_tests::receiver::free_port;
use hookyard_tests::{
    client, config_toml, plugins, post, secrets, sign, sqlite_url, InProcess, Router,
};
use nix::sys::signal::Signal;
use sha2::{Digest, Sha256};

const TOKEN: &str = "admin-token-for-the-reload-tests-0123";

/// The reloaded router's file: `orders` through the json-router plugin
/// (copied to `plugins/router.wasm` by the test),
/// `plugin_config` its config, `first_dir` where sink `first` writes, and
/// `extra` appended (more sources and sinks).
fn routed(dir: &Path, admin: u16, plugin_config: &str, first_dir: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_timeout_s = 10

[store]
url = "{store}"

[admin]
listen = "127.0.0.1:{admin}"
token = "{TOKEN}"

[delivery]
poll_ms = 50

[sources.orders]
verify = "none"
plugin = "router"

[plugins.router]
wasm = "plugins/router.wasm"
sinks = ["first", "second"]
config = {plugin_config}

[sinks.first]
type = "file"
path = "{first_dir}/{{source}}.jsonl"

[sinks.second]
type = "file"
path = "second/{{source}}.jsonl"
{extra}"#,
        store = sqlite_url(dir),
    )
}

/// The `event_id` of each line of the JSON-lines file at `path` (none if
/// it does not exist yet).
fn event_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            line["event_id"].as_str().expect("event_id").to_string()
        })
        .collect()
}

/// `series` on the admin listener now.
async fn sample(admin: u16, series: &str) -> f64 {
    metric(admin, TOKEN, series).await
}

/// Waits until `series` reaches `at_least` (a reload's outcome is counted
/// when it is done).
async fn wait_for_sample(admin: u16, series: &str, at_least: f64) {
    admin::wait_for_sample(admin, TOKEN, series, at_least, Duration::from_secs(60)).await;
}

/// Waits until the files under `dir` named in `files` hold `count` lines together.
async fn wait_for_lines(dir: &Path, files: &[&str], count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ids: Vec<String> = files.iter().flat_map(|f| event_ids(&dir.join(f))).collect();
        if ids.len() >= count {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} lines in {files:?}",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send_json(url: &str, body: &str) -> reqwest::StatusCode {
    post(url, &vec![], body.as_bytes()).await.status()
}

const APPLIED: &str = r#"hookyard_config_reloads_total{outcome="applied"}"#;
const REFUSED: &str = r#"hookyard_config_reloads_total{outcome="refused"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_source_plugin_and_sink_changes_under_traffic_and_refuses_a_bad_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let admin = free_port();
    let wasm = dir.join("plugins/router.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    let base = std::fs::read(plugins::wasm("json-router")).unwrap();
    std::fs::write(&wasm, &base).unwrap();
    let v1 = routed(
        dir,
        admin,
        r#"{ field = "type", default = "first" }"#,
        "first",
        "\n[sources.retired]\nverify = \"none\"\n",
    );
    let router = Router::start(dir, &v1, &[]);
    admin_up(admin).await;
    let orders = router.webhook("orders");

    // Webhooks keep arriving, one after another, all through the reload.
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = tokio::spawn({
        let (accepted, stop, orders) = (accepted.clone(), stop.clone(), orders.clone());
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let status = send_json(&orders, &format!(r#"{{"type":"note","n":{n}}}"#)).await;
                assert_eq!(status, 200, "webhook {n} refused during the reload");
                accepted.fetch_add(1, Ordering::AcqRel);
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let wait_accepted = |at_least: usize| {
        let accepted = accepted.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while accepted.load(Ordering::Acquire) < at_least {
                assert!(Instant::now() < deadline, "traffic stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_accepted(50).await;

    // v2: the plugin also routes alerts to `second`; sink `first` writes
    // elsewhere (its worker is replaced mid-stream); `retired` is gone;
    // `direct` to a new sink `third` is added.
    let v2 = routed(
        dir,
        admin,
        r#"{ field = "type", default = "first", "route.alert" = "second" }"#,
        "first-v2",
        "\n[sources.direct]\nverify = \"none\"\nsinks = [\"third\"]\n\n[sinks.third]\ntype = \"file\"\npath = \"third/{source}.jsonl\"\n",
    );
    std::fs::write(dir.join("router.toml"), &v2).unwrap();
    router.signal(Signal::SIGHUP);
    wait_for_sample(admin, APPLIED, 1.0).await;
    let at_reload = accepted.load(Ordering::Acquire);
    wait_accepted(at_reload + 50).await;
    stop.store(true, Ordering::Release);
    traffic.await.unwrap();
    let sent = accepted.load(Ordering::Acquire);

    // Every accepted webhook delivered once, before and after the swap.
    let ids = wait_for_lines(dir, &["first/orders.jsonl", "first-v2/orders.jsonl"], sent).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), distinct.len()),
        (sent, sent),
        "each of the {sent} accepted webhooks delivered exactly once"
    );
    let (before, after) = (
        event_ids(&dir.join("first/orders.jsonl")).len(),
        event_ids(&dir.join("first-v2/orders.jsonl")).len(),
    );
    assert!(
        before > 0 && after > 0,
        "the old sink settings served until the reload, the new ones after ({before} + {after})"
    );

    // The new plugin config, the new source and sink; the removed source.
    assert_eq!(send_json(&orders, r#"{"type":"alert","n":1}"#).await, 200);
    wait_for_lines(dir, &["second/orders.jsonl"], 1).await;
    assert_eq!(
        send_json(&router.webhook("direct"), r#"{"hello":1}"#).await,
        200
    );
    wait_for_lines(dir, &["third/direct.jsonl"], 1).await;
    assert_eq!(
        send_json(&router.webhook("retired"), r#"{"n":1}"#).await,
        404
    );

    // v3 names a sink that does not exist: refused, and v2 keeps serving.
    let v3 = v2.replace("sinks = [\"third\"]", "sinks = [\"nowhere\"]");
    std::fs::write(dir.join("router.toml"), &v3).unwrap();
    router.signal(Signal::SIGHUP);
    wait_for_sample(admin, REFUSED, 1.0).await;
    assert_eq!(sample(admin, APPLIED).await, 1.0);
    let logs = router
        .logs_when(|logs| logs.contains("Configuration reload refused"))
        .await;
    let refusal = logs
        .lines()
        .find(|l| l.contains("Configuration reload refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{logs}"));
    assert!(
        refusal.contains("sources.direct.sinks[0]") && refusal.contains("a sink defined"),
        "the refusal names the key and what it expects: {refusal}"
    );
    assert_eq!(
        send_json(&router.webhook("direct"), r#"{"hello":2}"#).await,
        200
    );
    wait_for_lines(dir, &["third/direct.jsonl"], 2).await;
    assert_eq!(send_json(&orders, r#"{"type":"alert","n":2}"#).await, 200);
    wait_for_lines(dir, &["second/orders.jsonl"], 2).await;

    // The plugin ran for every event, measured; the file watcher follows
    // the plugin the reload rebuilt (its config changed).
    let runs = (sent + 2) as f64;
    for series in [
        r#"hookyard_plugin_duration_seconds_count{plugin="router"}"#,
        r#"hookyard_plugin_fuel_count{plugin="router"}"#,
    ] {
        assert!(sample(admin, series).await >= runs, "{series} < {runs}");
    }
    let swapped = plugins::version_bytes(&base, 1);
    std::fs::write(&wasm, &swapped).unwrap();
    wait_for_sample(
        admin,
        r#"hookyard_plugin_reloads_total{plugin="router",outcome="swapped"}"#,
        1.0,
    )
    .await;
    let version = format!("sha256:{}", hex::encode(Sha256::digest(&swapped)));
    let shown = plugin_shown(admin).await;
    assert_eq!(
        (
            &shown["version"],
            &shown["reloads"],
            &shown["last_reload_error"]
        ),
        (
            &serde_json::json!(version),
            &serde_json::json!(1),
            &serde_json::Value::Null
        ),
        "{shown}"
    );

    // A broken file asked for through the API: refused with the reason,
    // kept as the last reload error; the serving version stays.
    std::fs::write(&wasm, b"not a component").unwrap();
    let refused = client()
        .post(format!(
            "http://127.0.0.1:{admin}/api/plugins/router/reload"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let shown = plugin_shown(admin).await;
    assert_eq!(shown["version"], version.as_str(), "{shown}");
    assert!(
        shown["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("plugins/router.wasm")),
        "{shown}"
    );
}

/// Plugin `router` as `GET /api/plugins` shows it.
async fn plugin_shown(admin: u16) -> serde_json::Value {
    let list: serde_json::Value = client()
        .get(format!("http://127.0.0.1:{admin}/api/plugins"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let router = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "router")
        .cloned();
    router.unwrap_or_else(|| panic!("no plugin router in {list}"))
}

/// The harness's preset sources plus an admin listener, `raw` to a file
/// sink, and `extra_server` in `[server]`.
fn presets(dir: &Path, admin: u16, extra_server: &str, extra: &str) -> String {
    let server = format!(
        "{extra_server}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{TOKEN}\"\n\n[delivery]\npoll_ms = 50\n"
    );
    format!(
        "{}\n[sources.raw]\nverify = \"none\"\nsinks = [\"archive\"]\n\n[sinks.archive]\ntype = \"file\"\npath = \"archive/{{source}}.jsonl\"\n{extra}",
        config_toml(&sqlite_url(dir), &server)
    )
}

async fn reload(admin: u16) -> (reqwest::StatusCode, serde_json::Value) {
    let answer = client()
        .post(format!("http://127.0.0.1:{admin}/api/config/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

async fn github(router: &InProcess, secret: &str) -> reqwest::StatusCode {
    let body = br#"{"zen":"reload"}"#;
    let delivery = ulid::Ulid::new().to_string();
    post(
        &router.webhook("github"),
        &sign::github(secret, &delivery, body),
        body,
    )
    .await
    .status()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_reload_rotates_a_secret_reports_what_waits_for_a_restart_and_refuses_bad_files(
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let admin = free_port();
    let router = InProcess::start_with(dir, &presets(dir, admin, "", "")).await;
    admin_up(admin).await;
    assert_eq!(github(&router, secrets::GITHUB).await, 200);

    // A rotated GitHub secret applies at once; a smaller body limit
    // (`[server]`) waits for a restart and is reported so.
    let rotated = "brand-new-github-secret";
    let v2 = presets(dir, admin, "", "")
        .replace(
            &format!(
                "secrets = [\"old-rotated-secret\", \"{}\"]",
                secrets::GITHUB
            ),
            &format!("secrets = [\"{rotated}\"]"),
        )
        .replace("max_body_bytes = 65536", "max_body_bytes = 1024");
    assert_ne!(v2, presets(dir, admin, "", ""), "the edit applies");
    std::fs::write(dir.join("router.toml"), &v2).unwrap();
    let (status, answer) = reload(admin).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "applied");
    let applied = &answer["applied"];
    assert_eq!(applied["sources"]["changed"], serde_json::json!(["github"]));
    assert_eq!(applied["sources"]["added"], serde_json::json!([]));
    assert_eq!(applied["sinks"]["changed"], serde_json::json!([]));
    assert_eq!(applied["restart_required"], serde_json::json!(["server"]));
    assert!(
        !answer.to_string().contains(rotated),
        "no secret in the answer"
    );
    assert_eq!(github(&router, secrets::GITHUB).await, 401, "old secret");
    assert_eq!(github(&router, rotated).await, 200, "new secret");
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    assert_eq!(
        send_json(&router.webhook("raw"), &big).await,
        200,
        "the running body limit stays until a restart"
    );

    // Not TOML: refused with the parser's reason; the rotation stays.
    std::fs::write(dir.join("router.toml"), "[server\n").unwrap();
    let (status, answer) = reload(admin).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "config_refused");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("not valid TOML"), "{message}");

    // A plugin larger than the engine sized at start: refused, naming the key.
    let plugin = format!(
        "\n[plugins.big]\nwasm = \"{}\"\nmemory_mb = 128\n",
        plugins::wasm("json-router").display()
    );
    std::fs::write(dir.join("router.toml"), v2.clone() + &plugin).unwrap();
    let (status, answer) = reload(admin).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("plugins.big.memory_mb") && message.contains("restart"),
        "{message}"
    );
    assert_eq!(github(&router, rotated).await, 200, "v2 still serves");
    assert_eq!(github(&router, secrets::GITHUB).await, 401);
    assert_eq!(sample(admin, APPLIED).await, 1.0);
    assert_eq!(sample(admin, REFUSED).await, 2.0);

    // The same file again reports that it waits for a restart, and nothing else.
    std::fs::write(dir.join("router.toml"), &v2).unwrap();
    let (status, answer) = reload(admin).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["applied"]["sources"]["changed"],
        serde_json::json!([])
    );
    assert_eq!(
        answer["applied"]["restart_required"],
        serde_json::json!(["server"])
    );
    router.stop().await.unwrap();
}
