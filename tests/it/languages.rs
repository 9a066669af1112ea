//! The same JSON field router in Rust, Python and JavaScript, each built
//! from source: given the same config and events, all three give exactly the
//! same actions and error kinds. Also the Stripe reducer's two deliveries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hookyard::plugin::{Limits, LoadedPlugin, PluginEvent, PluginOutput, RunError, Runtime};

/// Limits for the interpreted routers, from `measure_the_routers`: CPython
/// and SpiderMonkey start from a pre-initialised snapshot of 13 and 10 MiB
/// (Rust: 2), and a 64 KiB event takes them 3.3M and 6.7M fuel (Rust: 0.7M),
/// a 1 KiB one 0.45M and 2.6M. So both fit the default limits; these are
/// about 3x the need, so that a tool upgrade that needs much more fails
/// here first. The deadline is wall-clock, so it allows for a loaded machine.
const INTERPRETED: Limits = Limits {
    fuel: 20_000_000,
    timeout: Duration::from_secs(1),
    memory_bytes: 32 << 20,
    max_output_bytes: 1 << 20,
};

fn event(body: &[u8]) -> PluginEvent {
    PluginEvent {
        id: "evt_01LANGS".into(),
        source: "acme".into(),
        received_at: 1_700_000_000_000,
        method: "POST".into(),
        path: "/webhooks/acme".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_vec(),
    }
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn deliver(sink: &str, body: &str, suffix: Option<&str>) -> PluginOutput {
    PluginOutput::Deliver {
        sink: sink.into(),
        payload: Some(body.into()),
        payload_base64: None,
        headers: vec![("content-type".into(), "application/json".into())],
        subject_suffix: suffix.map(Into::into),
        key: Some("evt_01LANGS".into()),
    }
}

fn dropped(reason: &str) -> PluginOutput {
    PluginOutput::Drop {
        reason: reason.into(),
    }
}

/// What a case expects: actions, or an error of a kind (the message is
/// compared exactly where all three write the same text, by prefix where
/// it quotes their JSON parser).
#[derive(Debug)]
enum Expect {
    Actions(Vec<PluginOutput>),
    Rejected(&'static str),
    InvalidInput,
}

fn status(value: &str) -> String {
    format!(r#"{{"id":"evt_1","data":{{"object":{{"id":"in_1","status":{value}}}}}}}"#)
}

/// One case: what it shows, the plugin's config, the body, what to expect.
type Case = (&'static str, BTreeMap<String, String>, Vec<u8>, Expect);

/// Every case the three routers must answer alike.
fn cases() -> Vec<Case> {
    let routes = [
        ("field", "data.object.status"),
        ("route.open", "billing"),
        ("route.paid", "billing, audit"),
        ("route.42", "answers"),
        ("route.1.50", "decimals"),
        ("route.true", "flags"),
    ];
    let with_default = config(&[&routes[..], &[("default", "archive")]].concat());
    let no_default = config(&routes);
    let open = status(r#""open""#);
    let paid = status(r#""paid""#);
    let void = status(r#""void""#);
    let missing = r#"{"id":"evt_1","data":{"object":{"id":"in_1"}}}"#.to_string();
    let not_an_object = r#"{"id":"evt_1","data":{"object":"in_1"}}"#.to_string();
    let (int, decimal, boolean) = (status("42"), status("1.50"), status("true"));
    let null = status("null");
    let nested = status(r#"{"code":"paid"}"#);
    let e = Expect::Actions;
    vec![
        (
            "a matched route",
            with_default.clone(),
            open.clone().into(),
            e(vec![deliver("billing", &open, Some("open"))]),
        ),
        (
            "a route to two sinks, names trimmed",
            with_default.clone(),
            paid.clone().into(),
            e(vec![
                deliver("billing", &paid, Some("paid")),
                deliver("audit", &paid, Some("paid")),
            ]),
        ),
        (
            "no route: the default, with the value as suffix",
            with_default.clone(),
            void.clone().into(),
            e(vec![deliver("archive", &void, Some("void"))]),
        ),
        (
            "no route and no default: a drop",
            no_default.clone(),
            void.clone().into(),
            e(vec![dropped("no route for data.object.status = void")]),
        ),
        (
            "a missing field: the default, without suffix",
            with_default.clone(),
            missing.clone().into(),
            e(vec![deliver("archive", &missing, None)]),
        ),
        (
            "a missing field and no default: a drop",
            no_default.clone(),
            missing.clone().into(),
            e(vec![dropped("no route: data.object.status is missing")]),
        ),
        (
            "a path through a string is a missing field",
            no_default.clone(),
            not_an_object.into(),
            e(vec![dropped("no route: data.object.status is missing")]),
        ),
        (
            "an integer routes by its text",
            no_default.clone(),
            int.clone().into(),
            e(vec![deliver("answers", &int, Some("42"))]),
        ),
        (
            "a decimal routes by its text as written",
            no_default.clone(),
            decimal.clone().into(),
            e(vec![deliver("decimals", &decimal, Some("1.50"))]),
        ),
        (
            "a boolean routes as true or false",
            no_default.clone(),
            boolean.clone().into(),
            e(vec![deliver("flags", &boolean, Some("true"))]),
        ),
        (
            "null is no value",
            no_default.clone(),
            null.into(),
            e(vec![dropped("no route: data.object.status is null")]),
        ),
        (
            "an object is no value; the default gets it without suffix",
            with_default.clone(),
            nested.clone().into(),
            e(vec![deliver("archive", &nested, None)]),
        ),
        (
            "a body that is not JSON",
            with_default.clone(),
            b"status=paid".to_vec(),
            Expect::InvalidInput,
        ),
        (
            "NaN is not JSON (Python's json alone would take it)",
            with_default.clone(),
            br#"{"data":NaN}"#.to_vec(),
            Expect::InvalidInput,
        ),
        (
            "a body that is not UTF-8",
            with_default,
            b"{\"data\":\"\xff\"}".to_vec(),
            Expect::InvalidInput,
        ),
        (
            "no `field` in the config",
            config(&[("default", "archive")]),
            open.into(),
            Expect::Rejected("config `field` is not set"),
        ),
    ]
}

fn load(runtime: &Runtime, wasm: PathBuf) -> LoadedPlugin {
    let bytes = std::fs::read(&wasm).unwrap();
    runtime
        .load(&bytes)
        .unwrap_or_else(|e| panic!("{} does not load: {e:#}", wasm.display()))
}

fn check(name: &str, runtime: &Runtime, plugin: &LoadedPlugin, limits: Limits) {
    for (what, config, body, expected) in cases() {
        let got = runtime.run(name, plugin, &config, limits, &event(&body));
        match (&expected, &got) {
            (Expect::Actions(want), Ok(actions)) if actions == want => {}
            (Expect::Rejected(want), Err(RunError::Rejected(why))) if why == want => {}
            (Expect::InvalidInput, Err(RunError::InvalidInput(why)))
                if why.starts_with("body is not JSON: ") => {}
            _ => panic!("{name}, {what}: expected {expected:?}, got {got:?}"),
        }
    }
}

#[test]
fn the_rust_json_router_routes_by_one_field() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, hookyard_tests::plugins::wasm("json-router"));
    check("json-router", &runtime, &plugin, Limits::default());
}

#[test]
fn the_python_json_router_does_the_same() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, hookyard_tests::plugins::python_router());
    check("python-router", &runtime, &plugin, INTERPRETED);
}

#[test]
fn the_js_json_router_does_the_same() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, hookyard_tests::plugins::js_router());
    check("js-router", &runtime, &plugin, INTERPRETED);
}

/// A Stripe `invoice.paid` event as Stripe sends it (trimmed of fields the
/// reducer ignores).
const INVOICE_PAID: &str = r#"{
  "id": "evt_1PqR2sLkdIwHu7ix0abcDEFg",
  "object": "event",
  "api_version": "2024-06-20",
  "created": 1718006400,
  "data": {
    "object": {
      "id": "in_1PqR2qLkdIwHu7ixHIJklmNo",
      "object": "invoice",
      "amount_due": 4200,
      "amount_paid": 4200,
      "amount_remaining": 0,
      "currency": "eur",
      "customer": "cus_QabCdEfGhIjKlM",
      "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_abc",
      "number": "ACME-0042",
      "paid": true,
      "status": "paid",
      "subscription": "sub_1PqR2pLkdIwHu7ixPqrStUv"
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": { "id": null, "idempotency_key": null },
  "type": "invoice.paid"
}"#;

#[test]
fn the_stripe_reducer_queues_a_compact_event_and_archives_the_full_one() {
    let runtime = Runtime::new().unwrap();
    let plugin = load(&runtime, hookyard_tests::plugins::wasm("stripe-reducer"));
    let config = config(&[
        ("queue", "billing-queue"),
        ("archive", "stripe-archive"),
        ("types", "invoice., charge.succeeded"),
    ]);
    let run = |body: &str| {
        runtime.run(
            "stripe-reducer",
            &plugin,
            &config,
            Limits::default(),
            &event(body.as_bytes()),
        )
    };
    let key = Some("evt_1PqR2sLkdIwHu7ix0abcDEFg".to_string());
    let json = vec![("content-type".to_string(), "application/json".to_string())];
    let archived = |body: &str| PluginOutput::Deliver {
        sink: "stripe-archive".into(),
        payload: Some(body.into()),
        payload_base64: None,
        headers: json.clone(),
        subject_suffix: None,
        key: key.clone(),
    };
    assert_eq!(
        run(INVOICE_PAID).unwrap(),
        vec![
            PluginOutput::Deliver {
                sink: "billing-queue".into(),
                payload: Some(
                    concat!(
                        r#"{"id":"evt_1PqR2sLkdIwHu7ix0abcDEFg","type":"invoice.paid","#,
                        r#""created":1718006400,"livemode":false,"#,
                        r#""object_id":"in_1PqR2qLkdIwHu7ixHIJklmNo","object":"invoice","#,
                        r#""amount_due":4200,"amount_paid":4200,"#,
                        r#""currency":"eur","customer":"cus_QabCdEfGhIjKlM","status":"paid"}"#
                    )
                    .into()
                ),
                payload_base64: None,
                headers: json.clone(),
                subject_suffix: Some("invoice.paid".into()),
                key: key.clone(),
            },
            archived(INVOICE_PAID),
        ]
    );

    // A type outside `types`: archived only.
    let refunded = INVOICE_PAID.replace("invoice.paid", "charge.refunded");
    assert_eq!(run(&refunded).unwrap(), vec![archived(&refunded)]);
    // A charge carries `amount`, copied as Stripe wrote it.
    let charge = r#"{"id":"evt_1PqR2sLkdIwHu7ix0abcDEFg","type":"charge.succeeded","created":1,"livemode":true,
        "data":{"object":{"id":"ch_1","object":"charge","amount":1999,"currency":"usd","status":"succeeded"}}}"#;
    let queued = run(charge).unwrap();
    assert!(
        matches!(&queued[..], [PluginOutput::Deliver { payload: Some(p), .. }, _]
            if p == r#"{"id":"evt_1PqR2sLkdIwHu7ix0abcDEFg","type":"charge.succeeded","created":1,"livemode":true,"object_id":"ch_1","object":"charge","amount":1999,"currency":"usd","status":"succeeded"}"#),
        "{queued:?}"
    );
    assert!(matches!(run("<xml/>"), Err(RunError::InvalidInput(_))));
    assert_eq!(
        run(r#"{"type":"invoice.paid"}"#),
        Err(RunError::InvalidInput("no string `id` in the event".into()))
    );
}

/// A JSON event of exactly `size` bytes whose `data.object.status` is `paid`.
fn sized_body(size: usize) -> String {
    let frame =
        r#"{"id":"evt_1","type":"invoice.paid","data":{"object":{"status":"paid","note":""}}}"#;
    let padding = "x".repeat(size - frame.len());
    frame.replace(r#""note":"""#, &format!(r#""note":"{padding}""#))
}

/// Prints, for each JSON router: the component's size, its `load` time, and
/// for events of 1 KiB and 64 KiB the median `run` time (a fresh instance
/// each, as the router runs them) and the least fuel and memory they need.
/// Run with
/// `cargo test -p hookyard-tests --test it languages::measure -- --ignored --nocapture`
/// (dependencies, wasmtime included, are optimised even in the dev profile).
#[test]
#[ignore = "a measurement, not a check"]
fn measure_the_routers() {
    let roomy = Limits {
        fuel: 1 << 36,
        timeout: Duration::from_secs(60),
        memory_bytes: 1 << 30,
        max_output_bytes: 1 << 20,
    };
    let config = config(&[
        ("field", "data.object.status"),
        ("route.paid", "billing,audit"),
    ]);
    let routers = [
        ("rust", hookyard_tests::plugins::wasm("json-router")),
        ("python", hookyard_tests::plugins::python_router()),
        ("js", hookyard_tests::plugins::js_router()),
    ];
    for (name, wasm) in routers {
        let runtime = Runtime::new().unwrap();
        let bytes = std::fs::read(&wasm).unwrap();
        let started = Instant::now();
        let plugin = runtime.load(&bytes).unwrap();
        println!(
            "{name}: {} KiB, load {:?}",
            bytes.len() / 1024,
            started.elapsed()
        );
        for (size, runs) in [(1 << 10, 300), (64 << 10, 50)] {
            let event = event(sized_body(size).as_bytes());
            let run = |limits: Limits| runtime.run(name, &plugin, &config, limits, &event);
            assert_eq!(run(roomy).unwrap().len(), 2);
            let mut times: Vec<Duration> = (0..runs)
                .map(|_| {
                    let started = Instant::now();
                    run(roomy).unwrap();
                    started.elapsed()
                })
                .collect();
            times.sort();
            // The least budget that still works, by bisection.
            let least = |high: u64, limits: &dyn Fn(u64) -> Limits| {
                let (mut low, mut high) = (0, high);
                while low + 1 < high {
                    let mid = low + (high - low) / 2;
                    if run(limits(mid)).is_ok() {
                        high = mid;
                    } else {
                        low = mid;
                    }
                }
                high
            };
            let fuel = least(roomy.fuel, &|fuel| Limits { fuel, ..roomy });
            let memory_mb = least(1024, &|mb| Limits {
                memory_bytes: usize::try_from(mb).unwrap() << 20,
                ..roomy
            });
            println!(
                "  {} KiB event: run median {:?} (p10 {:?}, p90 {:?}), least fuel {fuel}, least memory {memory_mb} MiB",
                size >> 10,
                times[times.len() / 2],
                times[times.len() / 10],
                times[times.len() * 9 / 10],
            );
        }
    }
}

/// Through the router: events posted to sources whose plugins are the
/// Python and JavaScript routers end with the deliveries those plugins chose.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_and_javascript_routers_dispatch_events_end_to_end() {
    use hookyard::store::EventId;
    use hookyard_tests::{dispatched, open_store, sqlite_url, InProcess};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[sinks.ops]
type = "http"
url = "http://127.0.0.1:9/ops"
[sinks.archive]
type = "file"
path = "{dir}/archive.jsonl"
"#,
        store = sqlite_url(dir),
        dir = dir.display(),
    );
    for (name, wasm) in [
        ("python", hookyard_tests::plugins::python_router()),
        ("js", hookyard_tests::plugins::js_router()),
    ] {
        text.push_str(&format!(
            r#"
[plugins.{name}-router]
wasm = "{wasm}"
sinks = ["ops", "archive"]
fuel = 20000000
memory_mb = 32
timeout_ms = 1000
config = {{ field = "type", "route.alert" = "ops,archive", default = "archive" }}
[sources.{name}]
verify = "none"
plugin = "{name}-router"
"#,
            wasm = wasm.display(),
        ));
    }
    let router = InProcess::start_with(dir, &text).await;
    let store = open_store(&sqlite_url(dir)).await;
    let slow_client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    for source in ["python", "js"] {
        let body = br#"{"type":"alert","level":3}"#;
        let headers = vec![("content-type".to_string(), "application/json".to_string())];
        // The router compiles both interpreters' components before it
        // serves (tens of seconds in a debug build): wait for it.
        let resp =
            hookyard_tests::sign::with_headers(slow_client.post(router.webhook(source)), &headers)
                .body(body.to_vec())
                .send()
                .await
                .expect("send");
        assert_eq!(resp.status(), 200);
        let ack: serde_json::Value = resp.json().await.unwrap();
        let id = EventId::from_string(ack["id"].as_str().unwrap().into());
        let event = dispatched(&store, &id).await;
        assert_eq!(
            event.status, "processed",
            "{source}: {:?}",
            event.status_reason
        );
        let deliveries = store.deliveries(&id).await.unwrap();
        let got: Vec<_> = deliveries
            .iter()
            .map(|d| {
                (
                    d.sink.as_str(),
                    d.payload.as_slice(),
                    d.subject_suffix.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ops", &body[..], Some("alert")),
                ("archive", &body[..], Some("alert"))
            ],
            "{source}"
        );
        assert!(deliveries
            .iter()
            .all(|d| d.msg_key.as_deref() == Some(id.as_str())));
        let runs = store.plugin_runs(&id).await.unwrap();
        assert_eq!(runs[0].plugin, format!("{source}-router"));
        assert!(runs[0].fuel_used > 0);
    }
    store.close().await;
    router.stop().await.unwrap();
}
