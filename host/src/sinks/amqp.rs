//! `type = "amqp"`: publishes each delivery to a RabbitMQ exchange with
//! publisher confirms, `mandatory` set, and counts it delivered once the
//! broker has confirmed it and routed it to at least one queue.
//!
//! The sink declares nothing. An operator declares the exchange, the
//! queues and their bindings; on connecting the sink only checks (passive
//! declare) that the exchange exists, so a missing one is a clear error
//! rather than a closed channel. Each message carries the delivery id as
//! `message_id` (consumers deduplicate on it), is persistent
//! (`delivery_mode = 2`), and has the plugin's headers plus
//! `hookyard-event-id` in its headers table.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind};
use lapin::{ExchangeKind, PublisherConfirm};
use tokio::time::{timeout_at, Instant};

use super::lazy::LazyConnection;
use super::{render, Outbound, SendOutcome, Sink, SinkError};
use crate::config::AmqpSinkConfig;
use crate::store::redact_url;

/// A batch is published whole, then its confirms are awaited together:
/// 256 keeps one batch's bytes modest while amortising the round trip.
const MAX_BATCH: usize = 256;

/// One send, connecting included. Long enough for a busy broker's
/// confirm, short enough that a hung connection frees the worker.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Persistent: the broker writes it to disk in a durable queue.
const PERSISTENT: u8 = 2;

/// A connection and its one publishing channel (confirm mode).
struct Link {
    connection: Connection,
    channel: Channel,
}

/// Publishes to a RabbitMQ exchange with publisher confirms.
pub struct AmqpSink {
    /// The sink's name in router.toml.
    name: String,
    /// The parsed server URL (credentials inside, never shown).
    uri: AMQPUri,
    /// The URL with its password masked, for messages.
    shown_url: String,
    /// The exchange deliveries are published to.
    exchange: ShortString,
    /// Routing key template (`{source}`, `{date}`).
    routing_key: String,
    /// The live connection, made on the first send.
    link: LazyConnection<Link>,
}

impl std::fmt::Debug for AmqpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSink")
            .field("name", &self.name)
            .field("url", &self.shown_url)
            .field("exchange", &self.exchange.as_str())
            .field("routing_key", &self.routing_key)
            .finish_non_exhaustive()
    }
}

impl AmqpSink {
    /// A sink for `config`; no I/O (it connects on the first send).
    pub fn new(name: &str, config: &AmqpSinkConfig) -> Result<Self, SinkError> {
        let invalid = |reason: String| SinkError {
            sink: name.to_string(),
            reason,
        };
        let shown_url = redact_url(&config.url);
        // The parser's message may quote the URL, password included: dropped.
        let uri: AMQPUri = config
            .url
            .parse()
            .map_err(|_| invalid(format!("`{shown_url}` is not a valid amqp:// URL")))?;
        let exchange = ShortString::try_new(config.exchange.as_str())
            .map_err(|_| invalid("exchange name is longer than 255 bytes".into()))?;
        Ok(Self {
            name: name.to_string(),
            uri,
            link: LazyConnection::new(format!("amqp {shown_url}"), SEND_TIMEOUT),
            shown_url,
            exchange,
            routing_key: config.routing_key.clone(),
        })
    }

    /// The connection, made now if there is none.
    async fn link(&self, deadline: Instant) -> Result<Arc<Link>, String> {
        self.link
            .get(
                deadline,
                // The broker may have closed the channel (or the connection)
                // since the last send: then start over.
                |link| link.channel.status().connected(),
                || self.connect(),
            )
            .await
    }

