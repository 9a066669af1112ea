//! `AmqpSink` against RabbitMQ at 127.0.0.1:5672 (guest/guest).

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use super::{outbound, retry_error, unavailable, unique, REACH_TIMEOUT};
use crate::config::AmqpSinkConfig;
use crate::sinks::{AmqpSink, SendOutcome, Sink};

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A channel for setting up and checking, or None (SKIP).
async fn admin() -> Option<(Connection, Channel)> {
    let connect = async {
        let connection = Connection::connect(URL, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        Ok::<_, lapin::Error>((connection, channel))
    };
    match tokio::time::timeout(REACH_TIMEOUT, connect).await {
        Ok(Ok(admin)) => Some(admin),
        Ok(Err(e)) => {
            unavailable("rabbitmq", &format!("127.0.0.1:5672: {e}"));
            None
        }
        Err(_) => {
            unavailable("rabbitmq", "127.0.0.1:5672: timed out");
            None
        }
    }
}

fn sink(url: &str, exchange: &str, routing_key: &str) -> AmqpSink {
    let config = AmqpSinkConfig {
        url: url.into(),
        exchange: exchange.into(),
        routing_key: routing_key.into(),
    };
    AmqpSink::new("rabbit", &config).expect("valid config")
}

/// A topic exchange and a queue bound to `github.#` on it.
async fn topology(channel: &Channel, name: &str) {
    channel
        .exchange_declare(
            name.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare exchange");
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("declare queue");
    channel
        .queue_bind(
            name.into(),
            name.into(),
            "github.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind queue");
}

async fn remove_topology(channel: &Channel, name: &str) {
    let queue = channel
        .queue_delete(name.into(), QueueDeleteOptions::default())
        .await;
    let exchange = channel
        .exchange_delete(name.into(), ExchangeDeleteOptions::default())
        .await;
    if queue.is_err() || exchange.is_err() {
        eprintln!("warning: could not remove test exchange/queue {name}");
    }
}

fn header<'a>(table: &'a FieldTable, name: &str) -> Option<&'a AMQPValue> {
    table.inner().get(&ShortString::from(name))
}

