//! Plugins run by the host runtime: the example GitHub router built from
//! source, routing by event type and repository from its config; the limits
//! fixture breaking each limit; the warm pool, the instance pool and the
//! on-disk cache of compiled plugins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hookyard::plugin::{
    Call, Limits, LoadedPlugin, PluginAction, PluginEvent, PluginOutput, RunError, Runtime,
    RuntimeOptions,
};

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
/// reason naming the limit; the next call on the same runtime works. The
/// same holds for a plugin with a warm pool, whose failed instances are
/// dropped.
#[test]
fn every_limit_fails_only_its_call_with_a_reason() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let fresh = runtime.load(&wasm).unwrap();
    for plugin in [fresh.clone(), fresh.with_warm_pool(2)] {
        every_limit_on(&runtime, &plugin);
    }
}

fn every_limit_on(runtime: &Runtime, plugin: &LoadedPlugin) {
    let run = |mode: &str, limits: Limits| {
        let config: BTreeMap<String, String> = [
            ("mode".to_string(), mode.to_string()),
            ("bytes".into(), "2000".into()),
        ]
        .into();
        runtime.run(
            "limits-fixture",
            plugin,
            &config,
            limits,
            &event("push", "{}"),
        )
    };
    let small = Limits {
        fuel: 5_000_000,
        timeout: Duration::from_millis(2_000),
        memory_bytes: 16 << 20,
        max_output_bytes: 1_000,
    };
    // Warm up the pool (if any), so the failures below hit reused instances.
    assert!(run("echo", small).is_ok());
    assert_eq!(
        run("spin", small),
        Err(RunError::OutOfFuel { fuel: 5_000_000 })
    );
    let unlimited_fuel = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_millis(50),
        ..small
    };
    let started = std::time::Instant::now();
    assert_eq!(
        run("spin", unlimited_fuel),
        Err(RunError::Deadline { timeout_ms: 50 })
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
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

/// Calls `plugin` (the limits fixture) in `mode` with room to spare.
fn fixture_call(runtime: &Runtime, plugin: &LoadedPlugin, mode: &str, fuel: u64) -> Call {
    let config = Arc::new(BTreeMap::from([("mode".to_string(), mode.to_string())]));
    let limits = Limits {
        fuel,
        ..Limits::default()
    };
    runtime.call(
        "limits-fixture",
        plugin,
        &config,
        limits,
        &event("push", "{}"),
    )
}

/// The payload of the single delivery `call` returned.
fn payload(call: &Call) -> String {
    match call.result.as_deref() {
        Ok([PluginAction::Deliver(d)]) => String::from_utf8(d.payload.clone()).unwrap(),
        other => panic!("not one delivery: {other:?}"),
    }
}

/// A warm pool reuses an instance after a success, and never after a
/// failure: the call after a trap gets a fresh instance, and succeeds.
#[test]
fn a_trapped_warm_instance_is_never_reused() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let plugin = runtime.load(&wasm).unwrap().with_warm_pool(1);

    let first = fixture_call(&runtime, &plugin, "count", 10_000_000);
    assert!(!first.warm);
    assert_eq!(payload(&first), "1");
    assert_eq!(plugin.warm_idle(), 1);
    let second = fixture_call(&runtime, &plugin, "count", 10_000_000);
    assert!(second.warm, "served by the pooled instance");
    assert_eq!(payload(&second), "2", "the instance kept its memory");

    let spin = fixture_call(&runtime, &plugin, "spin", 1_000_000);
    assert!(spin.warm);
    assert_eq!(
        spin.result.err(),
        Some(RunError::OutOfFuel { fuel: 1_000_000 })
    );
    assert_eq!(plugin.warm_idle(), 0, "the trapped instance was dropped");

    let after = fixture_call(&runtime, &plugin, "count", 10_000_000);
    assert!(!after.warm, "a fresh instance");
    assert_eq!(payload(&after), "1");
    let echo = fixture_call(&runtime, &plugin, "echo", 10_000_000);
    assert!(echo.warm);
    assert_eq!(payload(&echo), "{}");
}

