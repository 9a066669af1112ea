//! `type = "nats"`: publishes each delivery to NATS JetStream and counts it
//! delivered once the stream has acknowledged it. The delivery id goes out
//! as `Nats-Msg-Id`, so a retry inside the stream's duplicate window is
//! stored once. The sink never creates streams: an operator creates one
//! that captures the subjects, and until then every publish is retried
//! with an error naming the subject.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::{HeaderMap, HeaderName, HeaderValue, NATS_MESSAGE_ID};
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, Context};
use futures::future::join_all;
use tokio::time::{timeout_at, Instant};

use super::lazy::LazyConnection;
use super::{render, Outbound, SendOutcome, Sink, SinkError};
use crate::config::NatsSinkConfig;
use crate::store::redact_url;

/// A batch is published whole, then its acks are awaited together: 256
/// keeps one batch's bytes modest while amortising the round trip.
const MAX_BATCH: usize = 256;

/// One send, connecting included. Long enough for a busy server's ack,
/// short enough that a hung connection frees the worker for a retry.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes to NATS JetStream with acks.
pub struct NatsSink {
    /// The sink's name in router.toml.
    name: String,
    /// The server URL as configured: may carry credentials, never shown.
    url: String,
    /// The URL with its password masked, for messages.
    shown_url: String,
    /// Subject template (`{source}`, `{date}`).
    subject: String,
    /// The live connection, made on the first send.
    conn: LazyConnection<Context>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("name", &self.name)
            .field("url", &self.shown_url)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// A sink for `config`; no I/O (it connects on the first send).
    pub fn new(name: &str, config: &NatsSinkConfig) -> Result<Self, SinkError> {
        if config.subject.chars().any(char::is_whitespace) {
            return Err(SinkError {
                sink: name.to_string(),
                reason: format!("subject `{}` contains whitespace", config.subject),
            });
        }
        Ok(Self {
            name: name.to_string(),
            url: config.url.clone(),
            shown_url: redact_url(&config.url),
            subject: config.subject.clone(),
            conn: LazyConnection::new(format!("nats {}", redact_url(&config.url)), SEND_TIMEOUT),
        })
    }

    /// The connection, made now if there is none.
    async fn connection(&self, deadline: Instant) -> Result<Arc<Context>, String> {
        let connect = || async {
            let options = async_nats::ConnectOptions::new()
                .name(format!("hookyard sink {}", self.name))
                .connection_timeout(SEND_TIMEOUT);
            let client = options
                .connect(self.url.as_str())
                .await
                .map_err(|e| format!("nats {}: {}", self.shown_url, error_chain(&e)))?;
            Ok(jetstream::ContextBuilder::new()
                .timeout(SEND_TIMEOUT)
                // Wait for an ack slot rather than fail: our own deadline
                // bounds the wait.
                .backpressure_on_inflight(true)
                .build(client))
        };
        // The client reconnects by itself; a broken one is forgotten by `send`.
        self.conn.get(deadline, |_| true, connect).await
    }

    /// The subject of `out`: the rendered template, then `.suffix`.
    fn subject_for(&self, out: &Outbound) -> Result<String, String> {
        let mut subject = render(&self.subject, &out.source, out.event_at_ms);
        if let Some(suffix) = &out.subject_suffix {
            subject.push('.');
            subject.push_str(suffix);
        }
        check_subject(&subject)?;
        Ok(subject)
    }
}

/// The headers of `out` for JetStream, or why it can never be sent.
fn headers_for(out: &Outbound) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &out.headers {
        let name = HeaderName::from_str(name)
            .map_err(|_| format!("header name `{name}` is not valid in NATS"))?;
        // Never echo the value: a plugin may put a credential in it.
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not valid in NATS"))?;
        headers.append(name, value);
    }
    // Set after the plugin's headers so a plugin can neither remove nor
    // forge the idempotency key.
    headers.insert(NATS_MESSAGE_ID, out.id.as_str());
    headers.insert("Hookyard-Event-Id", out.event_id.as_str());
    Ok(headers)
}

