//! The queue sinks (NATS JetStream, Redis Streams, RabbitMQ) against the
//! real services on this machine. A service that is unreachable is a
//! printed SKIP, unless `HOOKYARD_TEST_SERVICES=require` (CI), then a
//! failure. Every test works on names of its own (a ULID inside) and
//! removes them afterwards.

use std::time::Duration;

use bytes::Bytes;

use super::{Outbound, SendOutcome};

mod amqp_sink;
mod nats_sink;
mod redis_sink;

/// How long a test waits to reach a service before calling it unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Says that `service` is unreachable: prints SKIP, or panics when
/// `HOOKYARD_TEST_SERVICES=require` (so CI never skips silently).
fn unavailable(service: &str, why: &str) {
    if std::env::var("HOOKYARD_TEST_SERVICES").as_deref() == Ok("require") {
        panic!("{service} unavailable ({why}) and HOOKYARD_TEST_SERVICES=require");
    }
    eprintln!("SKIP: {service} unavailable ({why})");
}

/// A lowercase ULID: unique names for streams, keys, exchanges, queues.
fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A delivery from `source` with `payload`, a fresh id and one header.
fn outbound(source: &str, payload: &str, suffix: Option<&str>) -> Outbound {
    Outbound {
        id: format!("dlv_{}", ulid::Ulid::new()),
        event_id: format!("evt_{}", ulid::Ulid::new()),
        source: source.to_string(),
        event_at_ms: 1_709_251_200_000,
        attempt: 1,
        payload: Bytes::from(payload.to_string()),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-plugin".into(), "test".into()),
        ],
        subject_suffix: suffix.map(str::to_string),
        key: None,
    }
}

/// The error of a `Retry`, or a panic naming what came instead.
fn retry_error(outcome: &SendOutcome) -> &str {
    match outcome {
        SendOutcome::Retry { error, .. } => error,
        other => panic!("expected Retry, got {other:?}"),
    }
}

#[test]
fn build_makes_the_queue_sinks_without_connecting_or_showing_passwords() {
    use crate::config::{
        AmqpSinkConfig, NatsSinkConfig, RedisSinkConfig, RetryPolicy, SinkConfig, SinkKind,
    };
    let kinds = [
        SinkKind::Nats(NatsSinkConfig {
            url: "nats://u:s3cret-pw@127.0.0.1:1".into(),
            subject: "hookyard.{source}".into(),
        }),
        SinkKind::Redis(RedisSinkConfig {
            url: "redis://u:s3cret-pw@127.0.0.1:1/0".into(),
            stream: "hookyard:{source}".into(),
        }),
        SinkKind::Amqp(AmqpSinkConfig {
            url: "amqp://u:s3cret-pw@127.0.0.1:1/%2f".into(),
            exchange: "hookyard".into(),
            routing_key: "{source}".into(),
        }),
    ];
    for kind in kinds {
        let config = SinkConfig {
            name: "q".into(),
            kind,
            max_concurrency: 1,
            rate_per_s: None,
            retry: RetryPolicy::default(),
        };
        // Nothing listens on port 1: building must not try.
        let sink = super::build(&config).expect("built");
        assert!(sink.max_batch() > 1);
        let shown = format!("{sink:?}");
        assert!(shown.contains("u:***@127.0.0.1:1"), "{shown}");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
    }
}
