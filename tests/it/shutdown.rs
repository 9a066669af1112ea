//! Graceful shutdown: on SIGTERM the router stops accepting, still
//! acknowledges the request in flight (after committing it), and exits 0.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use hookyard_tests::{config_toml, open_store, sqlite_url, Router};

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    finishes_in_flight_requests_and_exits_zero(Signal::SIGTERM).await;
}

#[tokio::test]
async fn ctrl_c_finishes_in_flight_requests_and_exits_zero() {
    finishes_in_flight_requests_and_exits_zero(Signal::SIGINT).await;
}

async fn finishes_in_flight_requests_and_exits_zero(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let mut router = Router::start(dir.path(), &config_toml(&sqlite_url(dir.path()), ""), &[]);
    let addr = router.url.strip_prefix("http://").unwrap().to_string();

    // A request whose body is only half sent when SIGTERM arrives. It asks
    // for `100 Continue`, which the router sends only once it has parsed the
    // head and started reading the body: the signal then provably meets a
    // request in flight, not an idle connection that may be closed.
    let body = br#"{"in":"flight","pad":"0123456789"}"#;
    let mut conn = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /webhooks/internal HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let interim = read_interim_response(&mut conn).await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    conn.write_all(&body[..10]).await.unwrap();

    router.signal(signal);

    // New connections are refused while the old one is still served. Polled
    // rather than checked once after a fixed pause: a loaded machine can
    // take longer than that pause to handle the signal.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    conn.write_all(&body[10..]).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut response))
        .await
        .expect("response within 10 s")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"duplicate\":false"), "{response}");

    let status = tokio::task::spawn_blocking(move || {
        let status = router.wait_exit(Duration::from_secs(15));
        (status, router.logs())
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "exit status; logs:\n{}", status.1);

    let store = open_store(&sqlite_url(dir.path())).await;
    assert_eq!(
        store.count_events().await.unwrap(),
        1,
        "the in-flight event was committed"
    );
}

/// Reads one interim response (up to its blank line) within 10 s.
async fn read_interim_response(conn: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut byte))
            .await
            .expect("interim response within 10 s")
            .unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}
