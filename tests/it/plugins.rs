//! Plugins run by the host runtime: the example GitHub router built from
//! source, routing by event type and repository from its config.

use std::collections::BTreeMap;

use hookyard::plugin::{Limits, PluginEvent, PluginOutput, RunError, Runtime};

fn event(kind: &str, body: &str) -> PluginEvent {
    PluginEvent {
        id: "evt_01TEST".into(),
        source: "github".into(),
        received_at: 1_700_000_000_000,
        method: "POST".into(),
        path: "/webhooks/github".into(),
        headers: vec![
            ("x-github-event".into(), kind.into()),
            ("x-github-delivery".into(), "d-123".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn the_github_router_routes_by_type_and_repository() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("github-router")).unwrap();
    let plugin = runtime
        .load(&wasm)
        .expect("a component of the plugin world");
    assert!(plugin.version.starts_with("sha256:"));
    let config: BTreeMap<String, String> = [
        ("repos", "acme/api,acme/web"),
        ("route_push", "archive"),
        ("route_issues", "ops"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect();
    let run =
        |e: &PluginEvent| runtime.run("github-router", &plugin, &config, Limits::default(), e);

    let push = r#"{"ref":"main","repository":{"id":1,"full_name":"acme/api"}}"#;
    assert_eq!(
        run(&event("push", push)).unwrap(),
        vec![PluginOutput::Deliver {
            sink: "archive".into(),
            payload: Some(push.into()),
            payload_base64: None,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-github-event".into(), "push".into())
            ],
            subject_suffix: Some("push".into()),
            key: Some("d-123".into()),
        }]
    );
    let other_repo = r#"{"repository":{"full_name":"evil/repo"}}"#;
    assert!(matches!(
        run(&event("push", other_repo)).unwrap()[..],
        [PluginOutput::Drop { .. }]
    ));
    assert!(matches!(
        run(&event("star", push)).unwrap()[..],
        [PluginOutput::Drop { .. }]
    ));
    let mut no_kind = event("push", push);
    no_kind.headers.clear();
    assert!(matches!(run(&no_kind), Err(RunError::InvalidInput(_))));
}

/// Each limit, broken by the fixture plugin, fails only that call with a
/// reason naming the limit; the next call on the same runtime works.
#[test]
fn every_limit_fails_only_its_call_with_a_reason() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let plugin = runtime.load(&wasm).unwrap();
    let run = |mode: &str, limits: Limits| {
        let config: BTreeMap<String, String> = [
            ("mode".to_string(), mode.to_string()),
            ("bytes".into(), "2000".into()),
        ]
        .into();
        runtime.run(
            "limits-fixture",
            &plugin,
            &config,
            limits,
            &event("push", "{}"),
        )
    };
    let small = Limits {
        fuel: 5_000_000,
        timeout: std::time::Duration::from_millis(2_000),
        memory_bytes: 16 << 20,
        max_output_bytes: 1_000,
    };
    assert_eq!(
        run("spin", small),
        Err(RunError::OutOfFuel { fuel: 5_000_000 })
    );
    let unlimited_fuel = Limits {
        fuel: u64::MAX / 2,
        timeout: std::time::Duration::from_millis(50),
        ..small
    };
    let started = std::time::Instant::now();
    assert_eq!(
        run("spin", unlimited_fuel),
        Err(RunError::Deadline { timeout_ms: 50 })
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "stopped near the deadline"
    );
    let roomy_fuel = Limits {
        fuel: u64::MAX / 2,
        ..small
    };
    assert_eq!(
        run("grow", roomy_fuel),
        Err(RunError::Memory { memory_mb: 16 })
    );
    assert!(matches!(run("panic", small), Err(RunError::Trap(_))));
    assert_eq!(
        run("big", small),
        Err(RunError::OutputTooLarge {
            bytes: 2003,
            limit: 1_000
        })
    );
    assert!(matches!(run("error", small), Err(RunError::Internal(_))));
    assert_eq!(run("none", small), Err(RunError::NoAction));
    // The runtime is unaffected: a well-behaved call still works.
    let ok = run("echo", small).unwrap();
    assert!(matches!(&ok[..], [PluginOutput::Deliver { sink, .. }] if sink == "out"));
}

/// `hookyard plugin run` prints the actions as JSON without a router or a
/// router.toml, from an event file or a raw body.
#[test]
fn plugin_run_prints_actions_offline() {
    use std::process::Command;

    let wasm = hookyard_tests::plugins::wasm("github-router");
    let dir = tempfile::tempdir().unwrap();
    let event_file = dir.path().join("push.json");
    std::fs::write(
        &event_file,
        r#"{"headers": {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-9"},
            "body": "{\"repository\":{\"full_name\":\"acme/api\"}}"}"#,
    )
    .unwrap();
    let out = Command::new(hookyard_tests::process::bin())
        .current_dir(dir.path()) // no router.toml here: none is needed
        .args(["plugin", "run"])
        .arg(&wasm)
        .arg("--event")
        .arg(&event_file)
        .args(["--set", "route_push=archive", "--set", "repos=acme/api"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["plugin_version"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(json["actions"][0]["action"], "deliver");
    assert_eq!(json["actions"][0]["sink"], "archive");
    assert_eq!(json["actions"][0]["key"], "d-9");

    // A raw body without the event header: the plugin's error, exit 1.
    let raw = dir.path().join("body.json");
    std::fs::write(&raw, r#"{"repository":{"full_name":"acme/api"}}"#).unwrap();
    let out = Command::new(hookyard_tests::process::bin())
        .current_dir(dir.path())
        .args(["plugin", "run"])
        .arg(&wasm)
        .arg("--event")
        .arg(&raw)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["error"].as_str().unwrap().contains("X-GitHub-Event"),
        "{json}"
    );
}
