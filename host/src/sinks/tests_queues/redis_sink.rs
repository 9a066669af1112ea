//! `RedisSink` against Redis at 127.0.0.1:6379.

use redis::aio::MultiplexedConnection;
use redis::streams::StreamRangeReply;
use redis::Value;

use super::{outbound, retry_error, unavailable, unique, REACH_TIMEOUT};
use crate::config::RedisSinkConfig;
use crate::sinks::{RedisSink, SendOutcome, Sink};

const URL: &str = "redis://127.0.0.1:6379/";

/// A connection for setting up and checking, or None (SKIP).
async fn admin() -> Option<MultiplexedConnection> {
    let client = redis::Client::open(URL).expect("valid URL");
    let connect = client.get_multiplexed_async_connection();
    match tokio::time::timeout(REACH_TIMEOUT, connect).await {
        Ok(Ok(conn)) => Some(conn),
        Ok(Err(e)) => {
            unavailable("redis", &format!("{URL}: {e}"));
            None
        }
        Err(_) => {
            unavailable("redis", &format!("{URL}: timed out"));
            None
        }
    }
}

fn sink(url: &str, stream: &str) -> RedisSink {
    let config = RedisSinkConfig {
        url: url.into(),
        stream: stream.into(),
    };
    RedisSink::new("streams", &config).expect("valid config")
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

async fn delete(conn: &mut MultiplexedConnection, keys: &[String]) {
    let deleted: redis::RedisResult<i64> = redis::cmd("DEL").arg(keys).query_async(conn).await;
    if let Err(e) = deleted {
        eprintln!("warning: could not delete test keys {keys:?}: {e}");
    }
}

#[tokio::test]
async fn redis_xadds_a_batch_in_order_with_its_fields() {
    let Some(mut conn) = admin().await else {
        return;
    };
    let prefix = format!("test-{}", unique());
    let key = format!("{prefix}-github");
    let sink = sink(URL, &format!("{prefix}-{{source}}"));
    let mut batch = vec![
        outbound("github", r#"{"n":1}"#, None),
        outbound("github", r#"{"n":2}"#, None),
        outbound("github", "\u{0}\u{ff}binary", None),
    ];
    batch[1].key = Some("customer-7".into());
    let outcomes = sink.send(&batch).await;
    let reply: redis::RedisResult<StreamRangeReply> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await;
    delete(&mut conn, std::slice::from_ref(&key)).await;
    assert_eq!(outcomes, vec![SendOutcome::Delivered; 3]);
    let entries = reply.expect("XRANGE").ids;
    assert_eq!(entries.len(), 3);
    for (entry, out) in entries.iter().zip(&batch) {
        assert_eq!(text(entry.map.get("id")), out.id);
        assert_eq!(text(entry.map.get("event_id")), out.event_id);
        assert_eq!(text(entry.map.get("source")), "github");
        match entry.map.get("payload") {
            Some(Value::BulkString(bytes)) => assert_eq!(bytes.as_slice(), &out.payload[..]),
            other => panic!("payload: {other:?}"),
        }
        let headers: Vec<(String, String)> =
            serde_json::from_str(&text(entry.map.get("headers"))).expect("headers JSON");
        assert_eq!(headers, out.headers);
        match &out.key {
            Some(k) => assert_eq!(&text(entry.map.get("key")), k),
            None => assert!(!entry.map.contains_key("key")),
        }
    }
}

#[tokio::test]
async fn redis_error_reply_fails_only_its_own_entry() {
    let Some(mut conn) = admin().await else {
        return;
    };
    let prefix = format!("test-{}", unique());
    let keys = [format!("{prefix}-good"), format!("{prefix}-bad")];
    // A string where a stream should be: XADD answers WRONGTYPE.
    let _: () = redis::cmd("SET")
        .arg(&keys[1])
        .arg("not a stream")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let sink = sink(URL, &format!("{prefix}-{{source}}"));
    let outcomes = sink
        .send(&[outbound("good", "{}", None), outbound("bad", "{}", None)])
        .await;
    delete(&mut conn, &keys).await;
    assert_eq!(outcomes[0], SendOutcome::Delivered);
    let error = retry_error(&outcomes[1]);
    assert!(
        error.contains(&keys[1]) && error.contains("WRONGTYPE"),
        "{error}"
    );
}

#[tokio::test]
async fn redis_wrong_port_is_retried_with_a_connect_error_and_no_password() {
    let sink = sink("redis://:s3cret-pw@127.0.0.1:1/", "x-{source}");
    let outcomes = sink
        .send(&[outbound("a", "{}", None), outbound("b", "{}", None)])
        .await;
    assert_eq!(outcomes.len(), 2);
    for outcome in &outcomes {
        let error = retry_error(outcome);
        assert!(
            error.starts_with("redis redis://:***@127.0.0.1:1/"),
            "{error}"
        );
        assert!(error.to_lowercase().contains("refused"), "{error}");
        assert!(!error.contains("s3cret-pw"), "{error}");
    }
}
