//! Raw schema -> typed [`Config`]. Pure: no I/O, no await, so `hookyard
//! check` and the router agree on what a file means.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawServer, RawSource, RawStore};
use super::validate_admin::{validate_admin, AdminConfig};
use super::validate_routes::{
    source_route, valid_name, validate_plugins, PluginConfig, SourceRoute,
};
use super::validate_sinks::{validate_sinks, SinkConfig};
use super::ConfigError;
use crate::cidr::CidrList;
use crate::store::{GroupCommitConfig, Retention, SqliteSynchronous, StoreConfig};
use crate::verify::{self, HmacAlgorithm, HmacParams, SignatureEncoding, Verifier, VerifierParams};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub file: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[sources.*]` by name.
    pub sources: BTreeMap<String, SourceConfig>,
    /// `[plugins.*]` by name.
    pub plugins: BTreeMap<String, PluginConfig>,
    /// `[sinks.*]` by name.
    pub sinks: BTreeMap<String, SinkConfig>,
    /// `[runtime]`.
    pub runtime: RuntimeSettings,
    /// `[delivery]`.
    pub delivery: DeliverySettings,
    /// `[admin]`, when the operators' listener is on.
    pub admin: Option<AdminConfig>,
    /// Each section's digest, which a reload compares.
    pub sections: super::SectionDigests,
}

/// `[delivery]`, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliverySettings {
    /// How long a claimed delivery is this process's before another (or
    /// the next start) may take it: the time a crashed process's work
    /// waits. An HTTP sink's lease is never below twice its timeout.
    pub lease: Duration,
    /// Longest wait between two claims of an idle sink (retries coming
    /// due, other processes' work).
    pub poll: Duration,
}

/// `[runtime]`, typed.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Where compiled plugins are kept across restarts (relative to
    /// router.toml); `None` (`cache_dir = ""`) compiles at every start.
    pub cache_dir: Option<PathBuf>,
    /// Plugin instances alive at once (calls in flight and warm ones).
    pub max_instances: u32,
}

/// `[server]`, typed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted body; larger requests get 413.
    pub max_body_bytes: usize,
    /// Serve HTTPS with these files.
    pub tls: Option<TlsConfig>,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// Peers whose `X-Forwarded-For` names the client (reverse proxies).
    pub trusted_proxies: CidrList,
    /// Undelivered events (undispatched plus pending deliveries) past
    /// which ingest answers 503 with `Retry-After`.
    pub max_backlog: u64,
}

/// `[server.tls]`, typed.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// One `[sources.NAME]`, typed.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The source's name (the `{source}` of `/webhooks/{source}`).
    pub name: String,
    /// The preset name as configured.
    pub preset: String,
    /// The built verifier.
    pub verifier: Arc<dyn Verifier>,
    /// True when a secret came from a `${NAME:-default}` default: the router
    /// warns at start, since such a secret is public in the repository.
    pub uses_dev_default: bool,
    /// The URL the provider calls (scheme, host, path), when a proxy stands
    /// between it and us; URL-signing schemes sign this, plus the query.
    pub public_url: Option<String>,
    /// Only these client addresses may post to this source (others: 403).
    pub allow_ips: Option<CidrList>,
    /// Where its stored events go.
    pub route: SourceRoute,
}

pub(super) fn validate(
    file: PathBuf,
    raw: RawConfig,
    dev_defaults: Vec<String>,
) -> Result<Config, ConfigError> {
    let invalid = |key: String, expected: String| ConfigError::Invalid {
        file: file.clone(),
        key,
        expected,
    };
    let server = validate_server(raw.server, &invalid)?;
    let store = validate_store(raw.store, &invalid)?;
    let sinks = validate_sinks(&file, raw.sinks, &invalid)?;
    let plugins = validate_plugins(&file, raw.plugins, &sinks, &invalid)?;
    let mut sources = BTreeMap::new();
    for (name, mut source) in raw.sources {
        let prefix = format!("sources.{name}.");
        let uses_dev_default = dev_defaults.iter().any(|k| k.starts_with(&prefix));
        let (plugin, sink_names) = (source.plugin.take(), source.sinks.take());
        let mut typed = validate_source(&file, &name, source, uses_dev_default, &invalid)?;
        typed.route = source_route(&name, plugin, sink_names, &plugins, &sinks, &invalid)?;
        sources.insert(name, typed);
    }
    if raw.runtime.max_instances == 0 {
        return Err(invalid("runtime.max_instances".into(), "at least 1".into()));
    }
    let base = file.parent().unwrap_or_else(|| std::path::Path::new("."));
    let runtime = RuntimeSettings {
        cache_dir: (!raw.runtime.cache_dir.is_empty()).then(|| base.join(&raw.runtime.cache_dir)),
        max_instances: raw.runtime.max_instances,
    };
    if !(1..=3600).contains(&raw.delivery.lease_s) {
        return Err(invalid(
            "delivery.lease_s".into(),
            "a number of seconds from 1 to 3600".into(),
        ));
    }
    if !(10..=60_000).contains(&raw.delivery.poll_ms) {
        return Err(invalid(
            "delivery.poll_ms".into(),
            "a number of milliseconds from 10 to 60000".into(),
        ));
    }
    let delivery = DeliverySettings {
        lease: Duration::from_secs(raw.delivery.lease_s),
        poll: Duration::from_millis(raw.delivery.poll_ms),
    };
    let admin = raw
        .admin
        .map(|admin| validate_admin(admin, &invalid))
        .transpose()?;
    Ok(Config {
        file,
        server,
        store,
        sources,
        plugins,
        sinks,
        runtime,
        delivery,
        admin,
        sections: super::SectionDigests::default(),
    })
}

pub(super) type Invalid<'a> = dyn Fn(String, String) -> ConfigError + 'a;

fn validate_server(raw: RawServer, invalid: &Invalid<'_>) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.parse().map_err(|_| {
        invalid(
            "server.listen".into(),
            "a socket address such as \"127.0.0.1:8080\"".into(),
        )
    })?;
    if raw.max_body_bytes == 0 {
        return Err(invalid(
            "server.max_body_bytes".into(),
            "a size above 0 bytes".into(),
        ));
    }
    let max_body_bytes = usize::try_from(raw.max_body_bytes).map_err(|_| {
        invalid(
            "server.max_body_bytes".into(),
            "a size this machine can hold".into(),
        )
    })?;
    let tls = raw.tls.map(|t| TlsConfig {
        cert: t.cert.into(),
        key: t.key.into(),
    });
    let trusted_proxies = cidr_list("server.trusted_proxies", &raw.trusted_proxies, invalid)?;
    if raw.max_backlog == 0 {
        return Err(invalid(
            "server.max_backlog".into(),
            "a number of events above 0".into(),
        ));
    }
    Ok(ServerConfig {
        max_backlog: raw.max_backlog,
        listen,
        max_body_bytes,
        tls,
        shutdown_timeout: Duration::from_secs(raw.shutdown_timeout_s),
        trusted_proxies,
    })
}

/// Parses a list of CIDRs at `key`, naming the bad entry on error.
fn cidr_list(
    key: &str,
    entries: &[String],
    invalid: &Invalid<'_>,
) -> Result<CidrList, ConfigError> {
    CidrList::parse(entries).map_err(|(i, reason)| invalid(format!("{key}[{i}]"), reason))
}

/// `public_url`: an absolute http(s) URL without query or fragment (the
/// query of each request is appended to it).
fn public_url(key: String, raw: String, invalid: &Invalid<'_>) -> Result<String, ConfigError> {
    let expected = || {
        "an absolute http(s) URL without query, such as \"https://hooks.example.com/webhooks/twilio\""
            .to_string()
    };
    let uri: http::Uri = raw.parse().map_err(|_| invalid(key.clone(), expected()))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.authority().is_none() || uri.query().is_some() || raw.contains('#') {
        return Err(invalid(key, expected()));
    }
    Ok(raw.trim_end_matches('?').to_string())
}

fn validate_store(raw: RawStore, invalid: &Invalid<'_>) -> Result<StoreConfig, ConfigError> {
    let url_ok = ["sqlite:", "postgres:", "postgresql:"]
        .iter()
        .any(|p| raw.url.starts_with(p));
    if !url_ok {
        return Err(invalid(
            "store.url".into(),
            "a URL starting with sqlite:// or postgres://".into(),
        ));
    }
    let sqlite_synchronous = SqliteSynchronous::parse(&raw.synchronous).ok_or_else(|| {
        invalid(
            "store.synchronous".into(),
            "\"full\", \"normal\" or \"off\"".into(),
        )
    })?;
    if raw.max_batch == 0 {
        return Err(invalid("store.max_batch".into(), "at least 1".into()));
    }
    if raw.queue_capacity == 0 {
        return Err(invalid("store.queue_capacity".into(), "at least 1".into()));
    }
    let retention = retention(&raw, invalid)?;
    Ok(StoreConfig {
        retention,
        url: raw.url,
        sqlite_synchronous,
        group_commit: GroupCommitConfig {
            max_batch: raw.max_batch,
            queue_capacity: raw.queue_capacity,
        },
    })
}

/// `body_retention_days`, `key_retention_days`, `delivery_retention_days`
/// (0 = forever), `purge_interval_s`.
fn retention(raw: &RawStore, invalid: &Invalid<'_>) -> Result<Retention, ConfigError> {
    let days = |n: u64| (n > 0).then(|| Duration::from_secs(n.saturating_mul(86_400)));
    let (bodies, keys) = (days(raw.body_retention_days), days(raw.key_retention_days));
    // Keys must outlive bodies, or purging a body could turn a replay of
    // its delivery into a new event.
    let keys_outlive_bodies = match (bodies, keys) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(b), Some(k)) => k >= b,
    };
    if !keys_outlive_bodies {
        return Err(invalid(
            "store.key_retention_days".into(),
            "0 (forever) or at least store.body_retention_days: idempotency keys must outlive the bodies".into(),
        ));
    }
    if raw.purge_interval_s == 0 {
        return Err(invalid(
            "store.purge_interval_s".into(),
            "at least 1".into(),
        ));
    }
    Ok(Retention {
        bodies,
        keys,
        deliveries: days(raw.delivery_retention_days),
        interval: Duration::from_secs(raw.purge_interval_s),
    })
}

fn validate_source(
    file: &std::path::Path,
    name: &str,
    raw: RawSource,
    uses_dev_default: bool,
    invalid: &Invalid<'_>,
) -> Result<SourceConfig, ConfigError> {
    let key = |k: &str| format!("sources.{name}.{k}");
    if !valid_name(name) {
        return Err(invalid(
            format!("sources.{name}"),
            "a source name of lowercase letters, digits, '-' and '_' (it is a URL path segment)"
                .into(),
        ));
    }
    let presets = || {
        let names: Vec<_> = verify::PRESETS
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect();
        format!(
            "one of {} (verify = \"none\" must be explicit)",
            names.join(", ")
        )
    };
    let preset_name = raw
        .verify
        .clone()
        .ok_or_else(|| invalid(key("verify"), presets()))?;
    let build = verify::preset(&preset_name).ok_or_else(|| invalid(key("verify"), presets()))?;

    // Keys that only some presets read: refuse them elsewhere, so a key that
    // would be ignored is an error instead of a false sense of security.
    let hmac_keys = [
        ("header", raw.header.is_some()),
        ("algorithm", raw.algorithm.is_some()),
        ("encoding", raw.encoding.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("id_header", raw.id_header.is_some()),
    ];
    if preset_name != "hmac" {
        if let Some((k, _)) = hmac_keys.iter().find(|(_, set)| *set) {
            return Err(invalid(
                key(k),
                "no such key unless verify = \"hmac\"".into(),
            ));
        }
    }
    // The presets with an asymmetric scheme; every other one uses secrets.
    let takes_public_key = matches!(
        preset_name.as_str(),
        "standard-webhooks" | "svix" | "discord" | "sendgrid"
    );
    if raw.public_key.is_some() && !takes_public_key {
        return Err(invalid(
            key("public_key"),
            format!("no public_key with verify = \"{preset_name}\" (it uses secrets)"),
        ));
    }
    if preset_name == "none" {
        let stray = [
            ("secrets", !raw.secrets.is_empty()),
            ("tolerance_s", raw.tolerance_s.is_some()),
            ("variant", raw.variant.is_some()),
        ];
        if let Some((k, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(invalid(
                key(k),
                "nothing: verify = \"none\" checks no signature".into(),
            ));
        }
    }
    let hmac = if preset_name == "hmac" {
        Some(hmac_params(&raw, &key, invalid)?)
    } else {
        None
    };
    let params = VerifierParams {
        secrets: raw.secrets,
        public_key: raw.public_key,
        tolerance_s: raw.tolerance_s,
        variant: raw.variant,
        hmac,
    };
    let verifier = build(&params).map_err(|source| {
        let k = match &source {
            verify::BuildError::Missing { key, .. } | verify::BuildError::Invalid { key, .. } => {
                *key
            }
        };
        ConfigError::Verifier {
            file: file.to_path_buf(),
            key: key(k),
            source,
        }
    })?;
    let public_url = raw
        .public_url
        .map(|url| public_url(key("public_url"), url, invalid))
        .transpose()?;
    let allow_ips = match raw.allow_ips {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(invalid(
                key("allow_ips"),
                "at least one address or CIDR (leave the key out to accept any address)".into(),
            ))
        }
        Some(list) => Some(cidr_list(&key("allow_ips"), &list, invalid)?),
    };
    Ok(SourceConfig {
        name: name.to_string(),
        preset: preset_name,
        verifier,
        uses_dev_default,
        public_url,
        allow_ips,
        route: SourceRoute::StoreOnly,
    })
}

fn hmac_params(
    raw: &RawSource,
    key: &dyn Fn(&str) -> String,
    invalid: &Invalid<'_>,
) -> Result<HmacParams, ConfigError> {
    let header = raw
        .header
        .clone()
        .filter(|h| http::HeaderName::from_bytes(h.as_bytes()).is_ok())
        .ok_or_else(|| invalid(key("header"), "the name of the signature header".into()))?;
    let algorithm = match raw.algorithm.as_deref().unwrap_or("sha256") {
        "sha256" => HmacAlgorithm::Sha256,
        "sha512" => HmacAlgorithm::Sha512,
        "sha1" => HmacAlgorithm::Sha1,
        _ => {
            return Err(invalid(
                key("algorithm"),
                "\"sha256\", \"sha512\" or \"sha1\"".into(),
            ))
        }
    };
    let encoding = match raw.encoding.as_deref().unwrap_or("hex") {
        "hex" => SignatureEncoding::Hex,
        "base64" => SignatureEncoding::Base64,
        _ => return Err(invalid(key("encoding"), "\"hex\" or \"base64\"".into())),
    };
    if let Some(id) = &raw.id_header {
        if http::HeaderName::from_bytes(id.as_bytes()).is_err() {
            return Err(invalid(key("id_header"), "a header name".into()));
        }
    }
    Ok(HmacParams {
        header,
        algorithm,
        encoding,
        prefix: raw.prefix.clone(),
        id_header: raw.id_header.clone(),
    })
}
