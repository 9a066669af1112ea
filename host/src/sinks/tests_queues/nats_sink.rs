//! `NatsSink` against NATS JetStream at 127.0.0.1:4222.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use super::{outbound, retry_error, unavailable, unique, REACH_TIMEOUT};
use crate::config::NatsSinkConfig;
use crate::sinks::{NatsSink, SendOutcome, Sink};

const URL: &str = "nats://127.0.0.1:4222";

/// A JetStream context for setting up and checking, or None (SKIP).
async fn admin() -> Option<jetstream::Context> {
    let connect = async_nats::ConnectOptions::new()
        .connection_timeout(REACH_TIMEOUT)
        .connect(URL);
    match tokio::time::timeout(REACH_TIMEOUT, connect).await {
        Ok(Ok(client)) => Some(jetstream::new(client)),
        Ok(Err(e)) => {
            unavailable("nats", &format!("{URL}: {e}"));
            None
        }
        Err(_) => {
            unavailable("nats", &format!("{URL}: timed out"));
            None
        }
    }
}

fn sink(subject: &str) -> NatsSink {
    let config = NatsSinkConfig {
        url: URL.into(),
        subject: subject.into(),
    };
    NatsSink::new("queue", &config).expect("valid config")
}

#[tokio::test]
async fn nats_publishes_a_batch_with_message_ids_and_dedupes_a_retry() {
    let Some(js) = admin().await else { return };
    let prefix = format!("test-{}", unique());
    let name = prefix.replace('-', "_");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{prefix}.>")],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create stream");
    let body_name = name.clone();
    let outcome = tokio::spawn(async move {
        let name = body_name;
        let sink = sink(&format!("{prefix}.{{source}}"));
        let batch = vec![
            outbound("github", r#"{"n":1}"#, None),
            outbound("github", r#"{"n":2}"#, Some("push")),
            outbound("stripe", r#"{"n":3}"#, None),
        ];
        let outcomes = sink.send(&batch).await;
        assert_eq!(outcomes, vec![SendOutcome::Delivered; 3]);
        // The same delivery again (a retry): JetStream keeps one copy.
        assert_eq!(sink.send(&batch[..1]).await, vec![SendOutcome::Delivered]);
        sink.close().await;

        let js = admin().await.expect("reachable a moment ago");
        let mut stream = js.get_stream(&name).await.expect("stream");
        assert_eq!(stream.info().await.expect("info").state.messages, 3);
        let reader = stream
            .create_consumer(consumer::pull::Config::default())
            .await
            .expect("consumer");
        let mut messages = reader
            .fetch()
            .max_messages(10)
            .messages()
            .await
            .expect("fetch");
        let mut got = Vec::new();
        while let Some(message) = messages.next().await {
            got.push(message.expect("message"));
        }
        assert_eq!(got.len(), 3);
        let subjects = [
            format!("{prefix}.github"),
            format!("{prefix}.github.push"),
            format!("{prefix}.stripe"),
        ];
        for ((message, out), subject) in got.iter().zip(&batch).zip(&subjects) {
            assert_eq!(message.subject.as_str(), subject);
            assert_eq!(message.payload, out.payload);
            let headers = message.headers.as_ref().expect("headers");
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
            assert_eq!(header("Nats-Msg-Id").as_deref(), Some(out.id.as_str()));
            assert_eq!(
                header("Hookyard-Event-Id").as_deref(),
                Some(out.event_id.as_str())
            );
            assert_eq!(header("x-plugin").as_deref(), Some("test"));
        }
    })
    .await;
    js.delete_stream(&name).await.expect("delete stream");
    outcome.expect("test body");
}

#[tokio::test]
async fn nats_subject_without_a_stream_is_retried_naming_it() {
    if admin().await.is_none() {
        return;
    }
    let subject = format!("nostream-{}.{{source}}", unique());
    let sink = sink(&subject);
    let outcomes = sink.send(&[outbound("github", "{}", Some("x"))]).await;
    let error = retry_error(&outcomes[0]);
    let expected = subject.replace("{source}", "github") + ".x";
    assert!(
        error.contains("no JetStream stream captures subject"),
        "{error}"
    );
    assert!(error.contains(&expected), "{error}");
    // The connection is healthy: a second send answers the same way.
    let again = sink.send(&[outbound("github", "{}", None)]).await;
    assert!(retry_error(&again[0]).contains("no JetStream stream"));
}

#[tokio::test]
async fn nats_unreachable_server_is_retried_without_the_password() {
    let config = NatsSinkConfig {
        url: "nats://hook:s3cret-pw@127.0.0.1:1".into(),
        subject: "x.{source}".into(),
    };
    let sink = NatsSink::new("queue", &config).expect("valid config");
    let outcomes = sink
        .send(&[outbound("a", "{}", None), outbound("b", "{}", None)])
        .await;
    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        let error = retry_error(outcome);
        assert!(
            error.starts_with("nats nats://hook:***@127.0.0.1:1"),
            "{error}"
        );
        assert!(!error.contains("s3cret-pw"), "{error}");
    }
}

#[tokio::test]
async fn nats_invalid_subject_suffix_is_permanent() {
    let sink = sink("x.{source}");
    let outcomes = sink.send(&[outbound("a", "{}", Some("bad subject"))]).await;
    // Connecting may fail first when NATS is down; then it is a Retry.
    if let SendOutcome::Permanent { error } = &outcomes[0] {
        assert!(error.contains("not a valid NATS subject"), "{error}");
    } else if admin().await.is_some() {
        panic!("expected Permanent, got {:?}", outcomes[0]);
    }
}
