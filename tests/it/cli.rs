//! `hookyard check` and the per-request log line, through the real binary.

use std::process::Command;

use hookyard_tests::process::bin;
use hookyard_tests::sign::{self, with_headers};
use hookyard_tests::{client, config_toml, secrets, sqlite_url, Router};

#[test]
fn check_accepts_a_good_config_and_names_file_and_key_for_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_toml(&sqlite_url(dir.path()), "")).unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[sources.github]\nverify = \"github\"\nsecret = [\"x\"]\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("sources.github"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `secret`"), "{stderr}");
}

#[test]
fn the_shipped_router_toml_checks_clean() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(bin())
        .args(["check", "--config", "router.toml"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn one_log_line_per_request_and_no_secrets_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::start(
        dir.path(),
        &config_toml(&sqlite_url(dir.path()), ""),
        &["--log-format", "json"],
    );
    let body = br#"{"hello":"logs"}"#;
    let good = sign::github(secrets::GITHUB, "log-1", body);
    let resp = with_headers(client().post(router.webhook("github")), &good)
        .header("X-Request-Id", "trace-0123")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-0123", "echoed back");
    let ack: serde_json::Value = resp.json().await.unwrap();
    let bad = sign::github("wrong-secret", "log-2", body);
    let resp = with_headers(client().post(router.webhook("github")), &bad)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(generated.starts_with("req_"), "{generated}");

    // The non-blocking writer flushes within moments.
    let logs = router
        .logs_when(|logs| logs.matches("\"source\":\"github\"").count() >= 2)
        .await;
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let acked = lines
        .iter()
        .find(|l| l["event_id"] == ack["id"])
        .unwrap_or_else(|| panic!("no line for the event:\n{logs}"));
    assert_eq!(acked["source"], "github");
    assert_eq!(acked["status"], 200);
    assert_eq!(acked["duplicate"], false);
    assert_eq!(acked["request_id"], "trace-0123");
    assert!(acked["latency_us"].is_u64());
    let refused = lines
        .iter()
        .find(|l| l["status"] == 401)
        .expect("a line for the 401");
    assert_eq!(refused["code"], "invalid_signature");
    assert_eq!(refused["request_id"], generated.as_str());
    for secret in [secrets::GITHUB, "wrong-secret", &good[0].1, &bad[0].1] {
        assert!(!logs.contains(secret), "logs contain a secret or signature");
    }
}

#[tokio::test]
async fn start_warns_for_each_source_on_a_development_default_secret() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"{}\"\n\
         [sources.ondefault]\nverify = \"github\"\nsecrets = [\"${{HOOKYARD_IT_UNSET_SECRET:-dev-only}}\"]\n\
         [sources.configured]\nverify = \"github\"\nsecrets = [\"literal-secret\"]\n",
        sqlite_url(dir.path())
    );
    let router = Router::start(dir.path(), &text, &["--log-format", "json"]);
    let logs = router
        .logs_when(|logs| logs.contains("development default"))
        .await;
    let warnings: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("development default")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(warnings[0]["source"], "ondefault");
    assert!(
        !logs.contains("dev-only") && !logs.contains("literal-secret"),
        "{logs}"
    );
}

/// The help text people read first, reviewed as a snapshot.
#[test]
fn help_text() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["check", "--help"],
        &["plugin", "run", "--help"],
        &["replay", "--help"],
        &["dlq", "list", "--help"],
        &["dlq", "retry", "--help"],
        &["events", "list", "--help"],
        &["events", "show", "--help"],
        &["send", "--help"],
    ] {
        let out = Command::new(bin()).args(args).output().unwrap();
        assert!(out.status.success());
        let name = format!("help_{}", args.join("_").replace("--", ""));
        insta::assert_snapshot!(name, String::from_utf8_lossy(&out.stdout));
    }
}