/// A reused instance reads the clock of the event it is handling, not of
/// the first event it handled.
#[test]
fn a_warm_instance_sees_each_event_s_clock() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let plugin = runtime.load(&wasm).unwrap().with_warm_pool(1);
    let config = Arc::new(BTreeMap::from([("mode".to_string(), "clock".to_string())]));
    let at = |received_at: u64| {
        let mut event = event("push", "{}");
        event.received_at = received_at;
        runtime.call(
            "limits-fixture",
            &plugin,
            &config,
            Limits::default(),
            &event,
        )
    };
    let first = at(1_700_000_000_000);
    assert!(!first.warm);
    assert_eq!(payload(&first), "1700000000000");
    let second = at(1_700_000_123_456);
    assert!(second.warm);
    assert_eq!(payload(&second), "1700000123456");
}

/// Fuel used is the same for the same event on fresh instances, and less
/// on a warm one (no instantiation to pay for).
#[test]
fn fuel_used_is_stable_and_counts_instantiation() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("github-router")).unwrap();
    let fresh = runtime.load(&wasm).unwrap();
    let warm = fresh.clone().with_warm_pool(1);
    let config = Arc::new(BTreeMap::from([
        ("repos".to_string(), "acme/api".to_string()),
        ("route_push".to_string(), "archive".to_string()),
    ]));
    let push = event(
        "push",
        r#"{"ref":"main","repository":{"id":1,"full_name":"acme/api"}}"#,
    );
    let call = |plugin: &LoadedPlugin| {
        let call = runtime.call("github-router", plugin, &config, Limits::default(), &push);
        assert!(call.result.is_ok(), "{:?}", call.result);
        call
    };
    let (a, b) = (call(&fresh), call(&fresh));
    assert!(a.fuel_used > 0);
    assert_eq!(a.fuel_used, b.fuel_used);
    assert!(!a.warm && !b.warm);

    let first = call(&warm);
    assert!(!first.warm);
    assert_eq!(first.fuel_used, a.fuel_used);
    let (c, d) = (call(&warm), call(&warm));
    assert!(c.warm && d.warm);
    assert!(c.fuel_used > 0 && c.fuel_used <= a.fuel_used);
    assert_eq!(c.fuel_used, d.fuel_used);
}

