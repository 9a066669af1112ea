//! Source IP allow-lists: a request from outside `allow_ips` gets 403
//! before any other work (no signature check, nothing stored), over IPv4
//! and IPv6; behind a proxy the client comes from `X-Forwarded-For` only
//! when the peer is in `server.trusted_proxies`.

use std::path::Path;

use hookyard_tests::sign::{self, with_headers, Headers};
use hookyard_tests::{client, open_store, sqlite_url, InProcess};
use serde_json::Value;

const SECRET: &str = "allow-list-test-secret";

/// A config with one GitHub source per (name, allow_ips) pair.
fn config(dir: &Path, server_extra: &str, sources: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server_extra}\n[store]\nurl = \"{}\"\n",
        sqlite_url(dir)
    );
    for (name, allow) in sources {
        text.push_str(&format!(
            "\n[sources.{name}]\nverify = \"github\"\nsecrets = [\"{SECRET}\"]\nallow_ips = {allow}\n"
        ));
    }
    text
}

/// Posts a signed GitHub delivery with extra headers; returns status and JSON.
async fn post(url: &str, delivery: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let body = format!(r#"{{"delivery":"{delivery}"}}"#).into_bytes();
    let mut headers: Headers = sign::github(SECRET, delivery, &body);
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let resp = with_headers(client().post(url), &headers)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

fn assert_refused(got: &(u16, Value), client_ip: &str) {
    assert_eq!(got.0, 403, "{}", got.1);
    assert_eq!(got.1["error"]["code"], "ip_not_allowed", "{}", got.1);
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(client_ip), "{message}");
}

#[tokio::test]
async fn only_listed_addresses_reach_a_source_over_ipv4_and_ipv6() {
    let sources = [
        ("office", r#"["192.0.2.0/24", "2001:db8::/32"]"#),
        ("local", r#"["127.0.0.1", "::1"]"#),
        ("v4only", r#"["127.0.0.0/8"]"#),
    ];
    for (bind, client_ip, v4only_allowed) in [
        ("127.0.0.1:0", "127.0.0.1", true),
        ("[::1]:0", "::1", false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let router =
            InProcess::start_bound(tmp.path(), &config(tmp.path(), "", &sources), bind).await;

        assert_refused(
            &post(&router.webhook("office"), "d-office", &[]).await,
            client_ip,
        );
        // Refused before the signature is even looked at: unsigned gets 403 too.
        let unsigned = client()
            .post(router.webhook("office"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(unsigned.status(), 403);

        let local = post(&router.webhook("local"), "d-local", &[]).await;
        assert_eq!(local.0, 200, "{}", local.1);
        let v4only = post(&router.webhook("v4only"), "d-v4only", &[]).await;
        if v4only_allowed {
            assert_eq!(v4only.0, 200, "{}", v4only.1);
        } else {
            assert_refused(&v4only, client_ip);
        }

        let stored = if v4only_allowed { 2 } else { 1 };
        let store = open_store(&sqlite_url(tmp.path())).await;
        assert_eq!(store.count_events().await.unwrap(), stored, "over {bind}");
        store.close().await;
        router.stop().await.unwrap();
    }
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let sources = [("office", r#"["203.0.113.0/24"]"#)];

    let tmp = tempfile::tempdir().unwrap();
    let proxied = config(tmp.path(), "trusted_proxies = [\"127.0.0.1\"]", &sources);
    let router = InProcess::start_with(tmp.path(), &proxied).await;
    let url = router.webhook("office");
    let xff = |v: &'static str| [("X-Forwarded-For", v)];
    let ok = post(&url, "d1", &xff("203.0.113.7")).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    // Entries left of the nearest untrusted hop are the client's own words.
    let spoofed_left = post(&url, "d2", &xff("203.0.113.99, 198.51.100.1")).await;
    assert_refused(&spoofed_left, "198.51.100.1");
    let ok = post(&url, "d3", &xff("198.51.100.1, 203.0.113.8")).await;
    assert_eq!(ok.0, 200, "{}", ok.1);
    // No header: the proxy itself is the client.
    assert_refused(&post(&url, "d4", &[]).await, "127.0.0.1");
    router.stop().await.unwrap();

    // Without trusted proxies the header is ignored: the peer is the client.
    let tmp = tempfile::tempdir().unwrap();
    let direct = config(tmp.path(), "", &sources);
    let router = InProcess::start_with(tmp.path(), &direct).await;
    let refused = post(&router.webhook("office"), "d5", &xff("203.0.113.7")).await;
    assert_refused(&refused, "127.0.0.1");
    router.stop().await.unwrap();
}
