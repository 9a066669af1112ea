//! HTTPS with rustls when `server.tls` is set, using a self-signed
//! certificate made here.

use hookyard_tests::sign::{self, with_headers};
use hookyard_tests::{config_toml, secrets, sqlite_url, Router};

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let text = config_toml(
        &sqlite_url(dir.path()),
        "tls = { cert = \"cert.pem\", key = \"key.pem\" }",
    );
    let router = Router::start(dir.path(), &text, &[]);
    assert!(
        router.url.starts_with("https://127.0.0.1:"),
        "{}",
        router.url
    );
    let port = router.url.rsplit(':').next().unwrap();

    let client = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let body = br#"{"over":"tls"}"#;
    let url = format!("https://localhost:{port}/webhooks/github");
    let headers = sign::github(secrets::GITHUB, "tls-1", body);
    let resp = with_headers(client.post(&url), &headers)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ack: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(ack["duplicate"], false);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = hookyard_tests::client()
        .post(format!("http://127.0.0.1:{port}/webhooks/github"))
        .body("x")
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP must not be served on the TLS port"
    );
}

#[tokio::test]
async fn an_unreadable_certificate_fails_start_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_toml(
        &sqlite_url(dir.path()),
        "tls = { cert = \"missing.pem\", key = \"key.pem\" }",
    );
    std::fs::write(dir.path().join("router.toml"), &text).unwrap();
    let out = std::process::Command::new(hookyard_tests::process::bin())
        .args(["--config", "router.toml", "serve"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("setting up TLS") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}
