//! The HTTP sink against a real axum server on 127.0.0.1: headers as the
//! receiver sees them, a signature re-computed here with plain HMAC code,
//! every scripted answer mapped to its outcome; then `Retry-After` parsing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use reqwest::Url;

use super::{one_line, parse_http_date, parse_retry_after, shown_url, HttpSink, MAX_RETRY_AFTER};
use crate::civil::days_from_civil;
use crate::config::{HttpSinkConfig, RetryPolicy, SinkConfig, SinkKind};
use crate::secret::Secret;
use crate::sinks::{build, utc_date, Outbound, SendOutcome, Sink};

const SIGN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HEADER_SECRET: &str = "Bearer hdr-secret-123";
/// Secrets that must appear in no error text.
const NEVER_SHOWN: [&str; 5] = [
    "hdr-secret-123",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "query-secret",
    "userinfo-pw",
    "loc-secret",
];

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// Starts the scripted receiver; answers by path.
async fn receiver() -> (String, Log) {
    let log: Log = Arc::default();
    let recorder = Arc::clone(&log);
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = Arc::clone(&recorder);
            async move {
                let path = uri.path().to_string();
                log.lock().unwrap().push(Recorded {
                    method,
                    path: path.clone(),
                    headers,
                    body,
                });
                answer(&path).await
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

async fn answer(path: &str) -> Response {
    match path {
        "/ok" => (StatusCode::OK, "thanks").into_response(),
        "/unavailable" => {
            let body = format!("down for maintenance\nback soon {}", "x".repeat(400));
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "7")],
                body,
            )
                .into_response()
        }
        "/busy" => {
            let date = http_date(unix_now() + 120);
            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", date)], "").into_response()
        }
        "/garbage-retry-after" => {
            (StatusCode::BAD_GATEWAY, [("retry-after", "soon-ish")], "").into_response()
        }
        "/request-timeout" => StatusCode::REQUEST_TIMEOUT.into_response(),
        "/bad" => (StatusCode::BAD_REQUEST, "missing field `type`").into_response(),
        "/moved" => (
            StatusCode::MOVED_PERMANENTLY,
            [("location", "https://elsewhere.example/x?token=loc-secret")],
        )
            .into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn config(url: String, timeout: Duration) -> HttpSinkConfig {
    HttpSinkConfig {
        url,
        method: http::Method::POST,
        headers: vec![
            (http::header::AUTHORIZATION, Secret::new(HEADER_SECRET)),
            (
                http::HeaderName::from_static("x-custom"),
                Secret::new("hello"),
            ),
        ],
        timeout,
        sign_secret: Some(Secret::new(SIGN_SECRET)),
    }
}

fn outbound(id: &str, payload: &str, headers: &[(&str, &str)]) -> Outbound {
    Outbound {
        id: id.into(),
        event_id: "evt_01TEST".into(),
        source: "github".into(),
        event_at_ms: 1_700_000_000_000,
        attempt: 1,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        subject_suffix: None,
        key: None,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// IMF-fixdate for `secs`, written here rather than borrowed from the sink.
fn http_date(secs: i64) -> String {
    let date = utc_date(secs * 1000);
    let (year, month, day) = (&date[0..4], &date[5..7], &date[8..10]);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let weekdays = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let month = months[month.parse::<usize>().unwrap() - 1];
    let weekday = weekdays[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let t = secs.rem_euclid(86_400);
    format!(
        "{weekday}, {day} {month} {year} {:02}:{:02}:{:02} GMT",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The error text of a failed outcome, checked to carry no secret.
fn error_of(outcome: &SendOutcome) -> &str {
    let error = match outcome {
        SendOutcome::Retry { error, .. } | SendOutcome::Permanent { error } => error.as_str(),
        SendOutcome::Delivered => panic!("expected a failure, got Delivered"),
    };
    for secret in NEVER_SHOWN {
        assert!(!error.contains(secret), "{error:?} leaks {secret}");
    }
    error
}

#[tokio::test]
async fn delivers_with_stable_idempotency_key_custom_headers_and_a_valid_signature() {
    let (base, log) = receiver().await;
    let sink = HttpSink::new(
        "out",
        &config(format!("{base}/ok"), Duration::from_secs(5)),
        4,
    )
    .unwrap();
    let first = outbound(
        "dlv_01AAA",
        r#"{"n":1}"#,
        &[
            ("x-plugin", "p1"),
            ("webhook-id", "forged"),
            ("idempotency-key", "forged"),
            ("host", "evil.example"),
            ("connection", "close"),
            ("x-custom", "plugin-loses"),
        ],
    );
    let second = outbound("dlv_01BBB", "plain text", &[("content-type", "text/plain")]);
    let outcomes = sink.send(&[first.clone(), second.clone()]).await;
    assert_eq!(
        outcomes,
        vec![SendOutcome::Delivered, SendOutcome::Delivered]
    );

    let retry = Outbound {
        attempt: 2,
        ..first.clone()
    };
    assert_eq!(sink.send(&[retry]).await, vec![SendOutcome::Delivered]);

    let requests = log.lock().unwrap().clone();
    assert_eq!(requests.len(), 3);
    let by_id = |id: &str| -> Vec<&Recorded> {
        requests
            .iter()
            .filter(|r| r.headers.get("idempotency-key").unwrap() == id)
            .collect()
    };
    let firsts = by_id("dlv_01AAA");
    assert_eq!(firsts.len(), 2, "both attempts carry the same key");
    for r in &firsts {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/ok");
        assert_eq!(r.body, first.payload);
        assert_eq!(header(&r.headers, "webhook-id"), "dlv_01AAA");
        assert_eq!(header(&r.headers, "x-plugin"), "p1");
        assert_eq!(header(&r.headers, "x-custom"), "hello");
        assert_eq!(r.headers.get_all("x-custom").iter().count(), 1);
        assert_eq!(header(&r.headers, "authorization"), HEADER_SECRET);
        assert_eq!(header(&r.headers, "content-type"), "application/json");
        assert_ne!(header(&r.headers, "host"), "evil.example");
        assert!(header(&r.headers, "user-agent").starts_with("hookyard/"));
        check_signature(&r.headers, &r.body);
    }
    let seconds = by_id("dlv_01BBB");
    assert_eq!(header(&seconds[0].headers, "content-type"), "text/plain");
    assert_eq!(header(&seconds[0].headers, "webhook-id"), "dlv_01BBB");
    check_signature(&seconds[0].headers, &seconds[0].body);
}

/// Re-computes the Standard Webhooks v1 signature from the secret.
fn check_signature(headers: &HeaderMap, body: &[u8]) {
    let id = header(headers, "webhook-id");
    let timestamp = header(headers, "webhook-timestamp");
    let ts: i64 = timestamp.parse().unwrap();
    assert!((unix_now() - ts).abs() < 60, "timestamp {ts} is not now");
    let key = STANDARD.decode(&SIGN_SECRET["whsec_".len()..]).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(header(headers, "webhook-signature"), expected);
}

#[tokio::test]
async fn answers_map_to_delivered_retry_or_permanent() {
    let (base, _log) = receiver().await;
    // Userinfo and a query string: both may hold tokens, neither may show.
    let with_secrets = |path: &str| {
        let base = base.replace("http://", "http://user:userinfo-pw@");
        format!("{base}{path}?token=query-secret")
    };
    let send = |path: &str| {
        let sink = HttpSink::new(
            "out",
            &config(with_secrets(path), Duration::from_secs(5)),
            1,
        )
        .unwrap();
        async move {
            sink.send(&[outbound("dlv_01CCC", "{}", &[])])
                .await
                .remove(0)
        }
    };

    let unavailable = send("/unavailable").await;
    let error = error_of(&unavailable);
    assert!(
        error.starts_with("HTTP 503 Service Unavailable: down for maintenance back soon xxx"),
        "{error}"
    );
    assert!(error.len() < 250, "the body is cut to 200 bytes: {error}");
    assert!(matches!(
        unavailable,
        SendOutcome::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(7)
    ));

    let busy = send("/busy").await;
    assert!(error_of(&busy).starts_with("HTTP 429 Too Many Requests"));
    let SendOutcome::Retry {
        retry_after: Some(wait),
        ..
    } = busy
    else {
        panic!("429 with an HTTP-date: {busy:?}");
    };
    assert!(
        (Duration::from_secs(110)..=Duration::from_secs(121)).contains(&wait),
        "{wait:?}"
    );

    let garbage = send("/garbage-retry-after").await;
    assert!(
        matches!(
            garbage,
            SendOutcome::Retry {
                retry_after: None,
                ..
            }
        ),
        "{garbage:?}"
    );
    let request_timeout = send("/request-timeout").await;
    assert!(
        matches!(request_timeout, SendOutcome::Retry { .. }),
        "{request_timeout:?}"
    );

    let bad = send("/bad").await;
    assert!(matches!(bad, SendOutcome::Permanent { .. }), "{bad:?}");
    assert_eq!(error_of(&bad), "HTTP 400 Bad Request: missing field `type`");

    let moved = send("/moved").await;
    assert!(matches!(moved, SendOutcome::Permanent { .. }), "{moved:?}");
    let error = error_of(&moved);
    assert!(error.starts_with("HTTP 301 Moved Permanently"), "{error}");
    assert!(
        error.contains("not followed") && error.contains("a Location header"),
        "{error}"
    );

    let missing = send("/nowhere").await;
    assert!(
        matches!(missing, SendOutcome::Permanent { .. }),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_is_retried() {
    let (base, _log) = receiver().await;
    let sink = HttpSink::new(
        "out",
        &config(format!("{base}/slow"), Duration::from_millis(300)),
        1,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let outcome = sink
        .send(&[outbound("dlv_01DDD", "{}", &[])])
        .await
        .remove(0);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            outcome,
            SendOutcome::Retry {
                retry_after: None,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(error_of(&outcome), "timed out after 300 ms");
}

#[tokio::test]
async fn a_closed_port_is_a_retried_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://user:userinfo-pw@127.0.0.1:{port}/in?token=query-secret");
    let sink = HttpSink::new("out", &config(url, Duration::from_secs(5)), 1).unwrap();
    let outcome = sink
        .send(&[outbound("dlv_01EEE", "{}", &[])])
        .await
        .remove(0);
    assert!(
        matches!(
            outcome,
            SendOutcome::Retry {
                retry_after: None,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(
        error_of(&outcome),
        format!("connect to 127.0.0.1:{port} failed: connection refused")
    );
}

#[tokio::test]
async fn a_bad_plugin_header_is_permanent_and_build_wires_the_sink() {
    let sink = build(&SinkConfig {
        name: "out".into(),
        kind: SinkKind::Http(config(
            "http://user:userinfo-pw@127.0.0.1:9/in?token=query-secret".into(),
            Duration::from_secs(1),
        )),
        max_concurrency: 8,
        rate_per_s: None,
        retry: RetryPolicy::default(),
    })
    .unwrap();
    assert_eq!(sink.max_batch(), 8);
    let bad = outbound("dlv_01FFF", "{}", &[("x-bad", "line\nbreak")]);
    let outcome = sink.send(&[bad]).await.remove(0);
    assert_eq!(
        outcome,
        SendOutcome::Permanent {
            error: "plugin header `x-bad` has a control character in its value".into()
        }
    );
    // Nothing secret in the sink's Debug either.
    let debug = format!("{sink:?}");
    for secret in NEVER_SHOWN {
        assert!(!debug.contains(secret), "{debug} leaks {secret}");
    }
}

#[test]
fn retry_after_takes_seconds_and_all_three_date_forms() {
    // 1994-11-06T08:49:37Z, the RFC's example date.
    let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
    let thirty = Some(Duration::from_secs(30));
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
        thirty
    );
    assert_eq!(
        parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
        thirty
    );
    assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), thirty);
    // Past dates mean "now"; long waits are capped; garbage is ignored.
    let later = now + Duration::from_secs(3600);
    let date = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert_eq!(parse_retry_after(date, later), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("99999999999999999999999", now),
        Some(MAX_RETRY_AFTER)
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 2994 08:49:37 GMT", now),
        Some(MAX_RETRY_AFTER)
    );
    for garbage in [
        "",
        "soon",
        "-5",
        "1.5",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
    ] {
        assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
    }
}

#[test]
fn rfc_850_two_digit_years_and_civil_days() {
    assert_eq!(
        parse_http_date("Saturday, 28-Nov-26 10:00:00 GMT"),
        parse_http_date("Sat, 28 Nov 2026 10:00:00 GMT")
    );
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2024, 3, 1), 19_783);
}

#[test]
fn shown_urls_drop_userinfo_query_and_fragment() {
    let url = Url::parse("https://user:pw@hooks.example:8443/in/x?token=abc#frag").unwrap();
    assert_eq!(shown_url(&url), "https://hooks.example:8443/in/x");
}

#[test]
fn response_snippets_are_one_line() {
    assert_eq!(
        one_line(b"  down\r\nfor\tmaintenance \xff "),
        "down  for maintenance \u{fffd}"
    );
}
