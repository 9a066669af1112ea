//! `[sinks.NAME]`, typed: where deliveries go, how hard to push, and how to
//! retry. One flat raw table serves every type; a key the chosen type does
//! not read is an error naming the type, never a silent no-op.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawRetry, RawSink};
use super::validate::Invalid;
use super::validate_routes::{valid_name, NAME_RULE};
use super::ConfigError;
use crate::secret::Secret;

/// One `[sinks.NAME]`, typed.
#[derive(Clone)]
pub struct SinkConfig {
    /// The sink's name in router.toml.
    pub name: String,
    /// Where it delivers.
    pub kind: SinkKind,
    /// Deliveries in flight at once to this sink, per router process.
    pub max_concurrency: usize,
    /// Deliveries started per second at most, per router process.
    pub rate_per_s: Option<f64>,
    /// When to try again, and when to give up.
    pub retry: RetryPolicy,
}

impl fmt::Debug for SinkConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry credentials (amqp://user:password@...): type only.
        f.debug_struct("SinkConfig")
            .field("name", &self.name)
            .field("type", &self.kind.type_name())
            .field("max_concurrency", &self.max_concurrency)
            .field("rate_per_s", &self.rate_per_s)
            .field("retry", &self.retry)
            .finish()
    }
}

/// `[sinks.NAME.retry]`: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first included); after the last, the delivery is dead.
    pub attempts: u32,
    /// Backoff before the second attempt, doubling after each failure.
    pub base: Duration,
    /// The backoff never grows past this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // 12 attempts over roughly half an hour at worst (1 s doubling to
        // the 15 min cap, full jitter halves the expectation): long enough
        // to ride out a deploy or a broker restart, short enough that a
        // dead letter is noticed the same hour.
        Self {
            attempts: 12,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(15 * 60),
        }
    }
}

/// A sink's type and its own settings.
#[derive(Clone)]
pub enum SinkKind {
    /// Forward over HTTP.
    Http(HttpSinkConfig),
    /// Append JSON Lines to a file.
    File(FileSinkConfig),
    /// Publish to NATS JetStream.
    Nats(NatsSinkConfig),
    /// XADD to a Redis stream.
    Redis(RedisSinkConfig),
    /// Publish to a RabbitMQ exchange with publisher confirms.
    Amqp(AmqpSinkConfig),
}

impl SinkKind {
    /// The `type` spelling.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::File(_) => "file",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
            Self::Amqp(_) => "amqp",
        }
    }
}

/// `type = "http"`.
#[derive(Clone)]
pub struct HttpSinkConfig {
    /// Target URL (http or https).
    pub url: String,
    /// POST (default), PUT or PATCH.
    pub method: http::Method,
    /// Extra headers sent with every delivery. Values may be credentials
    /// (`Authorization`), so they are secrets.
    pub headers: Vec<(http::HeaderName, Secret)>,
    /// Whole request timeout; a timeout is retried.
    pub timeout: Duration,
    /// Standard Webhooks signing secret (`whsec_` + base64): when set, every
    /// forward carries `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub sign_secret: Option<Secret>,
}

/// When the file sink fsyncs before counting a delivery done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every batch is fsynced before its deliveries count as done.
    Always,
    /// Written to the OS before done, fsynced about once a second: a power
    /// loss can take the last second, a process crash cannot.
    Batch,
}

/// `type = "file"`.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// Path template (`{source}`, `{date}` = the event's UTC day), resolved
    /// against router.toml's directory.
    pub path: PathBuf,
    /// Durability of a write.
    pub fsync: FsyncPolicy,
    /// Start a new file once the current one would pass this size.
    pub rotate_bytes: Option<u64>,
}

/// `type = "nats"`.
#[derive(Clone)]
pub struct NatsSinkConfig {
    /// Server URL (`nats://host:port`; may carry credentials).
    pub url: String,
    /// Subject template (`{source}`); an action's subject suffix is appended after a dot.
    pub subject: String,
}

/// `type = "redis"`.
#[derive(Clone)]
pub struct RedisSinkConfig {
    /// Server URL (`redis://host:port/db`; may carry credentials).
    pub url: String,
    /// Stream key template (`{source}`).
    pub stream: String,
}

/// `type = "amqp"`.
#[derive(Clone)]
pub struct AmqpSinkConfig {
    /// Server URL (`amqp://user:password@host:port/vhost`).
    pub url: String,
    /// Exchange to publish to.
    pub exchange: String,
    /// Routing key template (`{source}`); an action's subject suffix is appended after a dot.
    pub routing_key: String,
}