/// A publish subject: dot-separated non-empty tokens, no whitespace, no
/// wildcard token (`*`, `>`), which JetStream would never store.
fn check_subject(subject: &str) -> Result<(), String> {
    let bad_token = subject
        .split('.')
        .any(|t| t.is_empty() || t == "*" || t == ">");
    if subject.is_empty() || bad_token || subject.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{subject}` is not a valid NATS subject to publish to"
        ));
    }
    Ok(())
}

/// `e` and its sources, `: `-separated (the NATS errors keep the cause,
/// such as "connection refused", in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl Sink for NatsSink {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome> {
        if batch.is_empty() {
            return Vec::new();
        }
        let deadline = Instant::now() + SEND_TIMEOUT;
        let context = match self.connection(deadline).await {
            Ok(context) => context,
            Err(error) => {
                return batch
                    .iter()
                    .map(|_| SendOutcome::retry(error.clone()))
                    .collect()
            }
        };
        let mut outcomes: Vec<Option<SendOutcome>> = vec![None; batch.len()];
        // Publish everything first, then await the acks together: one
        // round trip for the batch instead of one per message.
        let mut pending = Vec::new();
        let mut suspect = false;
        for (i, out) in batch.iter().enumerate() {
            let prepared = self
                .subject_for(out)
                .and_then(|subject| Ok((subject, headers_for(out)?)));
            let (subject, headers) = match prepared {
                Ok(prepared) => prepared,
                Err(error) => {
                    outcomes[i] = Some(SendOutcome::Permanent { error });
                    continue;
                }
            };
            let message = PublishMessage::build()
                .payload(out.payload.clone())
                .headers(headers);
            match timeout_at(deadline, context.send_publish(subject.clone(), message)).await {
                Ok(Ok(ack)) => pending.push((i, subject, ack)),
                Ok(Err(e)) if e.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    // The server's max_payload will not grow by retrying.
                    outcomes[i] = Some(SendOutcome::Permanent {
                        error: format!("nats publish to `{subject}`: {}", error_chain(&e)),
                    });
                }
                Ok(Err(e)) => {
                    suspect = true;
                    outcomes[i] = Some(SendOutcome::retry(format!(
                        "nats publish to `{subject}`: {}",
                        error_chain(&e)
                    )));
                }
                Err(_) => {
                    suspect = true;
                    outcomes[i] = Some(SendOutcome::retry(format!(
                        "nats publish to `{subject}` not sent within {} s",
                        SEND_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        let acks = pending.into_iter().map(|(i, subject, ack)| async move {
            match timeout_at(deadline, ack).await {
                Ok(Ok(_)) => (i, SendOutcome::Delivered, false),
                Ok(Err(e)) => {
                    // "No stream" and stream errors are answers from a
                    // healthy connection; timeouts and broken pipes are not.
                    let suspect = matches!(
                        e.kind(),
                        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                    );
                    (i, SendOutcome::retry(ack_error(&subject, &e)), suspect)
                }
                Err(_) => (i, SendOutcome::retry(not_acknowledged(&subject)), true),
            }
        });
        for (i, outcome, ack_suspect) in join_all(acks).await {
            suspect |= ack_suspect;
            outcomes[i] = Some(outcome);
        }
        // The client reconnects by itself while it can; one that is not
        // connected after a failure is dropped so that the next send makes
        // a fresh connection and reports why it cannot.
        if suspect && context.client().connection_state() != State::Connected {
            self.conn.forget(&context).await;
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| SendOutcome::retry("nats: no outcome")))
            .collect()
    }

    async fn close(&self) {
        let context = self.conn.take().await;
        if let Some(context) = context {
            // Sends what the client still buffers; acks were already awaited.
            let _ = tokio::time::timeout(SEND_TIMEOUT, context.client().flush()).await;
        }
    }
}

/// Why a publish was not acknowledged, for `last_error`.
fn ack_error(subject: &str, e: &PublishError) -> String {
    match e.kind() {
        PublishErrorKind::StreamNotFound => format!(
            "no JetStream stream captures subject `{subject}` (an operator must create one; \
             the sink never creates streams)"
        ),
        PublishErrorKind::TimedOut => not_acknowledged(subject),
        _ => format!("publish to `{subject}`: {}", error_chain(e)),
    }
}

fn not_acknowledged(subject: &str) -> String {
    format!(
        "publish to `{subject}` not acknowledged within {} s",
        SEND_TIMEOUT.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_subjects_are_checked() {
        assert!(check_subject("hookyard.github.push").is_ok());
        assert!(check_subject("hookyard.a-b_c").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_delivery_id_wins_over_a_plugin_header() {
        let out = Outbound {
            id: "dlv_1".into(),
            event_id: "evt_1".into(),
            source: "s".into(),
            event_at_ms: 0,
            attempt: 1,
            payload: bytes::Bytes::from_static(b"{}"),
            headers: vec![
                ("Nats-Msg-Id".into(), "forged".into()),
                ("x-a".into(), "1".into()),
            ],
            subject_suffix: None,
            key: None,
        };
        let headers = headers_for(&out).expect("valid");
        assert_eq!(
            headers.get(NATS_MESSAGE_ID).map(|v| v.as_str()),
            Some("dlv_1")
        );
        assert_eq!(headers.get("x-a").map(|v| v.as_str()), Some("1"));
        let bad = Outbound {
            headers: vec![("a:b".into(), "1".into())],
            ..out
        };
        assert!(headers_for(&bad).is_err());
    }
}
