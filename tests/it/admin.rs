//! The admin listener end to end: health open, every other route behind
//! the bearer token, metrics that move with real traffic and never carry a
//! secret, and backpressure that refuses webhooks past `server.max_backlog`
//! and recovers by itself once the backlog drains.

use std::time::{Duration, Instant};

use hookyard::store::HeaderValueRepr;
use hookyard_tests::admin::{self, admin_up, sample, scrape};
use hookyard_tests::receiver::{free_port, Receiver, Script};
use hookyard_tests::services::{drop_database, fresh_postgres, postgres_admin};
use hookyard_tests::{client, config_toml, sign, sqlite_url, InProcess};

const TOKEN: &str = "admin-token-for-the-tests-0123456789";

/// The preset sources, plus `raw` (no verification) to `sinks`, the sinks
/// in `sinks_toml`, an admin listener on `admin_port` and `max_backlog`.
fn config(
    dir: &std::path::Path,
    admin_port: u16,
    max_backlog: u64,
    sinks_toml: &str,
    sinks: &str,
) -> String {
    let server = format!(
        "max_backlog = {max_backlog}\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken = \"{TOKEN}\"\n\n[delivery]\npoll_ms = 50\nlease_s = 5\n"
    );
    format!(
        "{}\n[sources.raw]\nverify = \"none\"\nsinks = [{sinks}]\n{sinks_toml}",
        config_toml(&sqlite_url(dir), &server)
    )
}

/// A file sink, `archive`.
const ARCHIVE: &str = "[sinks.archive]\ntype = \"file\"\npath = \"archive/{source}.jsonl\"\n";

/// A router in `dir` routing `raw` to a file sink, its admin listener up;
/// returns the admin port and the router.
async fn with_archive(dir: &std::path::Path) -> (u16, InProcess) {
    let port = free_port();
    let router =
        InProcess::start_with(dir, &config(dir, port, 1_000, ARCHIVE, "\"archive\"")).await;
    admin_up(port).await;
    (port, router)
}

