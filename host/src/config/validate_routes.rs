//! `[plugins.*]` and each source's route (a plugin, a list
//! of sinks, or neither), typed, with every cross-reference checked: a
//! route or grant that names something undefined is a config error, never
//! an event that fails at 3 a.m.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::RawPlugin;
use super::validate::Invalid;
use super::validate_sinks::SinkConfig;
use super::ConfigError;
use crate::plugin::Limits;

/// One `[plugins.NAME]`, typed.
#[derive(Clone)]
pub struct PluginConfig {
    /// The plugin's name in router.toml.
    pub name: String,
    /// The component file, resolved against the config file's directory.
    pub wasm: PathBuf,
    /// The only sinks its actions may name.
    pub sinks: Vec<String>,
    /// Per-event limits.
    pub limits: Limits,
    /// Idle instances kept for reuse (0: a fresh instance per event).
    pub warm_instances: usize,
    /// The plugin's own settings (its `config` import). May hold secrets,
    /// so `Debug` shows only the keys.
    pub config: Arc<BTreeMap<String, String>>,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginConfig")
            .field("name", &self.name)
            .field("wasm", &self.wasm)
            .field("sinks", &self.sinks)
            .field("limits", &self.limits)
            .field("warm_instances", &self.warm_instances)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Where a source's stored events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRoute {
    /// Through this plugin, which picks sinks among those it was granted.
    Plugin(String),
    /// The raw event, as received, to each of these sinks.
    Sinks(Vec<String>),
    /// Nowhere: events are stored (and can be replayed later) only.
    StoreOnly,
}

/// Names of plugins, sinks and sources share one shape: they appear in
/// URLs, subjects and file paths.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

pub(super) const NAME_RULE: &str = "a name of lowercase letters, digits, '-' and '_'";

pub(super) fn validate_plugins(
    file: &Path,
    raw: BTreeMap<String, RawPlugin>,
    sinks: &BTreeMap<String, SinkConfig>,
    invalid: &Invalid<'_>,
) -> Result<BTreeMap<String, PluginConfig>, ConfigError> {
    let base = file.parent().unwrap_or_else(|| Path::new("."));
    let mut plugins = BTreeMap::new();
    for (name, plugin) in raw {
        if !valid_name(&name) {
            return Err(invalid(format!("plugins.{name}"), NAME_RULE.into()));
        }
        let typed = validate_plugin(base, &name, plugin, sinks, invalid)?;
        plugins.insert(name, typed);
    }
    Ok(plugins)
}

fn validate_plugin(
    base: &Path,
    name: &str,
    raw: RawPlugin,
    sinks: &BTreeMap<String, SinkConfig>,
    invalid: &Invalid<'_>,
) -> Result<PluginConfig, ConfigError> {
    let key = |k: &str| format!("plugins.{name}.{k}");
    if raw.wasm.is_empty() {
        return Err(invalid(
            key("wasm"),
            "the path of the plugin's .wasm component".into(),
        ));
    }
    check_sinks_exist(&key("sinks"), &raw.sinks, sinks, invalid)?;
    let defaults = Limits::default();
    let ranged = |k: &str, value: Option<u64>, min: u64, max: u64, default: u64| {
        let v = value.unwrap_or(default);
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(key(k), format!("a number from {min} to {max}")))
        }
    };
    let fuel = ranged("fuel", raw.fuel, 1, u64::MAX, defaults.fuel)?;
    let default_ms = u64::try_from(defaults.timeout.as_millis()).unwrap_or(u64::MAX);
    let timeout_ms = ranged("timeout_ms", raw.timeout_ms, 1, 60_000, default_ms)?;
    let memory_mb = ranged(
        "memory_mb",
        raw.memory_mb,
        1,
        4096,
        (defaults.memory_bytes >> 20) as u64,
    )?;
    let max_output = ranged(
        "max_output_bytes",
        raw.max_output_bytes,
        1,
        1 << 30,
        defaults.max_output_bytes as u64,
    )?;
    if raw.warm_instances > 64 {
        return Err(invalid(
            key("warm_instances"),
            "a number from 0 to 64".into(),
        ));
    }
    let mut config = BTreeMap::new();
    for (k, value) in raw.config {
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(invalid(
                    format!("plugins.{name}.config.{k}"),
                    "a string, number or boolean (the plugin reads strings)".into(),
                ))
            }
        };
        config.insert(k, text);
    }
    Ok(PluginConfig {
        name: name.to_string(),
        wasm: base.join(&raw.wasm),
        sinks: raw.sinks,
        limits: Limits {
            fuel,
            timeout: Duration::from_millis(timeout_ms),
            // Bounded above by 4096 MiB, so these fit any 64-bit usize.
            memory_bytes: (memory_mb as usize) << 20,
            max_output_bytes: max_output as usize,
        },
        warm_instances: raw.warm_instances,
        config: Arc::new(config),
    })
}

/// A source's route from its `plugin` and `sinks` keys.
pub(super) fn source_route(
    name: &str,
    plugin: Option<String>,
    sink_names: Option<Vec<String>>,
    plugins: &BTreeMap<String, PluginConfig>,
    sinks: &BTreeMap<String, SinkConfig>,
    invalid: &Invalid<'_>,
) -> Result<SourceRoute, ConfigError> {
    let key = |k: &str| format!("sources.{name}.{k}");
    match (plugin, sink_names) {
        (Some(_), Some(_)) => Err(invalid(
            key("sinks"),
            "either `plugin` or `sinks`, not both (a plugin picks its sinks from those it is granted)"
                .into(),
        )),
        (Some(plugin), None) => {
            if plugins.contains_key(&plugin) {
                Ok(SourceRoute::Plugin(plugin))
            } else {
                Err(invalid(key("plugin"), defined("plugin", plugins.keys())))
            }
        }
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(invalid(
                    key("sinks"),
                    "at least one sink (leave the key out to only store events)".into(),
                ));
            }
            check_sinks_exist(&key("sinks"), &list, sinks, invalid)?;
            Ok(SourceRoute::Sinks(list))
        }
        (None, None) => Ok(SourceRoute::StoreOnly),
    }
}

fn check_sinks_exist(
    key: &str,
    names: &[String],
    sinks: &BTreeMap<String, SinkConfig>,
    invalid: &Invalid<'_>,
) -> Result<(), ConfigError> {
    for (i, sink) in names.iter().enumerate() {
        if !sinks.contains_key(sink) {
            return Err(invalid(
                format!("{key}[{i}]"),
                defined("sink", sinks.keys()),
            ));
        }
    }
    Ok(())
}

/// "a sink defined in router.toml (one of ...)".
fn defined<'a>(what: &str, names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    if names.is_empty() {
        format!("a {what} defined in [{what}s.NAME] (none is defined)")
    } else {
        format!(
            "a {what} defined in [{what}s.NAME]: one of {}",
            names.join(", ")
        )
    }
}
