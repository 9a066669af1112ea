//! router.toml: the serde schema, `${NAME}` interpolation, and validation
//! into the typed [`Config`] the router runs on.
//!
//! Loading is three pure steps after reading the file: parse TOML into a
//! value, interpolate `${NAME}` / `${NAME:-default}` inside string values
//! (never in the raw text, so an environment value cannot inject TOML), and
//! deserialize with `deny_unknown_fields` (a typo must not silently disable
//! verification). [`validate`] then turns the raw schema into typed values;
//! `hookyard check` runs exactly the same code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod digest;
mod interpolate;
mod raw;
mod validate;
mod validate_admin;
mod validate_routes;
mod validate_sinks;

pub use digest::SectionDigests;
pub use validate::{
    Config, DeliverySettings, RuntimeSettings, ServerConfig, SourceConfig, TlsConfig,
};
pub use validate_admin::AdminConfig;
pub use validate_routes::{PluginConfig, SourceRoute};
pub use validate_sinks::{
    AmqpSinkConfig, FileSinkConfig, FsyncPolicy, HttpSinkConfig, NatsSinkConfig, RedisSinkConfig,
    RetryPolicy, SinkConfig, SinkKind,
};

/// Why a configuration was refused. Every variant names the file; those
/// about a value name its key path (`sources.github.verify`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration")]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}: not valid TOML")]
    Syntax {
        /// The config file.
        file: PathBuf,
        /// The parser's error (with line and column). Boxed: it is large,
        /// and every `Result<_, ConfigError>` would carry its size.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A key is unknown or its value has the wrong type.
    #[error("{file}: key `{key}`")]
    Schema {
        /// The config file.
        file: PathBuf,
        /// Dotted path of the offending key.
        key: String,
        /// What serde expected.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `${NAME}` names an environment variable that is not set.
    #[error("{file}: key `{key}`: environment variable `{var}` is not set (use ${{{var}:-default}} for a default)")]
    Env {
        /// The config file.
        file: PathBuf,
        /// Dotted path of the key.
        key: String,
        /// The variable.
        var: String,
    },
    /// A source's verifier settings are refused by its preset.
    #[error("{file}: key `{key}`")]
    Verifier {
        /// The config file.
        file: PathBuf,
        /// Dotted path of the key.
        key: String,
        /// The preset's reason (never echoes a secret).
        #[source]
        source: crate::verify::BuildError,
    },
    /// A value is well-typed but not acceptable.
    #[error("{file}: key `{key}`: expected {expected}")]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// Dotted path of the key.
        key: String,
        /// What is expected instead (never echoes a secret).
        expected: String,
    },
}

/// Reads, interpolates and validates the configuration at `path`, taking
/// `${NAME}` values from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let env: BTreeMap<String, String> = std::env::vars().collect();
    parse(path, &text, &|name| env.get(name).cloned())
}

/// Parses and validates configuration text; `lookup` resolves `${NAME}`.
/// Pure (no I/O), so tests and `hookyard check` share it.
pub fn parse(
    path: &Path,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let file = path.to_path_buf();
    let mut value: toml::Value = toml::from_str(text).map_err(|source| ConfigError::Syntax {
        file: file.clone(),
        source: Box::new(source),
    })?;
    let dev_defaults =
        interpolate::interpolate(&mut value, lookup).map_err(|e| ConfigError::Env {
            file: file.clone(),
            key: e.key,
            var: e.var,
        })?;
    let sections = SectionDigests::of(&value);
    let raw: raw::RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::Schema {
            file: file.clone(),
            key,
            source: Box::new(e.into_inner()),
        }
    })?;
    let mut config = validate::validate(file, raw, dev_defaults)?;
    config.sections = sections;
    Ok(config)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_routes;