/// Scrapes until `series` reaches `at_least`, within 20 s.
async fn wait_for_sample(port: u16, series: &str, at_least: f64) -> String {
    admin::wait_for_sample(port, TOKEN, series, at_least, Duration::from_secs(20)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_open_the_rest_needs_the_token_and_the_metrics_move() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, router) = with_archive(tmp.path()).await;
    let health = admin_up(port).await;
    assert_eq!(health.status(), 200);
    let ready = client()
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["store"], "ok");

    let none = scrape(port, None).await;
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(
        scrape(port, Some("admin-token-for-the-tests-0123456780"))
            .await
            .status(),
        401
    );
    let before = scrape(port, Some(TOKEN)).await;
    assert_eq!(before.status(), 200);
    let before = before.text().await.unwrap();

    let ok = r#"hookyard_requests_total{source="raw",status="200",code="ok"}"#;
    let forged =
        r#"hookyard_verification_failures_total{source="github",reason="invalid_signature"}"#;
    let dispatched = r#"hookyard_events_dispatched_total{plugin="-",outcome="processed"}"#;
    let delivered = r#"hookyard_deliveries_total{sink="archive",outcome="delivered"}"#;
    assert_eq!(sample(&before, ok), 0.0);
    assert_eq!(sample(&before, delivered), 0.0);

    for i in 0..3 {
        let answer = client()
            .post(router.webhook("raw"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let body = br#"{"zen":"forged"}"#;
    let headers = sign::github("not-the-configured-secret", "forged-1", body);
    let refused = hookyard_tests::post(&router.webhook("github"), &headers, body).await;
    assert_eq!(refused.status(), 401);

    let after = wait_for_sample(port, delivered, 3.0).await;
    assert_eq!(sample(&after, ok), 3.0);
    assert_eq!(sample(&after, forged), 1.0);
    assert_eq!(sample(&after, dispatched), 3.0);
    assert_eq!(
        sample(
            &after,
            r#"hookyard_delivery_attempts_total{sink="archive"}"#
        ),
        3.0
    );
    assert!(
        sample(
            &after,
            r#"hookyard_ack_latency_seconds_count{source="raw"}"#
        ) >= 3.0
    );
    assert!(after.contains("hookyard_backlog_pending_deliveries"));
    for secret in [
        TOKEN,
        hookyard_tests::secrets::GITHUB,
        hookyard_tests::secrets::STRIPE,
    ] {
        assert!(!after.contains(secret), "a secret reached /metrics");
    }
    router.stop().await.unwrap();
}

/// `/readyz` until it answers `status`; returns its body.
async fn readyz_until(port: u16, status: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = client()
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .unwrap();
        if answer.status() == status {
            return answer.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "/readyz never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_is_503_while_the_store_refuses_connections_and_200_once_it_is_back() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    let database = url.rsplit('/').next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config(tmp.path(), port, 1_000, ARCHIVE, "\"archive\"")
        .replace(&sqlite_url(tmp.path()), &url);
    let router = InProcess::start_with(tmp.path(), &text).await;
    admin_up(port).await;
    assert_eq!(readyz_until(port, 200).await["store"], "ok");

    postgres_admin(&[
        &format!("ALTER DATABASE {database} ALLOW_CONNECTIONS false"),
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
        ),
    ])
    .await;
    let down = readyz_until(port, 503).await;
    assert_eq!(down["status"], "not_ready", "{down}");
    assert!(down["store"]["error"].is_string(), "{down}");
    assert_eq!(
        client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the process is up all along"
    );

    postgres_admin(&[&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true")]).await;
    assert_eq!(readyz_until(port, 200).await["status"], "ready");
    router.stop().await.unwrap();
    drop_database(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_backlog_webhooks_get_503_until_the_backlog_drains() {
    let tmp = tempfile::tempdir().unwrap();
    let (admin_port, sink_port) = (free_port(), free_port());
    let down = format!(
        "[sinks.down]\ntype = \"http\"\nurl = \"http://127.0.0.1:{sink_port}/hook\"\ntimeout_ms = 1000\nretry = {{ attempts = 100, base_ms = 50, cap_ms = 200 }}\n"
    );
    let router = InProcess::start_with(
        tmp.path(),
        &config(tmp.path(), admin_port, 3, &down, "\"down\""),
    )
    .await;
    let post = |i: usize| {
        let url = router.webhook("raw");
        async move {
            client()
                .post(url)
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap()
        }
    };
    // The backlog can pass 3 only once the fourth is stored.
    for i in 0..4 {
        assert_eq!(post(i).await.status(), 200, "under the limit");
    }
    // The backlog is counted every second: within a few, new webhooks are refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 4;
    let refused = loop {
        let answer = post(i).await;
        i += 1;
        if answer.status() == 503 {
            break answer;
        }
        assert_eq!(answer.status(), 200);
        assert!(Instant::now() < deadline, "never refused past max_backlog");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "30");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "backlog_full");
    let accepted = i - 1;

    // The sink comes back, the backlog drains, and webhooks are taken again.
    let receiver = Receiver::start_on(sink_port, Script::default()).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = post(i).await;
        if answer.status() == 200 {
            break;
        }
        assert_eq!(answer.status(), 503);
        assert!(
            Instant::now() < deadline,
            "never recovered after the backlog drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Everything accepted before the refusal was delivered, nothing lost.
    let delivered = receiver
        .wait_for(accepted + 1, Duration::from_secs(30))
        .await;
    assert_eq!(delivered.len(), accepted + 1);
    router.stop().await.unwrap();
    receiver.stop().await;
}

async fn api(port: u16, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
    let answer = client()
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    (
        status,
        answer.json().await.unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_shows_an_event_replays_it_and_sends_dead_letters_again() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    // 400 is permanent: every delivery is dead after one attempt.
    let receiver = Receiver::start(Script {
        status: 400,
        ..Script::default()
    })
    .await;
    let addr = receiver
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_string();
    let refuser = format!(
        "[sinks.refuser]\ntype = \"http\"\nurl = \"http://user:sink-password@{}/hook?token=query-secret\"\nheaders = {{ Authorization = \"Bearer header-secret\" }}\n",
        addr
    );
    let router = InProcess::start_with(
        tmp.path(),
        &config(tmp.path(), port, 1_000, &refuser, "\"refuser\""),
    )
    .await;
    admin_up(port).await;
    let stored: serde_json::Value = client()
        .post(router.webhook("raw"))
        .body(r#"{"order":1}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event_id = stored["id"].as_str().unwrap().to_string();
    let (status, page) = api(port, reqwest::Method::GET, "/api/events?source=raw&limit=1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"][0]["id"], event_id.as_str());
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a full page has a cursor")
        .to_string();
    let (_, rest) = api(
        port,
        reqwest::Method::GET,
        &format!("/api/events?source=raw&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["events"], serde_json::json!([]));
    assert_eq!(rest["next_cursor"], serde_json::Value::Null);
    let (status, _) = api(
        port,
        reqwest::Method::GET,
        "/api/events?since=yesterday-ish",
    )
    .await;
    assert_eq!(status, 400);
    wait_for_sample(
        port,
        r#"hookyard_deliveries_total{sink="refuser",outcome="dead"}"#,
        1.0,
    )
    .await;

    let (status, event) = api(
        port,
        reqwest::Method::GET,
        &format!("/api/events/{event_id}"),
    )
    .await;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["source"], "raw");
    assert_eq!(event["status"], "processed");
    assert_eq!(event["request"]["body"]["data"], r#"{"order":1}"#);
    let delivery = &event["deliveries"][0];
    assert_eq!(delivery["status"], "dead");
    assert_eq!(delivery["failed_attempts"][0]["outcome"], "dead");
    let delivery_id = delivery["id"].as_str().unwrap().to_string();

    let (status, dead) = api(
        port,
        reqwest::Method::GET,
        "/api/deliveries?status=dead&sink=refuser",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(dead["deliveries"][0]["id"], delivery_id.as_str());
    let (_, sinks) = api(port, reqwest::Method::GET, "/api/sinks").await;
    assert_eq!(
        (
            &sinks["sinks"][0]["name"],
            &sinks["sinks"][0]["pending"],
            &sinks["sinks"][0]["dead"]
        ),
        (
            &serde_json::json!("refuser"),
            &serde_json::json!(0),
            &serde_json::json!(1)
        ),
        "{sinks}"
    );
    assert_eq!(sinks["not_configured"], serde_json::json!([]));
    let (status, _) = api(port, reqwest::Method::GET, "/api/deliveries?status=pending").await;
    assert_eq!(status, 400);

    // A dead letter goes again with its key; a second retry finds it not dead.
    let path = format!("/api/deliveries/{delivery_id}/retry");
    assert_eq!(api(port, reqwest::Method::POST, &path).await.0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver
        .received()
        .iter()
        .filter(|r| r.key == delivery_id)
        .count()
        < 2
    {
        if Instant::now() > deadline {
            let keys: Vec<String> = receiver.received().iter().map(|r| r.key.clone()).collect();
            let (_, event) = api(
                port,
                reqwest::Method::GET,
                &format!("/api/events/{event_id}"),
            )
            .await;
            panic!("the retried dead letter {delivery_id} was not sent again: received {keys:?}; {event}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, missing) = api(
        port,
        reqwest::Method::POST,
        "/api/deliveries/dlv_nothing/retry",
    )
    .await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // A replay runs the event again into a new delivery (a new key).
    let path = format!("/api/events/{event_id}/replay");
    assert_eq!(api(port, reqwest::Method::POST, &path).await.0, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, event) = api(
            port,
            reqwest::Method::GET,
            &format!("/api/events/{event_id}"),
        )
        .await;
        if event["deliveries"].as_array().map_or(0, Vec::len) == 2 && event["status"] == "processed"
        {
            assert_ne!(event["deliveries"][1]["id"], delivery_id.as_str());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replay made no new delivery: {event}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, bulk) = api(port, reqwest::Method::POST, "/api/replay").await;
    assert_eq!(
        (status, bulk["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let bulk = client()
        .post(format!("http://127.0.0.1:{port}/api/replay"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({ "source": "raw", "since": "1h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status(), 202);
    let bulk: serde_json::Value = bulk.json().await.unwrap();
    assert!(bulk["queued"].as_u64().unwrap() <= 1);

    // The CLI does the same through the API when given its URL.
    let admin_url = format!("http://127.0.0.1:{port}");
    let listed = cli(
        tmp.path(),
        TOKEN,
        &["dlq", "list", "--json", "--admin-url", &admin_url],
    )
    .await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&delivery_id), "{listed}");
    let retried = cli(
        tmp.path(),
        TOKEN,
        &[
            "dlq",
            "retry",
            "--all",
            "--sink",
            "refuser",
            "--admin-url",
            &admin_url,
        ],
    )
    .await;
    let retried = String::from_utf8(retried.stdout).unwrap();
    assert!(retried.starts_with("queued "), "{retried}");
    let missing = cli(
        tmp.path(),
        TOKEN,
        &["replay", "evt_missing", "--admin-url", &admin_url],
    )
    .await;
    assert!(!missing.status.success());
    let why = String::from_utf8(missing.stderr).unwrap();
    assert!(
        why.contains("404") && why.contains("no such event"),
        "{why}"
    );

    // Configuration is shown without any secret.
    let (_, sinks) = api(port, reqwest::Method::GET, "/api/sinks").await;
    let refuser = sinks["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "refuser")
        .unwrap();
    assert_eq!(refuser["type"], "http");
    assert_eq!(refuser["target"]["url"], format!("http://{addr}/hook"));
    let (_, sources) = api(port, reqwest::Method::GET, "/api/sources").await;
    let raw = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "raw")
        .unwrap();
    assert_eq!(raw["route"]["sinks"][0], "refuser");
    let (_, plugins) = api(port, reqwest::Method::GET, "/api/plugins").await;
    assert_eq!(plugins["plugins"], serde_json::json!([]));
    let shown = format!("{sinks}{sources}{plugins}");
    for secret in [
        "sink-password",
        "query-secret",
        "header-secret",
        hookyard_tests::secrets::GITHUB,
    ] {
        assert!(!shown.contains(secret), "{secret} reached the admin API");
    }
    // Every /api route needs the token.
    let anonymous = client()
        .get(format!("http://127.0.0.1:{port}/api/sinks"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    router.stop().await.unwrap();
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_in_the_openapi_document_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, router) = with_archive(tmp.path()).await;
    let (status, doc) = api(port, reqwest::Method::GET, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "{paths:?}");
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path.replace("{id}", "evt_none").replace("{name}", "none");
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let answer = client()
                .request(method.clone(), format!("http://127.0.0.1:{port}{concrete}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let body = answer.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !body.contains("no_such_route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let (status, missing) = api(port, reqwest::Method::GET, "/api/nothing").await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("no_such_route"))
    );
    router.stop().await.unwrap();
}

/// Runs the `hookyard` binary on the router's config with `token` as
/// the admin token (off the async threads: the router runs on them).
async fn cli(dir: &std::path::Path, token: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(hookyard_tests::process::bin());
    command
        .arg("--config")
        .arg(dir.join("router.toml"))
        .args(args)
        .env("HOOKYARD_ADMIN_TOKEN", token)
        .env_remove("HOOKYARD_ADMIN_URL");
    tokio::task::spawn_blocking(move || command.output().expect("run hookyard"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_list_and_show_read_the_admin_api_as_tables_or_json() {
    let tmp = tempfile::tempdir().unwrap();
    let (port, router) = with_archive(tmp.path()).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let stored: serde_json::Value = client()
            .post(router.webhook("raw"))
            .body(format!("{{\"n\":{n}}}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(stored["id"].as_str().unwrap().to_string());
    }
    let out = cli(
        tmp.path(),
        TOKEN,
        &[
            "events", "list", "--source", "raw", "--limit", "2", "--json",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(page["events"][0]["id"], ids[2].as_str());
    assert_eq!(page["events"][1]["id"], ids[1].as_str());
    assert_eq!(page["next_cursor"], ids[1].as_str());

    let out = cli(tmp.path(), TOKEN, &["events", "list", "--source", "raw"]).await;
    let table = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("SOURCE") && lines[0].contains("STATUS"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "a header and three events:\n{table}");
    assert!(
        lines[1].starts_with(&ids[2]) && lines[1].contains("raw"),
        "{table}"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while api(
        port,
        reqwest::Method::GET,
        &format!("/api/events/{}", ids[0]),
    )
    .await
    .1["status"]
        != "processed"
    {
        assert!(Instant::now() < deadline, "never dispatched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = cli(tmp.path(), TOKEN, &["events", "show", &ids[0]]).await;
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(
        shown.contains(&ids[0]) && shown.contains(r#"{"n":0}"#),
        "{shown}"
    );
    assert!(
        shown.contains("archive"),
        "the delivery is listed:\n{shown}"
    );

    let out = cli(tmp.path(), "wrong-token-wrong-token", &["events", "list"]).await;
    assert!(!out.status.success());
    let error = String::from_utf8(out.stderr).unwrap();
    assert!(
        error.contains("401") && error.contains("HOOKYARD_ADMIN_TOKEN"),
        "{error}"
    );
    router.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn send_signs_like_the_provider_and_the_router_accepts_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let text = config_toml(&sqlite_url(tmp.path()), "")
        + "\n[sources.gitlab]\nverify = \"gitlab\"\nsecrets = [\"test-gitlab-token\"]\n";
    let router = InProcess::start_with(tmp.path(), &text).await;
    let body = tmp.path().join("push.json");
    std::fs::write(&body, br#"{"zen":"sent from the CLI"}"#).unwrap();
    let (body, url) = (body.to_str().unwrap(), router.webhook("github"));
    let send = [
        "send",
        "github",
        "--body-file",
        body,
        "--id",
        "cli-send-1",
        "--url",
        &url,
    ];
    let first = cli(tmp.path(), TOKEN, &send).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = String::from_utf8(first.stdout).unwrap();
    assert!(
        first.starts_with("200 ") && first.contains("\"duplicate\":false"),
        "{first}"
    );
    // The same delivery id again is the provider retrying: a duplicate.
    let again = String::from_utf8(cli(tmp.path(), TOKEN, &send).await.stdout).unwrap();
    assert!(again.contains("\"duplicate\":true"), "{again}");
    let store = hookyard_tests::open_store(&sqlite_url(tmp.path())).await;
    let stored = store
        .find_event_by_key("github", "cli-send-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.body, br#"{"zen":"sent from the CLI"}"#);
    assert_eq!(stored.verification, "github");
    let event_type = |event: &hookyard::store::StoredEvent| {
        event
            .headers
            .iter()
            .find(|(name, _)| name == "x-github-event")
            .map(|(_, value)| value.clone())
    };
    assert_eq!(
        event_type(&stored),
        Some(HeaderValueRepr::Text("ping".into()))
    );

    // --header replaces what the signer set: the same body as a push.
    let push = [
        "send",
        "github",
        "--body-file",
        body,
        "--id",
        "cli-send-2",
        "--url",
        &url,
        "--header",
        "X-GitHub-Event: push",
    ];
    let pushed = cli(tmp.path(), TOKEN, &push).await;
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let stored = store
        .find_event_by_key("github", "cli-send-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event_type(&stored),
        Some(HeaderValueRepr::Text("push".into()))
    );
    let malformed = cli(
        tmp.path(),
        TOKEN,
        &[
            "send",
            "github",
            "--body-file",
            body,
            "--header",
            "X-GitHub-Event push",
        ],
    )
    .await;
    assert!(!malformed.status.success());
    assert!(
        String::from_utf8_lossy(&malformed.stderr).contains("is not `NAME: VALUE`"),
        "{}",
        String::from_utf8_lossy(&malformed.stderr)
    );

    // The generic HMAC preset signs with its configured header, algorithm,
    // encoding and prefix, and its id header.
    let acme = router.webhook("acme");
    let sent = cli(
        tmp.path(),
        TOKEN,
        &[
            "send",
            "acme",
            "--body-file",
            body,
            "--id",
            "acme-1",
            "--url",
            &acme,
        ],
    )
    .await;
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert!(store
        .find_event_by_key("acme", "acme-1")
        .await
        .unwrap()
        .is_some());

    // A preset it cannot sign for (the router holds only the token's digest) says so.
    let refused = cli(
        tmp.path(),
        TOKEN,
        &["send", "gitlab", "--body-file", "/dev/null"],
    )
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot sign for preset `gitlab`"));
    router.stop().await.unwrap();
}
