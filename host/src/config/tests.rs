//! Config parsing and validation: the shipped router.toml, defaults, and the
//! exact messages users read when a file is wrong.

use std::path::Path;

use super::{parse, ConfigError};

fn no_env(_: &str) -> Option<String> {
    None
}

fn err(text: &str) -> String {
    let e = parse(Path::new("router.toml"), text, &no_env).unwrap_err();
    format!("{:#}", anyhow_like(&e))
}

/// `a: b: c` with the whole source chain, as `hookyard check` prints it.
fn anyhow_like(e: &ConfigError) -> String {
    let mut out = e.to_string();
    let mut next = std::error::Error::source(e);
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[test]
fn shipped_router_toml_loads_and_matches_code_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../router.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = parse(Path::new(path), &text, &no_env).unwrap();
    let defaults = parse(Path::new("empty.toml"), "", &no_env).unwrap();
    assert_eq!(config.server.listen, defaults.server.listen);
    assert_eq!(config.server.max_body_bytes, defaults.server.max_body_bytes);
    assert_eq!(
        config.server.shutdown_timeout,
        defaults.server.shutdown_timeout
    );
    assert_eq!(config.store.url, defaults.store.url);
    assert_eq!(config.server.max_backlog, defaults.server.max_backlog);
    assert_eq!(
        config.store.sqlite_synchronous,
        defaults.store.sqlite_synchronous
    );
    assert_eq!(
        config.store.group_commit.max_batch,
        defaults.store.group_commit.max_batch
    );
    assert_eq!(
        config.store.group_commit.queue_capacity,
        defaults.store.group_commit.queue_capacity
    );
    assert!(config.sources.contains_key("github"));
    // Without the environment, every secret-bearing source is on its dev default.
    assert!(config
        .sources
        .values()
        .filter(|s| s.preset != "none")
        .all(|s| s.uses_dev_default));
}

#[test]
fn environment_values_replace_dev_defaults() {
    let text = "[sources.gh]\nverify = \"github\"\nsecrets = [\"${GH:-dev}\"]\n";
    let env = |n: &str| (n == "GH").then(|| "real".to_string());
    let config = parse(Path::new("r.toml"), text, &env).unwrap();
    assert!(!config.sources["gh"].uses_dev_default);
}

#[test]
fn unknown_keys_name_file_and_key() {
    let msg = err("[sources.gh]\nverify = \"github\"\nsecretz = [\"x\"]\n");
    assert!(msg.starts_with("router.toml: key `sources.gh"), "{msg}");
    assert!(msg.contains("unknown field `secretz`"), "{msg}");
    let msg = err("[server]\nlisten = \"127.0.0.1:1\"\nlisten_addr = 1\n");
    assert!(msg.contains("unknown field `listen_addr`"), "{msg}");
}

#[test]
fn a_source_without_verify_is_an_error() {
    let msg = err("[sources.gh]\nsecrets = [\"x\"]\n");
    assert!(
        msg.contains("key `sources.gh.verify`: expected one of"),
        "{msg}"
    );
    assert!(msg.contains("verify = \"none\" must be explicit"), "{msg}");
}

#[test]
fn unknown_preset_is_an_error() {
    let msg = err("[sources.gh]\nverify = \"githib\"\nsecrets = [\"x\"]\n");
    assert!(msg.contains("key `sources.gh.verify`"), "{msg}");
}

#[test]
fn missing_secret_names_the_key() {
    let msg = err("[sources.gh]\nverify = \"github\"\n");
    assert!(msg.contains("key `sources.gh.secrets`"), "{msg}");
}

#[test]
fn unset_env_var_names_key_and_variable() {
    let msg = err("[sources.gh]\nverify = \"github\"\nsecrets = [\"${NOPE}\"]\n");
    assert!(msg.contains("key `sources.gh.secrets[0]`"), "{msg}");
    assert!(msg.contains("`NOPE` is not set"), "{msg}");
}

#[test]
fn keys_of_other_presets_are_refused() {
    let msg = err("[sources.gh]\nverify = \"github\"\nsecrets = [\"x\"]\nheader = \"X-Sig\"\n");
    assert!(
        msg.contains("key `sources.gh.header`: expected no such key unless verify = \"hmac\""),
        "{msg}"
    );
    let msg = err("[sources.open]\nverify = \"none\"\nsecrets = [\"x\"]\n");
    assert!(msg.contains("key `sources.open.secrets`"), "{msg}");
}

