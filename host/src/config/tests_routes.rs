//! Config of plugins, sinks and routes: the shipped router.toml's routes,
//! path resolution, limits, and the messages for every broken reference.

use std::path::Path;
use std::time::Duration;

use super::{parse, SinkKind, SourceRoute};

fn no_env(_: &str) -> Option<String> {
    None
}

/// The message `hookyard check` prints for `text` (the error and its sources).
fn err(text: &str) -> String {
    let e = parse(Path::new("conf/router.toml"), text, &no_env).unwrap_err();
    let mut out = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// The validated config of `text`.
fn ok(text: &str) -> super::Config {
    parse(Path::new("conf/router.toml"), text, &no_env).expect("valid")
}

const SINKS: &str = r#"
[sinks.archive]
type = "file"
path = "data/{source}.jsonl"
[sinks.ops]
type = "http"
url = "http://127.0.0.1:9000/"
"#;

#[test]
fn shipped_router_toml_routes_sources_through_the_example_plugins() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../router.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = parse(Path::new(path), &text, &no_env).unwrap();
    assert_eq!(
        config.sources["github"].route,
        SourceRoute::Plugin("github-router".into())
    );
    assert_eq!(
        config.sources["stripe"].route,
        SourceRoute::Plugin("stripe-reducer".into())
    );
    assert_eq!(
        config.sources["shopify"].route,
        SourceRoute::Sinks(vec!["archive".into()])
    );
    for (name, file) in [
        ("github-router", "github_router.wasm"),
        ("stripe-reducer", "stripe_reducer.wasm"),
        ("json-router", "json_router.wasm"),
    ] {
        let wasm = &config.plugins[name].wasm;
        // Relative to router.toml's directory, not the working directory.
        assert!(
            wasm.starts_with(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
            "{wasm:?}"
        );
        assert!(wasm.ends_with(Path::new("plugins/target/wasm32-wasip2/release").join(file)));
    }
    assert_eq!(config.plugins["stripe-reducer"].sinks, ["queue", "archive"]);
    assert!(matches!(config.sinks["queue"].kind, SinkKind::Nats(_)));
}

#[test]
fn plugin_settings_are_typed_with_defaults_and_config_as_strings() {
    let text = format!(
        r#"{SINKS}
[plugins.p]
wasm = "p.wasm"
sinks = ["ops"]
timeout_ms = 250
memory_mb = 8
warm_instances = 4
config = {{ repos = "a,b", limit = 3, strict = true }}
[sources.s]
verify = "none"
plugin = "p"
"#
    );
    let config = parse(Path::new("conf/router.toml"), &text, &no_env).unwrap();
    let p = &config.plugins["p"];
    assert_eq!(p.wasm, Path::new("conf/p.wasm"));
    assert_eq!(p.limits.timeout, Duration::from_millis(250));
    assert_eq!(p.limits.memory_bytes, 8 << 20);
    assert_eq!(p.limits.fuel, 50_000_000, "default");
    assert_eq!(p.limits.max_output_bytes, 1 << 20, "default");
    assert_eq!(p.warm_instances, 4);
    let values: Vec<_> = p
        .config
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        values,
        [("limit", "3"), ("repos", "a,b"), ("strict", "true")]
    );
    // Plugin config may hold secrets: Debug shows the keys only.
    assert!(!format!("{p:?}").contains("a,b"));
}