/// Default in-flight deliveries per sink type: an HTTP receiver is another
/// team's service and gets a polite number; a file or a broker takes whole
/// batches, so its number is a batch size times the batches in flight.
fn default_concurrency(type_name: &str) -> u64 {
    match type_name {
        "http" => 16,
        _ => 512,
    }
}

pub(super) fn validate_sinks(
    file: &Path,
    raw: BTreeMap<String, RawSink>,
    invalid: &Invalid<'_>,
) -> Result<BTreeMap<String, SinkConfig>, ConfigError> {
    let base = file.parent().unwrap_or_else(|| Path::new("."));
    let mut sinks = BTreeMap::new();
    for (name, sink) in raw {
        if !valid_name(&name) {
            return Err(invalid(format!("sinks.{name}"), NAME_RULE.into()));
        }
        let typed = validate_sink(base, &name, sink, invalid)?;
        sinks.insert(name, typed);
    }
    Ok(sinks)
}

fn validate_sink(
    base: &Path,
    name: &str,
    raw: RawSink,
    invalid: &Invalid<'_>,
) -> Result<SinkConfig, ConfigError> {
    let key = |k: &str| format!("sinks.{name}.{k}");
    let type_name = raw.kind.clone().unwrap_or_default();
    // Which type-specific keys each type reads; any other one set is refused.
    let reads: &[&str] = match type_name.as_str() {
        "http" => &["url", "method", "headers", "timeout_ms", "sign_secret"],
        "file" => &["path", "fsync", "rotate_bytes"],
        "nats" => &["url", "subject"],
        "redis" => &["url", "stream"],
        "amqp" => &["url", "exchange", "routing_key"],
        _ => {
            return Err(invalid(
                key("type"),
                "\"http\", \"file\", \"nats\", \"redis\" or \"amqp\"".into(),
            ))
        }
    };
    let given = [
        ("url", raw.url.is_some()),
        ("path", raw.path.is_some()),
        ("subject", raw.subject.is_some()),
        ("stream", raw.stream.is_some()),
        ("exchange", raw.exchange.is_some()),
        ("routing_key", raw.routing_key.is_some()),
        ("method", raw.method.is_some()),
        ("headers", raw.headers.is_some()),
        ("timeout_ms", raw.timeout_ms.is_some()),
        ("sign_secret", raw.sign_secret.is_some()),
        ("fsync", raw.fsync.is_some()),
        ("rotate_bytes", raw.rotate_bytes.is_some()),
    ];
    for (k, set) in given {
        if set && !reads.contains(&k) {
            return Err(invalid(
                key(k),
                format!("no such key for a sink of type \"{type_name}\""),
            ));
        }
    }
    let max_concurrency = match raw
        .max_concurrency
        .unwrap_or(default_concurrency(&type_name))
    {
        n @ 1..=65_536 => n as usize,
        _ => {
            return Err(invalid(
                key("max_concurrency"),
                "a number from 1 to 65536".into(),
            ))
        }
    };
    let rate_per_s = match raw.rate_per_s {
        Some(r) if !(r.is_finite() && r > 0.0) => {
            return Err(invalid(
                key("rate_per_s"),
                "a positive number of deliveries per second".into(),
            ))
        }
        other => other,
    };
    let retry = validate_retry(name, raw.retry.as_ref(), invalid)?;
    let kind = sink_kind(base, name, &type_name, raw, invalid)?;
    Ok(SinkConfig {
        name: name.to_string(),
        kind,
        max_concurrency,
        rate_per_s,
        retry,
    })
}

fn validate_retry(
    name: &str,
    raw: Option<&RawRetry>,
    invalid: &Invalid<'_>,
) -> Result<RetryPolicy, ConfigError> {
    let defaults = RetryPolicy::default();
    let Some(raw) = raw else {
        return Ok(defaults);
    };
    let key = |k: &str| format!("sinks.{name}.retry.{k}");
    let attempts = raw.attempts.unwrap_or(defaults.attempts);
    if !(1..=1000).contains(&attempts) {
        return Err(invalid(key("attempts"), "a number from 1 to 1000".into()));
    }
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let base_ms = raw.base_ms.unwrap_or(ms(defaults.base));
    let cap_ms = raw.cap_ms.unwrap_or(ms(defaults.cap).max(base_ms));
    if !(1..=86_400_000).contains(&base_ms) {
        return Err(invalid(
            key("base_ms"),
            "a number of milliseconds from 1 to 86400000".into(),
        ));
    }
    if cap_ms < base_ms || cap_ms > 7 * 86_400_000 {
        return Err(invalid(
            key("cap_ms"),
            format!("a number of milliseconds from base_ms ({base_ms}) to 604800000"),
        ));
    }
    Ok(RetryPolicy {
        attempts,
        base: Duration::from_millis(base_ms),
        cap: Duration::from_millis(cap_ms),
    })
}