#[test]
fn new_presets_take_their_keys_and_refuse_others() {
    let ok = |text: &str| parse(Path::new("router.toml"), text, &no_env).unwrap();
    let discord_key = "21e5924f73f48a4cef37011ed7bd42b67be8b09262d1a01b61dee7b132e78599";
    ok(&format!(
        "[sources.d]\nverify = \"discord\"\npublic_key = \"{discord_key}\"\n"
    ));
    ok("[sources.s]\nverify = \"sendgrid\"\npublic_key = \"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELPvsA+xvcpwrIzghIOKguNcViWAC4aKnMY0sKOWy4pso8qRiLZNPxOtmdVg6izA6zOM8S8G5ezpch2MyB1lq/g==\"\n");
    ok("[sources.g]\nverify = \"gitlab\"\nvariant = \"signing-token\"\nsecrets = [\"whsec_ZGV2\"]\ntolerance_s = 60\n");
    ok("[sources.q]\nverify = \"square\"\nvariant = \"sha1-legacy\"\nsecrets = [\"k\"]\n");
    ok("[sources.p]\nverify = \"paddle\"\nsecrets = [\"pdl_ntfset_x\"]\ntolerance_s = 10\n");
    let msg = err("[sources.z]\nverify = \"zoom\"\nsecrets = [\"x\"]\npublic_key = \"ab\"\n");
    assert!(msg.contains("key `sources.z.public_key`"), "{msg}");
    let msg = err("[sources.q]\nverify = \"square\"\nsecrets = [\"x\"]\ntolerance_s = 300\n");
    assert!(msg.contains("key `sources.q.tolerance_s`"), "{msg}");
    let msg = err(&format!(
        "[sources.d]\nverify = \"discord\"\nsecrets = [\"x\"]\npublic_key = \"{discord_key}\"\n"
    ));
    assert!(msg.contains("key `sources.d.secrets`"), "{msg}");
}

#[test]
fn bad_values_are_named() {
    assert!(err("[server]\nlisten = \"nope\"\n").contains("key `server.listen`"));
    assert!(err("[store]\nurl = \"mysql://x\"\n").contains("key `store.url`"));
    assert!(err("[store]\nsynchronous = \"sometimes\"\n").contains("key `store.synchronous`"));
    assert!(err("[sources.\"Bad Name\"]\nverify = \"none\"\n").contains("key `sources.Bad Name`"));
    assert!(err("[server\n").starts_with("router.toml: not valid TOML"));
}

#[test]
fn secrets_never_appear_in_errors() {
    let text =
        "[sources.gh]\nverify = \"github\"\nsecrets = [\"hunter2-secret\"]\nheader = \"x\"\n";
    assert!(!err(text).contains("hunter2"));
    let text =
        "[sources.sw]\nverify = \"standard-webhooks\"\nsecrets = [\"whsec_!!notbase64-hunter2\"]\n";
    assert!(!err(text).contains("hunter2"));
}

/// What users read when a file is wrong, all in one reviewed snapshot.
#[test]
fn error_messages_users_read() {
    let cases = [
        "[sources.gh]\nverify = \"github\"\nsecretz = [\"x\"]\n",
        "[sources.gh]\nsecrets = [\"x\"]\n",
        "[sources.gh]\nverify = \"github\"\n",
        "[sources.gh]\nverify = \"github\"\nsecrets = [\"${NOPE}\"]\n",
        "[sources.gh]\nverify = \"github\"\nsecrets = [\"x\"]\nheader = \"X-Sig\"\n",
        "[sources.sw]\nverify = \"standard-webhooks\"\n",
        "[sources.h]\nverify = \"hmac\"\nsecrets = [\"x\"]\n",
        "[sources.d]\nverify = \"discord\"\n",
        "[sources.q]\nverify = \"square\"\nsecrets = [\"x\"]\ntolerance_s = 300\n",
        "[sources.q]\nverify = \"square\"\nsecrets = [\"x\"]\nvariant = \"sha1\"\n",
        "[server]\nlisten = \"nope\"\n",
        "[store]\nsynchronous = \"sometimes\"\n",
        "[server]\nmax_body_bytes = \"big\"\n",
    ];
    let messages: Vec<String> = cases.iter().map(|c| err(c)).collect();
    insta::assert_snapshot!(messages.join("\n"));
}

