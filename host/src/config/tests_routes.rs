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