#[test]
fn every_broken_reference_names_the_key_and_what_exists() {
    let plugin =
        |sinks: &str| format!("{SINKS}\n[plugins.p]\nwasm = \"p.wasm\"\nsinks = {sinks}\n");
    assert_eq!(
        err(&plugin(r#"["ops", "nope"]"#)),
        "conf/router.toml: key `plugins.p.sinks[1]`: expected a sink defined in [sinks.NAME]: \
         one of \"archive\", \"ops\""
    );
    assert_eq!(
        err(&format!("{}[sources.s]\nverify = \"none\"\nplugin = \"q\"\n", plugin("[]"))),
        "conf/router.toml: key `sources.s.plugin`: expected a plugin defined in [plugins.NAME]: one of \"p\""
    );
    assert_eq!(
        err("[sources.s]\nverify = \"none\"\nsinks = [\"archive\"]\n"),
        "conf/router.toml: key `sources.s.sinks[0]`: expected a sink defined in [sinks.NAME] (none is defined)"
    );
    assert!(err(&format!(
        "{}[sources.s]\nverify = \"none\"\nplugin = \"p\"\nsinks = [\"ops\"]\n",
        plugin("[]")
    ))
    .starts_with(
        "conf/router.toml: key `sources.s.sinks`: expected either `plugin` or `sinks`, not both"
    ));
}

#[test]
fn sinks_and_limits_refuse_what_they_would_ignore_or_cannot_honour() {
    assert_eq!(
        err("[sinks.x]\ntype = \"kafka\"\n"),
        "conf/router.toml: key `sinks.x.type`: expected \"http\", \"file\", \"nats\", \"redis\" or \"amqp\""
    );
    assert_eq!(
        err("[sinks.x]\ntype = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\n"),
        "conf/router.toml: key `sinks.x.subject`: expected a value (required by type \"nats\")"
    );
    assert_eq!(
        err("[sinks.x]\ntype = \"http\"\nurl = \"http://h/\"\nsubject = \"s\"\n"),
        "conf/router.toml: key `sinks.x.subject`: expected no such key for a sink of type \"http\""
    );
    assert_eq!(
        err("[plugins.p]\nwasm = \"p.wasm\"\ntimeout_ms = 0\n"),
        "conf/router.toml: key `plugins.p.timeout_ms`: expected a number from 1 to 60000"
    );
    assert_eq!(
        err("[plugins.p]\nwasm = \"p.wasm\"\nconfig = { nested = { a = 1 } }\n"),
        "conf/router.toml: key `plugins.p.config.nested`: expected a string, number or boolean (the plugin reads strings)"
    );
    let typo = err("[plugins.p]\nwasm = \"p.wasm\"\nfule = 1\n");
    assert!(
        typo.contains("key `plugins.p.fule`: unknown field `fule`"),
        "{typo}"
    );
    assert!(err("[plugins.P]\nwasm = \"p.wasm\"\n").contains("key `plugins.P`"));
}

#[test]
fn sink_settings_are_typed_and_bad_ones_name_their_key_without_echoing_secrets() {
    let config = ok(r#"
[sinks.ops]
type = "http"
url = "https://ops.example/hook"
method = "PUT"
headers = { Authorization = "Bearer s3cr3t-token" }
timeout_ms = 2500
sign_secret = "whsec_aG9va3lhcmQtdGVzdC1zaWduaW5nLWtleQ=="
max_concurrency = 4
rate_per_s = 2.5
retry = { attempts = 3, base_ms = 200 }
[sinks.archive]
type = "file"
path = "archive/{source}/{date}.jsonl"
fsync = "batch"
rotate_bytes = 1048576
"#);
    let ops = &config.sinks["ops"];
    let SinkKind::Http(http) = &ops.kind else {
        panic!("http sink")
    };
    assert_eq!(
        (http.method.as_str(), http.timeout.as_millis()),
        ("PUT", 2500)
    );
    assert_eq!((ops.max_concurrency, ops.rate_per_s), (4, Some(2.5)));
    assert_eq!(
        (
            ops.retry.attempts,
            ops.retry.base.as_millis(),
            ops.retry.cap.as_millis()
        ),
        (3, 200, 900_000),
        "unset keys keep their defaults"
    );
    assert!(
        !format!("{ops:?}").contains("s3cr3t"),
        "Debug hides header values"
    );
    let SinkKind::File(file) = &config.sinks["archive"].kind else {
        panic!("file sink")
    };
    assert_eq!(
        file.path,
        Path::new("conf/archive/{source}/{date}.jsonl"),
        "relative to router.toml"
    );
    assert_eq!(config.sinks["archive"].max_concurrency, 512);

    for (text, expected) in [
        (
            "type = \"http\"\nurl = \"ftp://h/\"",
            "key `sinks.x.url`: expected a URL starting with http:// or https://",
        ),
        (
            "type = \"http\"\nurl = \"http://h/\"\nsign_secret = \"not-a-secret-format\"",
            "key `sinks.x.sign_secret`: expected a Standard Webhooks secret",
        ),
        (
            "type = \"http\"\nurl = \"http://h/\"\nmethod = \"GET\"",
            "key `sinks.x.method`: expected \"POST\", \"PUT\" or \"PATCH\"",
        ),
        (
            "type = \"file\"\npath = \"a.jsonl\"\nfsync = \"never\"",
            "key `sinks.x.fsync`: expected \"always\" or \"batch\"",
        ),
        (
            "type = \"file\"\npath = \"a.jsonl\"\nrate_per_s = 0",
            "key `sinks.x.rate_per_s`: expected a positive number",
        ),
        (
            "type = \"file\"\npath = \"a.jsonl\"\nretry = { attempts = 0 }",
            "key `sinks.x.retry.attempts`: expected a number from 1 to 1000",
        ),
        (
            "type = \"file\"\npath = \"a.jsonl\"\nretry = { base_ms = 5000, cap_ms = 10 }",
            "key `sinks.x.retry.cap_ms`: expected a number of milliseconds from base_ms (5000)",
        ),
        (
            "type = \"file\"\npath = \"a.jsonl\"\nmethod = \"PUT\"",
            "key `sinks.x.method`: expected no such key for a sink of type \"file\"",
        ),
    ] {
        let message = err(&format!("[sinks.x]\n{text}\n"));
        assert!(message.contains(expected), "{text}: {message}");
    }
    let secret =
        err("[sinks.x]\ntype = \"http\"\nurl = \"http://h/\"\nsign_secret = \"whsec_tooshort\"\n");
    assert!(!secret.contains("tooshort"), "{secret}");
    let header = err("[sinks.x]\ntype = \"http\"\nurl = \"http://h/\"\nheaders = { X-Token = \"bad\\nvalue\" }\n");
    assert!(
        header.contains("sinks.x.headers.X-Token") && !header.contains("bad"),
        "{header}"
    );
    assert!(err("[delivery]\nlease_s = 0\n").contains("key `delivery.lease_s`"));
}