#[test]
fn allow_lists_trusted_proxies_and_public_urls_are_parsed_and_checked() {
    let gh = "[sources.gh]\nverify = \"github\"\nsecrets = [\"x\"]\n";
    let msg = err(&format!(
        "{gh}allow_ips = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"
    ));
    assert!(msg.contains("key `sources.gh.allow_ips[1]`"), "{msg}");
    assert!(msg.contains("`10.0.0.0/33` is neither"), "{msg}");
    let msg = err(&format!("{gh}allow_ips = []\n"));
    assert!(
        msg.contains("key `sources.gh.allow_ips`: expected at least one"),
        "{msg}"
    );
    let msg = err("[server]\ntrusted_proxies = [\"proxy.local\"]\n");
    assert!(msg.contains("key `server.trusted_proxies[0]`"), "{msg}");
    for bad in [
        "hooks.example.com/x",
        "ftp://h/x",
        "https://h/x?a=1",
        "https://h/x#f",
    ] {
        let msg = err(&format!("{gh}public_url = \"{bad}\"\n"));
        assert!(msg.contains("key `sources.gh.public_url`"), "{bad}: {msg}");
    }

    let text = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n{gh}\
         allow_ips = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n\
         public_url = \"https://hooks.example.com/webhooks/gh\"\n"
    );
    let config = parse(Path::new("router.toml"), &text, &no_env).unwrap();
    assert!(config
        .server
        .trusted_proxies
        .contains("10.9.9.9".parse().unwrap()));
    let source = &config.sources["gh"];
    let allowed = source.allow_ips.as_ref().unwrap();
    assert!(allowed.contains("192.0.2.77".parse().unwrap()));
    assert!(allowed.contains("2001:db8::7".parse().unwrap()));
    assert!(!allowed.contains("127.0.0.1".parse().unwrap()));
    assert_eq!(
        source.public_url.as_deref(),
        Some("https://hooks.example.com/webhooks/gh")
    );
    // Not set: any address, the request's own URL.
    let config = parse(Path::new("router.toml"), gh, &no_env).unwrap();
    assert!(config.sources["gh"].allow_ips.is_none());
    assert!(config.sources["gh"].public_url.is_none());
}

#[test]
fn keys_must_outlive_bodies() {
    let msg = err("[store]\nbody_retention_days = 30\nkey_retention_days = 7\n");
    assert!(msg.contains("key `store.key_retention_days`"), "{msg}");
    let msg = err("[store]\nbody_retention_days = 0\nkey_retention_days = 7\n");
    assert!(msg.contains("key `store.key_retention_days`"), "{msg}");
    assert!(err("[store]\npurge_interval_s = 0\n").contains("key `store.purge_interval_s`"));
    let forever = "[store]\nbody_retention_days = 0\nkey_retention_days = 0\n";
    let config = parse(Path::new("router.toml"), forever, &no_env).unwrap();
    assert_eq!(
        (config.store.retention.bodies, config.store.retention.keys),
        (None, None)
    );
    let defaults = parse(Path::new("router.toml"), "", &no_env).unwrap();
    assert_eq!(
        defaults.store.retention.keys,
        Some(std::time::Duration::from_secs(365 * 86_400))
    );
}

/// A window on a preset that signs no timestamp would do nothing: refused.
#[test]
fn tolerance_is_refused_where_no_timestamp_is_signed() {
    for (preset, extra) in [
        ("github", ""),
        ("shopify", ""),
        ("hmac", "header = \"X-Sig\"\n"),
        ("intercom", ""),
    ] {
        let text = format!(
            "[sources.s]\nverify = \"{preset}\"\nsecrets = [\"x\"]\n{extra}tolerance_s = 300\n"
        );
        let msg = err(&text);
        assert!(
            msg.contains("key `sources.s.tolerance_s`"),
            "{preset}: {msg}"
        );
        assert!(msg.contains("no timestamp"), "{preset}: {msg}");
    }
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let public = "[admin]\nlisten = \"0.0.0.0:8081\"\n";
    let message = err(public);
    assert!(message.contains("key `admin.token`"), "{message}");
    assert!(message.contains("not a loopback address"), "{message}");
    // An empty interpolation (`${HOOKYARD_ADMIN_TOKEN:-}`, unset) is no token.
    assert!(err("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"\"\n").contains("admin.token"));
    let short = err("[admin]\nlisten = \"127.0.0.1:8081\"\ntoken = \"short\"\n");
    assert!(
        short.contains("at least 16 characters") && !short.contains("short\""),
        "{short}"
    );

    let loopback = parse(
        Path::new("r.toml"),
        "[admin]\nlisten = \"127.0.0.1:8081\"\n",
        &no_env,
    )
    .unwrap();
    let admin = loopback.admin.unwrap();
    assert!(admin.token.is_none());
    let text = "[admin]\nlisten = \"[::]:8081\"\ntoken = \"${TOKEN}\"\n";
    let env = |n: &str| (n == "TOKEN").then(|| "a-long-enough-admin-token".to_string());
    let public = parse(Path::new("r.toml"), text, &env)
        .unwrap()
        .admin
        .unwrap();
    assert_eq!(public.token.unwrap().expose(), "a-long-enough-admin-token");
    assert!(format!("{:?}", parse(Path::new("r.toml"), text, &env).unwrap()).contains("***"));
    assert!(parse(Path::new("empty.toml"), "", &no_env)
        .unwrap()
        .admin
        .is_none());
}

#[test]
fn max_backlog_must_be_positive() {
    assert!(err("[server]\nmax_backlog = 0\n").contains("key `server.max_backlog`"));
    let defaults = parse(Path::new("empty.toml"), "", &no_env).unwrap();
    assert_eq!(defaults.server.max_backlog, 1_000_000);
}