    /// Connects, opens a channel in confirm mode and checks the exchange.
    async fn connect(&self) -> Result<Link, String> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("hookyard sink {}", self.name).into());
        let connection = Connection::connect_uri(self.uri.clone(), properties)
            .await
            .map_err(|e| format!("amqp {}: {e}", self.shown_url))?;
        match self.open_channel(&connection).await {
            Ok(channel) => Ok(Link {
                connection,
                channel,
            }),
            Err(error) => {
                let closing = connection.close(200, "hookyard: giving up".into());
                let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
                Err(error)
            }
        }
    }

    async fn open_channel(&self, connection: &Connection) -> Result<Channel, String> {
        let failed = |e: lapin::Error| format!("amqp {}: {e}", self.shown_url);
        let channel = connection.create_channel().await.map_err(failed)?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        // The kind is not checked by a passive declare.
        let declared = channel
            .exchange_declare(
                self.exchange.clone(),
                ExchangeKind::Direct,
                passive,
                FieldTable::default(),
            )
            .await;
        if let Err(e) = declared {
            if is_not_found(&e) {
                return Err(format!(
                    "exchange `{}` does not exist on {} (an operator declares exchanges, \
                     queues and bindings; the sink never does)",
                    self.exchange, self.shown_url
                ));
            }
            return Err(failed(e));
        }
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(failed)?;
        Ok(channel)
    }

    /// The routing key of `out`: the rendered template, then `.suffix`.
    fn routing_key_for(&self, out: &Outbound) -> Result<ShortString, String> {
        let mut key = render(&self.routing_key, &out.source, out.event_at_ms);
        if let Some(suffix) = &out.subject_suffix {
            key.push('.');
            key.push_str(suffix);
        }
        ShortString::try_new(key).map_err(|_| "routing key is longer than 255 bytes".to_string())
    }

    /// Publishes `out`, answering its confirm future, or the outcome it
    /// already has and whether the channel is now suspect.
    async fn publish(
        &self,
        channel: &Channel,
        out: &Outbound,
    ) -> Result<(String, PublisherConfirm), (SendOutcome, bool)> {
        let permanent = |error| (SendOutcome::Permanent { error }, false);
        let routing_key = self.routing_key_for(out).map_err(permanent)?;
        let properties = properties_for(out).map_err(permanent)?;
        let options = BasicPublishOptions {
            // Unroutable messages come back instead of vanishing.
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let shown_key = routing_key.to_string();
        channel
            .basic_publish(
                self.exchange.clone(),
                routing_key,
                options,
                &out.payload,
                properties,
            )
            .await
            .map(|confirm| (shown_key, confirm))
            .map_err(|e| (SendOutcome::retry(format!("amqp publish: {e}")), true))
    }

    /// The outcome of one confirm (awaited until `deadline`) and whether the
    /// channel is now suspect.
    async fn confirmed(
        &self,
        routing_key: &str,
        confirm: PublisherConfirm,
        deadline: Instant,
    ) -> (SendOutcome, bool) {
        match timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => (SendOutcome::Delivered, false),
            Ok(Ok(Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)))) => (
                SendOutcome::retry(format!(
                    "no queue is bound for routing key `{routing_key}` on exchange `{}`",
                    self.exchange
                )),
                false,
            ),
            Ok(Ok(Confirmation::Nack(None))) => (
                SendOutcome::retry(format!("broker nacked the message for `{routing_key}`")),
                false,
            ),
            Ok(Ok(Confirmation::NotRequested)) => (
                SendOutcome::retry("amqp: channel is not in confirm mode"),
                true,
            ),
            Ok(Err(e)) => (SendOutcome::retry(format!("amqp confirm: {e}")), true),
            Err(_) => (
                SendOutcome::retry(format!(
                    "publish not acknowledged within {} s",
                    SEND_TIMEOUT.as_secs()
                )),
                true,
            ),
        }
    }
}

/// The properties of `out`'s message, or why it can never be sent.
fn properties_for(out: &Outbound) -> Result<BasicProperties, String> {
    let mut headers = FieldTable::default();
    let mut content_type = None;
    for (name, value) in &out.headers {
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(
                ShortString::try_new(value.as_str())
                    .map_err(|_| "content-type is longer than 255 bytes".to_string())?,
            );
        }
        let key = ShortString::try_new(name.as_str())
            .map_err(|_| format!("header name `{name:.40}…` is longer than 255 bytes"))?;
        headers.insert(key, AMQPValue::LongString(LongString::from(value.as_str())));
    }
    // After the plugin's headers, so a plugin cannot forge it.
    headers.insert(
        "hookyard-event-id".into(),
        AMQPValue::LongString(out.event_id.as_str().into()),
    );
    let mut properties = BasicProperties::default()
        .with_message_id(out.id.as_str().into())
        .with_delivery_mode(PERSISTENT)
        .with_headers(headers);
    if let Some(content_type) = content_type {
        properties = properties.with_content_type(content_type);
    }
    Ok(properties)
}

fn is_not_found(e: &lapin::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ProtocolError(amqp) if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
    )
}

#[async_trait::async_trait]
impl Sink for AmqpSink {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + SEND_TIMEOUT;
        let link = match self.link(deadline).await {
            Ok(link) => link,
            Err(error) => {
                return batch
                    .iter()
                    .map(|_| SendOutcome::retry(error.clone()))
                    .collect()
            }
        };
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; batch.len()];
        let mut suspect = false;
        // Publish everything first, then await the confirms together.
        let mut pending = Vec::new();
        for (i, out) in batch.iter().enumerate() {
            if suspect {
                // The channel broke under an earlier message: the broker
                // closes it, so the rest would fail the same way.
                outcomes[i] = Some(SendOutcome::retry(
                    "amqp: channel closed earlier in this batch",
                ));
                continue;
            }
            match timeout_at(deadline, self.publish(&link.channel, out)).await {
                Ok(Ok((routing_key, confirm))) => pending.push((i, routing_key, confirm)),
                Ok(Err((outcome, broken))) => {
                    suspect |= broken;
                    outcomes[i] = Some(outcome);
                }
                Err(_) => {
                    suspect = true;
                    outcomes[i] = Some(SendOutcome::retry(format!(
                        "amqp publish not sent within {} s",
                        SEND_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        let confirms = pending
            .into_iter()
            .map(|(i, routing_key, confirm)| async move {
                let (outcome, broken) = self.confirmed(&routing_key, confirm, deadline).await;
                (i, outcome, broken)
            });
        for (i, outcome, broken) in join_all(confirms).await {
            suspect |= broken;
            outcomes[i] = Some(outcome);
        }
        if suspect {
            // A channel error closes the channel; a timeout leaves it in an
            // unknown state. Either way the next send starts afresh.
            self.link.forget(&link).await;
            let closing = link.connection.close(200, "hookyard: reconnecting".into());
            let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| SendOutcome::retry("amqp: no outcome")))
            .collect()
    }

    async fn close(&self) {
        let link = self.link.take().await;
        if let Some(link) = link {
            let closing = link.connection.close(200, "hookyard: shutting down".into());
            let _ = tokio::time::timeout(SEND_TIMEOUT, closing).await;
        }
    }
}