fn sink_kind(
    base: &Path,
    name: &str,
    type_name: &str,
    raw: RawSink,
    invalid: &Invalid<'_>,
) -> Result<SinkKind, ConfigError> {
    let key = |k: &str| format!("sinks.{name}.{k}");
    let required = |k: &str, value: Option<String>| {
        value.filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid(
                key(k),
                format!("a value (required by type \"{type_name}\")"),
            )
        })
    };
    let url_with = |schemes: &[&str], value: Option<String>| {
        let url = required("url", value)?;
        let scheme_ok = url
            .split_once("://")
            .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if scheme_ok {
            Ok(url)
        } else {
            let schemes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            Err(invalid(
                key("url"),
                format!("a URL starting with {}", schemes.join(" or ")),
            ))
        }
    };
    Ok(match type_name {
        "http" => {
            let url = url_with(&["http", "https"], raw.url)?;
            if url.parse::<http::Uri>().is_err() {
                return Err(invalid(key("url"), "a valid http(s) URL".into()));
            }
            let method = match raw.method.as_deref().unwrap_or("POST") {
                "POST" => http::Method::POST,
                "PUT" => http::Method::PUT,
                "PATCH" => http::Method::PATCH,
                _ => {
                    return Err(invalid(
                        key("method"),
                        "\"POST\", \"PUT\" or \"PATCH\"".into(),
                    ))
                }
            };
            let mut headers = Vec::new();
            for (header, value) in raw.headers.unwrap_or_default() {
                let Ok(parsed) = http::HeaderName::from_bytes(header.as_bytes()) else {
                    return Err(invalid(
                        format!("sinks.{name}.headers.{header}"),
                        "a valid HTTP header name".into(),
                    ));
                };
                if http::HeaderValue::from_str(value.expose()).is_err() {
                    // Never echo the value: it may be a credential.
                    return Err(invalid(
                        format!("sinks.{name}.headers.{header}"),
                        "a header value of visible ASCII".into(),
                    ));
                }
                headers.push((parsed, value));
            }
            let timeout_ms = raw.timeout_ms.unwrap_or(10_000);
            if !(1..=300_000).contains(&timeout_ms) {
                return Err(invalid(
                    key("timeout_ms"),
                    "a number of milliseconds from 1 to 300000".into(),
                ));
            }
            if let Some(secret) = &raw.sign_secret {
                if !valid_standard_webhooks_secret(secret.expose()) {
                    return Err(invalid(
                        key("sign_secret"),
                        "a Standard Webhooks secret: \"whsec_\" followed by base64 of at least 16 bytes"
                            .into(),
                    ));
                }
            }
            SinkKind::Http(HttpSinkConfig {
                url,
                method,
                headers,
                timeout: Duration::from_millis(timeout_ms),
                sign_secret: raw.sign_secret,
            })
        }
        "file" => {
            let path = required("path", raw.path)?;
            let fsync = match raw.fsync.as_deref().unwrap_or("always") {
                "always" => FsyncPolicy::Always,
                "batch" => FsyncPolicy::Batch,
                _ => return Err(invalid(key("fsync"), "\"always\" or \"batch\"".into())),
            };
            if raw.rotate_bytes.is_some_and(|n| n < 4096) {
                return Err(invalid(
                    key("rotate_bytes"),
                    "at least 4096 bytes (leave it out to never rotate)".into(),
                ));
            }
            SinkKind::File(FileSinkConfig {
                path: base.join(path),
                fsync,
                rotate_bytes: raw.rotate_bytes,
            })
        }
        "nats" => SinkKind::Nats(NatsSinkConfig {
            url: url_with(&["nats", "tls"], raw.url)?,
            subject: required("subject", raw.subject)?,
        }),
        "redis" => SinkKind::Redis(RedisSinkConfig {
            url: url_with(&["redis", "rediss"], raw.url)?,
            stream: required("stream", raw.stream)?,
        }),
        _ => SinkKind::Amqp(AmqpSinkConfig {
            url: url_with(&["amqp", "amqps"], raw.url)?,
            exchange: required("exchange", raw.exchange)?,
            routing_key: required("routing_key", raw.routing_key)?,
        }),
    })
}

/// `whsec_` + base64 of at least 16 bytes (the Standard Webhooks format).
fn valid_standard_webhooks_secret(secret: &str) -> bool {
    use base64::Engine as _;
    secret.strip_prefix("whsec_").is_some_and(|b64| {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .is_ok_and(|key| key.len() >= 16)
    })
}