#[tokio::test]
async fn amqp_publishes_confirmed_persistent_messages_with_ids_and_headers() {
    let Some((connection, channel)) = admin().await else {
        return;
    };
    let name = format!("test-{}", unique());
    topology(&channel, &name).await;
    let body_channel = channel.clone();
    let body_name = name.clone();
    let outcome = tokio::spawn(async move {
        let (channel, name) = (body_channel, body_name);
        let sink = sink(URL, &name, "{source}");
        let batch = vec![
            outbound("github", r#"{"n":1}"#, None),
            outbound("github", r#"{"n":2}"#, Some("push")),
            outbound("github", r#"{"n":3}"#, None),
        ];
        assert_eq!(sink.send(&batch).await, vec![SendOutcome::Delivered; 3]);
        sink.close().await;
        let keys = ["github", "github.push", "github"];
        for (out, key) in batch.iter().zip(keys) {
            let got = channel
                .basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic.get")
                .expect("a message");
            let delivery = got.delivery;
            assert_eq!(delivery.data, out.payload.to_vec());
            assert_eq!(delivery.routing_key.as_str(), key);
            let properties = &delivery.properties;
            assert_eq!(
                properties.message_id().as_ref().map(ShortString::as_str),
                Some(out.id.as_str())
            );
            assert_eq!(properties.delivery_mode(), &Some(2));
            assert_eq!(
                properties.content_type().as_ref().map(ShortString::as_str),
                Some("application/json")
            );
            let headers = properties.headers().as_ref().expect("headers");
            let text = |name: &str| match header(headers, name) {
                Some(AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                other => panic!("header {name}: {other:?}"),
            };
            assert_eq!(text("hookyard-event-id"), out.event_id);
            assert_eq!(text("x-plugin"), "test");
        }
    })
    .await;
    remove_topology(&channel, &name).await;
    let _ = connection.close(200, "done".into()).await;
    outcome.expect("test body");
}

#[tokio::test]
async fn amqp_unroutable_message_is_retried_and_the_rest_delivered() {
    let Some((connection, channel)) = admin().await else {
        return;
    };
    let name = format!("test-{}", unique());
    topology(&channel, &name).await;
    let sink = sink(URL, &name, "{source}.in");
    let outcomes = sink
        .send(&[
            outbound("gitlab", "{}", None),
            outbound("github", "{}", None),
        ])
        .await;
    // The returned message must not have broken the channel.
    let again = sink.send(&[outbound("github", "{}", None)]).await;
    sink.close().await;
    remove_topology(&channel, &name).await;
    let _ = connection.close(200, "done".into()).await;
    let error = retry_error(&outcomes[0]);
    assert!(
        error.contains("no queue is bound for routing key `gitlab.in`"),
        "{error}"
    );
    assert_eq!(outcomes[1], SendOutcome::Delivered);
    assert_eq!(again, vec![SendOutcome::Delivered]);
}

#[tokio::test]
async fn amqp_missing_exchange_is_retried_naming_it_without_the_password() {
    if admin().await.is_none() {
        return;
    }
    let exchange = format!("missing-{}", unique());
    let sink = sink(URL, &exchange, "{source}");
    let outcomes = sink
        .send(&[
            outbound("github", "{}", None),
            outbound("github", "{}", None),
        ])
        .await;
    for outcome in &outcomes {
        let error = retry_error(outcome);
        let expected =
            format!("exchange `{exchange}` does not exist on amqp://guest:***@127.0.0.1:5672/%2f");
        assert!(error.starts_with(&expected), "{error}");
        assert!(!error.contains(":guest@"), "{error}");
    }
}

#[tokio::test]
async fn amqp_bad_credentials_and_wrong_port_never_show_the_password() {
    let cases = [
        // Refused by the broker (when it runs): an authentication error.
        "amqp://guest:s3cret-pw@127.0.0.1:5672/%2f",
        // Nothing listens there: a connect error.
        "amqp://guest:s3cret-pw@127.0.0.1:1/%2f",
    ];
    for url in cases {
        let sink = sink(url, "hookyard", "{source}");
        let outcomes = sink.send(&[outbound("github", "{}", None)]).await;
        let error = retry_error(&outcomes[0]);
        assert!(error.contains("amqp://guest:***@127.0.0.1:"), "{error}");
        assert!(!error.contains("s3cret-pw"), "{error}");
    }
}

#[tokio::test]
async fn amqp_channel_error_drops_the_connection_and_the_next_send_reconnects() {
    let Some((connection, channel)) = admin().await else {
        return;
    };
    let name = format!("test-{}", unique());
    topology(&channel, &name).await;
    let sink = sink(URL, &name, "{source}");
    let first = sink.send(&[outbound("github", "{}", None)]).await;
    // The exchange vanishes under a live connection: the broker closes
    // the publishing channel (404) at the next publish.
    channel
        .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("delete exchange");
    let broken = sink
        .send(&[
            outbound("github", "{}", None),
            outbound("github", "{}", None),
        ])
        .await;
    let missing = sink.send(&[outbound("github", "{}", None)]).await;
    topology(&channel, &name).await;
    let healed = sink.send(&[outbound("github", "{}", None)]).await;
    sink.close().await;
    remove_topology(&channel, &name).await;
    let _ = connection.close(200, "done".into()).await;
    assert_eq!(first, vec![SendOutcome::Delivered]);
    assert_eq!(broken.len(), 2);
    for outcome in &broken {
        retry_error(outcome);
    }
    assert!(
        retry_error(&missing[0]).contains("does not exist"),
        "{missing:?}"
    );
    assert_eq!(healed, vec![SendOutcome::Delivered]);
}
