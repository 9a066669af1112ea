//! Requests signed exactly as each provider signs them (independently of
//! the router's verifiers, from the providers' documented schemes).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha512};

/// Headers to send with a body.
pub type Headers = Vec<(String, String)>;

pub(crate) fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` and a delivery GUID.
pub fn github(secret: &str, delivery: &str, body: &[u8]) -> Headers {
    vec![
        (
            "X-Hub-Signature-256".into(),
            format!(
                "sha256={}",
                hex::encode(hmac256(secret.as_bytes(), &[body]))
            ),
        ),
        ("X-GitHub-Delivery".into(), delivery.into()),
        ("X-GitHub-Event".into(), "push".into()),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// Stripe: `Stripe-Signature: t=<ts>,v1=<hex of HMAC(secret, "t.body")>`.
pub fn stripe(secret: &str, ts: i64, body: &[u8]) -> Headers {
    let t = ts.to_string();
    let sig = hex::encode(hmac256(secret.as_bytes(), &[t.as_bytes(), b".", body]));
    vec![("Stripe-Signature".into(), format!("t={t},v1={sig}"))]
}

/// Slack: `v0=<hex of HMAC(secret, "v0:ts:body")>` plus the timestamp header.
pub fn slack(secret: &str, ts: i64, body: &[u8]) -> Headers {
    let t = ts.to_string();
    let sig = hex::encode(hmac256(
        secret.as_bytes(),
        &[b"v0:", t.as_bytes(), b":", body],
    ));
    vec![
        ("X-Slack-Signature".into(), format!("v0={sig}")),
        ("X-Slack-Request-Timestamp".into(), t),
    ]
}

/// Shopify: base64 HMAC of the body and the event id header.
pub fn shopify(secret: &str, event_id: &str, body: &[u8]) -> Headers {
    vec![
        (
            "X-Shopify-Hmac-Sha256".into(),
            B64.encode(hmac256(secret.as_bytes(), &[body])),
        ),
        ("X-Shopify-Event-Id".into(), event_id.into()),
        ("X-Shopify-Topic".into(), "orders/create".into()),
    ]
}

/// Standard Webhooks v1 with header prefix `webhook` or `svix`; the key is
/// the base64-decoded part after `whsec_`.
pub fn standard(prefix: &str, secret: &str, id: &str, ts: i64, body: &[u8]) -> Headers {
    let key = B64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("whsec_ base64");
    let t = ts.to_string();
    let sig = B64.encode(hmac256(
        &key,
        &[id.as_bytes(), b".", t.as_bytes(), b".", body],
    ));
    vec![
        (format!("{prefix}-id"), id.into()),
        (format!("{prefix}-timestamp"), t),
        (format!("{prefix}-signature"), format!("v1,{sig}")),
    ]
}

/// The harness's generic HMAC source: `X-Acme-Signature: v1=<b64 HMAC-SHA512>`.
pub fn acme(secret: &str, delivery: &str, body: &[u8]) -> Headers {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    vec![
        (
            "X-Acme-Signature".into(),
            format!("v1={}", B64.encode(mac.finalize().into_bytes())),
        ),
        ("X-Acme-Delivery".into(), delivery.into()),
    ]
}

/// Adds headers to a request builder.
pub fn with_headers(mut rb: reqwest::RequestBuilder, headers: &Headers) -> reqwest::RequestBuilder {
    for (k, v) in headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    rb
}
