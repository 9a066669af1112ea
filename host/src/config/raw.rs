//! The serde schema of router.toml, exactly as written. Defaults here match
//! the commented `router.toml` at the repository root (a test loads it).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::secret::Secret;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) sources: BTreeMap<String, RawSource>,
    #[serde(default)]
    pub(super) plugins: BTreeMap<String, RawPlugin>,
    #[serde(default)]
    pub(super) sinks: BTreeMap<String, RawSink>,
    #[serde(default)]
    pub(super) runtime: RawRuntime,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    pub(super) admin: Option<RawAdmin>,
}

/// `[admin]`: the operators' listener (absent: none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: String,
    #[serde(default)]
    pub(super) token: Option<Secret>,
}

/// `[delivery]`: the delivery workers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDelivery {
    pub(super) lease_s: u64,
    pub(super) poll_ms: u64,
}

impl Default for RawDelivery {
    fn default() -> Self {
        Self {
            lease_s: 60,
            poll_ms: 1000,
        }
    }
}

/// `[runtime]`: the plugin engine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRuntime {
    pub(super) cache_dir: String,
    pub(super) max_instances: u32,
}

impl Default for RawRuntime {
    fn default() -> Self {
        Self {
            cache_dir: "data/plugin-cache".into(),
            max_instances: 32,
        }
    }
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) listen: String,
    pub(super) max_body_bytes: u64,
    pub(super) tls: Option<RawTls>,
    pub(super) shutdown_timeout_s: u64,
    pub(super) trusted_proxies: Vec<String>,
    pub(super) max_backlog: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 1_048_576,
            tls: None,
            shutdown_timeout_s: 30,
            trusted_proxies: Vec::new(),
            max_backlog: 1_000_000,
        }
    }
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert: String,
    pub(super) key: String,
}

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStore {
    pub(super) url: String,
    pub(super) synchronous: String,
    pub(super) max_batch: usize,
    pub(super) queue_capacity: usize,
    pub(super) body_retention_days: u64,
    pub(super) key_retention_days: u64,
    pub(super) delivery_retention_days: u64,
    pub(super) purge_interval_s: u64,
}

impl Default for RawStore {
    fn default() -> Self {
        Self {
            url: "sqlite://data/hookyard.db".into(),
            synchronous: "full".into(),
            max_batch: 256,
            queue_capacity: 4096,
            body_retention_days: 30,
            key_retention_days: 365,
            delivery_retention_days: 30,
            purge_interval_s: 3600,
        }
    }
}

/// `[sources.NAME]`. One flat table for every preset; validation checks
/// which keys the chosen preset accepts, so a misplaced key is an error that
/// names the preset rather than a silent no-op.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) verify: Option<String>,
    #[serde(default)]
    pub(super) secrets: Vec<Secret>,
    pub(super) public_key: Option<String>,
    pub(super) tolerance_s: Option<u64>,
    pub(super) variant: Option<String>,
    pub(super) header: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) encoding: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) id_header: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) allow_ips: Option<Vec<String>>,
    pub(super) plugin: Option<String>,
    pub(super) sinks: Option<Vec<String>>,
}

/// `[plugins.NAME]`. Limits left out take the runtime's defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) wasm: String,
    #[serde(default)]
    pub(super) sinks: Vec<String>,
    pub(super) fuel: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) memory_mb: Option<u64>,
    pub(super) max_output_bytes: Option<u64>,
    #[serde(default)]
    pub(super) warm_instances: usize,
    /// Strings, numbers or booleans; the plugin sees them all as strings.
    #[serde(default)]
    pub(super) config: BTreeMap<String, toml::Value>,
}

/// `[sinks.NAME]`: one flat table for every type; validation checks which
/// keys the type reads, as for sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) url: Option<String>,
    pub(super) path: Option<String>,
    pub(super) subject: Option<String>,
    pub(super) stream: Option<String>,
    pub(super) exchange: Option<String>,
    pub(super) routing_key: Option<String>,
    pub(super) method: Option<String>,
    /// Values may be credentials (`Authorization`).
    pub(super) headers: Option<BTreeMap<String, Secret>>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) sign_secret: Option<Secret>,
    pub(super) fsync: Option<String>,
    pub(super) rotate_bytes: Option<u64>,
    pub(super) max_concurrency: Option<u64>,
    pub(super) rate_per_s: Option<f64>,
    pub(super) retry: Option<RawRetry>,
}

/// `[sinks.NAME.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub(super) attempts: Option<u32>,
    pub(super) base_ms: Option<u64>,
    pub(super) cap_ms: Option<u64>,
}
