//! Sinks: where deliveries go. Each type turns a batch of deliveries into
//! one confirmed send (HTTP 2xx, file written and flushed, JetStream ack,
//! XADD reply, publisher confirm) and says, per delivery, whether it is
//! done, worth retrying, or never going to succeed.
//!
//! Sinks connect lazily and reconnect on failure: a broker that is down at
//! start is a retried delivery, not a router that refuses to start. What a
//! sink does not decide: when to retry, how many at once, how fast. The
//! delivery workers (`crate::deliver`) own that, the same for every type.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::{SinkConfig, SinkKind};

mod amqp;
mod file;
mod file_line;
pub(crate) mod http;
mod lazy;
mod nats;
mod redis;
mod standard_webhooks;
mod template;
#[cfg(test)]
mod tests_queues;

pub use self::redis::RedisSink;
pub use amqp::AmqpSink;
pub use nats::NatsSink;
pub use template::{render, utc_date};

/// One delivery as a sink sends it.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The delivery's id (`dlv_` + ULID): its idempotency key downstream,
    /// the same on every retry and every dead-letter retry of it.
    pub id: String,
    /// The event it came from.
    pub event_id: String,
    /// The event's source (`{source}` in templates).
    pub source: String,
    /// When the event was received, unix milliseconds (`{date}` is its UTC day).
    pub event_at_ms: i64,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The bytes the plugin (or the raw route) chose to send.
    pub payload: Bytes,
    /// Headers or message attributes the plugin set.
    pub headers: Vec<(String, String)>,
    /// Appended to the sink's subject or routing key, after a dot.
    pub subject_suffix: Option<String>,
    /// The plugin's message key, if any.
    pub key: Option<String>,
}

/// What became of one delivery in a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The sink confirmed it.
    Delivered,
    /// It may pass: a connection error, a timeout, 408/429/5xx, a broker nack.
    Retry {
        /// What happened, for the delivery's `last_error` (no secrets).
        error: String,
        /// The sink asked for this wait (HTTP `Retry-After`).
        retry_after: Option<Duration>,
    },
    /// It will not pass by retrying (any other 4xx): dead-lettered at once.
    Permanent {
        /// What happened (no secrets).
        error: String,
    },
}

impl SendOutcome {
    /// A retry at the worker's own backoff (no `Retry-After`): what every
    /// sink answers for a connection error, a timeout or a broker nack.
    pub fn retry(error: impl Into<String>) -> Self {
        Self::Retry {
            error: error.into(),
            retry_after: None,
        }
    }
}

/// A configured sink.
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// The most deliveries one [`Sink::send`] takes (1: one at a time).
    fn max_batch(&self) -> usize;

    /// Sends `batch` and answers one outcome per delivery, in the same
    /// order. `Delivered` only once the sink has confirmed that delivery.
    /// Never panics on a bad server answer; a broken connection is a
    /// `Retry` for every delivery it leaves unconfirmed.
    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome>;

    /// Flushes what is buffered and closes connections (shutdown).
    async fn close(&self) {}
}

/// Why a sink could not be built (no I/O happens here; connecting is lazy).
#[derive(Debug, thiserror::Error)]
#[error("sink `{sink}`: {reason}")]
pub struct SinkError {
    /// The sink's name.
    pub sink: String,
    /// What is wrong (never a secret).
    pub reason: String,
}

/// Builds the sink `config` describes.
pub fn build(config: &SinkConfig) -> Result<Arc<dyn Sink>, SinkError> {
    match &config.kind {
        SinkKind::Http(c) => Ok(Arc::new(http::HttpSink::new(
            &config.name,
            c,
            config.max_concurrency,
        )?)),
        SinkKind::File(c) => Ok(Arc::new(file::FileSink::new(&config.name, c)?)),
        SinkKind::Nats(nats) => Ok(Arc::new(NatsSink::new(&config.name, nats)?)),
        SinkKind::Redis(redis) => Ok(Arc::new(RedisSink::new(&config.name, redis)?)),
        SinkKind::Amqp(amqp) => Ok(Arc::new(AmqpSink::new(&config.name, amqp)?)),
    }
}