/// A call's memory cap above the pool's slot size is clamped to it, and
/// reported as such.
#[test]
fn the_memory_cap_is_clamped_to_the_slot_size() {
    let runtime = Runtime::with_options(RuntimeOptions {
        max_memory_bytes: 16 << 20,
        max_instances: 4,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let plugin = runtime.load(&wasm).unwrap();
    let config = BTreeMap::from([("mode".to_string(), "grow".to_string())]);
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout: Duration::from_secs(2),
        memory_bytes: 1 << 30,
        ..Limits::default()
    };
    assert_eq!(
        runtime.run(
            "limits-fixture",
            &plugin,
            &config,
            limits,
            &event("push", "{}")
        ),
        Err(RunError::Memory { memory_mb: 16 })
    );
}

/// When every slot of the pool is taken, a call fails with a clear,
/// retryable error instead of panicking or blocking, and the next call
/// after a slot frees works.
#[test]
fn a_full_pool_fails_the_call_until_a_slot_frees() {
    let runtime = Runtime::with_options(RuntimeOptions {
        max_instances: 1,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let cold = runtime.load(&wasm).unwrap();
    let warm = cold.clone().with_warm_pool(1);
    // The warm pool keeps the only slot once its call is done.
    assert!(fixture_call(&runtime, &warm, "echo", 10_000_000)
        .result
        .is_ok());
    let full = fixture_call(&runtime, &cold, "echo", 10_000_000);
    assert!(
        matches!(&full.result, Err(RunError::PoolExhausted(why)) if why.contains("1")),
        "{:?}",
        full.result
    );
    drop(warm);
    assert!(fixture_call(&runtime, &cold, "echo", 10_000_000)
        .result
        .is_ok());
}

/// One runtime and one plugin (with and without a warm pool) serve calls
/// from several threads at once.
#[test]
fn calls_run_concurrently_from_several_threads() {
    let runtime = Runtime::new().unwrap();
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let fresh = runtime.load(&wasm).unwrap();
    let warm = fresh.clone().with_warm_pool(2);
    std::thread::scope(|scope| {
        for plugin in [&fresh, &warm, &fresh, &warm] {
            let runtime = &runtime;
            scope.spawn(move || {
                for _ in 0..50 {
                    let call = fixture_call(runtime, plugin, "echo", 10_000_000);
                    assert_eq!(payload(&call), "{}");
                }
            });
        }
    });
    assert!(warm.warm_idle() <= 2);
}

/// A component over the pool's per-component limits fails to load, with
/// wasmtime's message naming the limit, rather than at every call. (The
/// Rust example has three core instances: its module and two shims.)
#[test]
fn a_component_over_the_per_component_limits_fails_to_load() {
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("github-router")).unwrap();
    let tight = Runtime::with_options(RuntimeOptions {
        max_core_instances_per_component: 1,
        max_instances: 2,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let error = tight.load(&wasm).unwrap_err();
    assert!(
        format!("{error:#}").contains("core module instances"),
        "{error:#}"
    );
    let small_slots = Runtime::with_options(RuntimeOptions {
        max_memory_bytes: 64 << 10,
        max_instances: 2,
        ..RuntimeOptions::default()
    })
    .unwrap();
    let error = small_slots.load(&wasm).unwrap_err();
    assert!(
        format!("{error:#}").contains("minimum byte size"),
        "{error:#}"
    );
}

/// A plugin is bound to the runtime (engine) that loaded it: another
/// runtime refuses it with an error instead of misusing its code.
#[test]
fn a_plugin_loaded_by_another_runtime_is_refused() {
    let (a, b) = (Runtime::new().unwrap(), Runtime::new().unwrap());
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let plugin = a.load(&wasm).unwrap();
    assert!(fixture_call(&a, &plugin, "echo", 10_000_000).result.is_ok());
    let call = fixture_call(&b, &plugin, "echo", 10_000_000);
    assert!(
        matches!(&call.result, Err(RunError::Trap(why)) if why.contains("another runtime")),
        "{:?}",
        call.result
    );
    assert!(fixture_call(&a.clone(), &plugin, "echo", 10_000_000)
        .result
        .is_ok());
}

/// With a cache directory, the second load (here by a new runtime, as
/// after a restart) maps the compiled plugin instead of compiling it; a
/// damaged entry is compiled again and replaced.
#[test]
fn compiled_plugins_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let options = || RuntimeOptions {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeOptions::default()
    };
    let wasm = std::fs::read(hookyard_tests::plugins::wasm("limits-fixture")).unwrap();
    let echo = |runtime: &Runtime, plugin: &LoadedPlugin| {
        assert_eq!(
            payload(&fixture_call(runtime, plugin, "echo", 10_000_000)),
            "{}"
        );
    };

    let runtime = Runtime::with_options(options()).unwrap();
    let plugin = runtime.load(&wasm).unwrap();
    assert!(!plugin.from_cache);
    echo(&runtime, &plugin);
    let digest = plugin.version.strip_prefix("sha256:").unwrap();
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let entry = entries
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap()
        .clone();
    let name = entry.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("{digest}-")), "{name}");

    let restarted = Runtime::with_options(options()).unwrap();
    let cached = restarted.load(&wasm).unwrap();
    assert!(cached.from_cache);
    assert_eq!(cached.version, plugin.version);
    echo(&restarted, &cached);

    // Damage the machine code in the middle (wasmtime's own header checks
    // would not notice): compiled again, and the entry replaced.
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&entry, &bytes).unwrap();
    let recompiled = Runtime::with_options(options()).unwrap();
    let plugin = recompiled.load(&wasm).unwrap();
    assert!(!plugin.from_cache);
    echo(&recompiled, &plugin);
    assert!(recompiled.load(&wasm).unwrap().from_cache, "replaced");

    // Garbage, checksum and all: wasmtime refuses it; compiled again.
    std::fs::write(&entry, b"not a compiled component").unwrap();
    std::fs::write(
        entry.with_extension("cwasm.sha256"),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            b"not a compiled component",
        )),
    )
    .unwrap();
    let plugin = recompiled.load(&wasm).unwrap();
    assert!(!plugin.from_cache);
    echo(&recompiled, &plugin);
    assert!(recompiled.load(&wasm).unwrap().from_cache);

    // Garbage is still refused, with or without a cache.
    assert!(recompiled.load(b"\0asm garbage").is_err());
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
