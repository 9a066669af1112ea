//! `type = "redis"`: appends each delivery to a Redis stream with `XADD`
//! and counts it delivered once Redis has answered with the entry's id. A
//! batch is one pipeline: one round trip, one reply per entry.
//!
//! Each entry holds the fields `id` (the delivery id: consumers deduplicate
//! on it, since `XADD *` stores a retried entry again), `event_id`,
//! `source`, `payload` (the plugin's bytes, unchanged), `headers` (a JSON
//! array of `[name, value]` pairs, order and repeats kept) and `key` when
//! the plugin set one. Streams are not trimmed: an operator who wants a cap
//! sets it on the consumer side or with `XTRIM`.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use tokio::time::{timeout_at, Instant};

use super::lazy::LazyConnection;
use super::{render, Outbound, SendOutcome, Sink, SinkError};
use crate::config::RedisSinkConfig;
use crate::store::redact_url;

/// One pipeline per batch: 256 entries keep a pipeline's bytes modest while
/// amortising the round trip.
const MAX_BATCH: usize = 256;

/// One send, connecting included. Long enough for a busy server, short
/// enough that a hung connection frees the worker for a retry.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Appends to Redis streams.
pub struct RedisSink {
    /// The sink's name in router.toml.
    name: String,
    /// The parsed server URL (credentials inside, never shown).
    client: Client,
    /// The URL with its password masked, for messages.
    shown_url: String,
    /// Stream key template (`{source}`, `{date}`).
    stream: String,
    /// The live connection, made on the first send. A multiplexed
    /// connection serves concurrent sends.
    conn: LazyConnection<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("name", &self.name)
            .field("url", &self.shown_url)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// A sink for `config`; no I/O (it connects on the first send).
    pub fn new(name: &str, config: &RedisSinkConfig) -> Result<Self, SinkError> {
        let shown_url = redact_url(&config.url);
        // Parsing only; the error text may quote the URL, so it is not kept.
        let client = Client::open(config.url.as_str()).map_err(|_| SinkError {
            sink: name.to_string(),
            reason: format!("`{shown_url}` is not a valid redis:// or rediss:// URL"),
        })?;
        Ok(Self {
            name: name.to_string(),
            client,
            conn: LazyConnection::new(format!("redis {shown_url}"), SEND_TIMEOUT),
            shown_url,
            stream: config.stream.clone(),
        })
    }

    /// The connection, made now if there is none.
    async fn connection(&self, deadline: Instant) -> Result<Arc<MultiplexedConnection>, String> {
        let connect = || async {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(SEND_TIMEOUT))
                .set_response_timeout(Some(SEND_TIMEOUT));
            self.client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| format!("redis {}: {e}", self.shown_url))
        };
        self.conn.get(deadline, |_| true, connect).await
    }
}

/// `out`'s entry as `XADD` arguments after the stream key and `*`.
fn add_entry(pipe: &mut redis::Pipeline, stream: &str, out: &Outbound) {
    let headers = serde_json::to_string(&out.headers).unwrap_or_else(|_| "[]".into());
    let cmd = pipe
        .cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("id")
        .arg(&out.id)
        .arg("event_id")
        .arg(&out.event_id)
        .arg("source")
        .arg(&out.source)
        .arg("payload")
        .arg(out.payload.as_ref())
        .arg("headers")
        .arg(headers);
    if let Some(key) = &out.key {
        cmd.arg("key").arg(key);
    }
}

/// The outcome of one `XADD` reply: an entry id means stored.
fn outcome_of(stream: &str, reply: &Value) -> SendOutcome {
    match reply {
        Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. } => {
            SendOutcome::Delivered
        }
        // WRONGTYPE (the key holds something else), OOM, a replica that is
        // read-only: all things an operator can fix, so worth retrying.
        Value::ServerError(e) => SendOutcome::retry(format!("redis XADD to `{stream}`: {e}")),
        other => SendOutcome::retry(format!(
            "redis XADD to `{stream}`: unexpected reply {other:?}"
        )),
    }
}

#[async_trait::async_trait]
impl Sink for RedisSink {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + SEND_TIMEOUT;
        let conn = match self.connection(deadline).await {
            Ok(conn) => conn,
            Err(error) => {
                return batch
                    .iter()
                    .map(|_| SendOutcome::retry(error.clone()))
                    .collect()
            }
        };
        let streams: Vec<String> = batch
            .iter()
            .map(|out| render(&self.stream, &out.source, out.event_at_ms))
            .collect();
        let mut pipe = redis::pipe();
        // One entry's error reply must not hide the others' ids.
        pipe.ignore_errors();
        for (out, stream) in batch.iter().zip(&streams) {
            add_entry(&mut pipe, stream, out);
        }
        let mut handle = (*conn).clone();
        let replies: Vec<Value> = match timeout_at(deadline, pipe.query_async(&mut handle)).await {
            Ok(Ok(replies)) => replies,
            Ok(Err(e)) => {
                // Unknown whether any entry was stored: all are retried
                // (consumers deduplicate on `id`).
                if e.is_unrecoverable_error() || e.is_io_error() || e.is_timeout() {
                    self.conn.forget(&conn).await;
                }
                let error = format!("redis {}: {e}", self.shown_url);
                return batch
                    .iter()
                    .map(|_| SendOutcome::retry(error.clone()))
                    .collect();
            }
            Err(_) => {
                self.conn.forget(&conn).await;
                let error = format!(
                    "redis {}: XADD not answered within {} s",
                    self.shown_url,
                    SEND_TIMEOUT.as_secs()
                );
                return batch
                    .iter()
                    .map(|_| SendOutcome::retry(error.clone()))
                    .collect();
            }
        };
        streams
            .iter()
            .enumerate()
            .map(|(i, stream)| match replies.get(i) {
                Some(reply) => outcome_of(stream, reply),
                None => SendOutcome::retry(format!("redis XADD to `{stream}`: no reply")),
            })
            .collect()
    }

    async fn close(&self) {
        // Every send awaited its replies; nothing is buffered.
        self.conn.take().await;
    }
}
