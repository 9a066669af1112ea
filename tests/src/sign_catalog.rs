//! Requests signed the way the catalog's providers sign them (Discord,
//! Square, Zoom, Twitch, Paddle, Linear, Twilio, GitLab, Intercom,
//! Typeform, HubSpot, Mailgun, SendGrid), from SIGNATURES.md, independently
//! of the router's verifiers.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::sign::{hmac256, Headers};

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn header(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

/// The Ed25519 key the tests sign Discord interactions with (fixed seed).
pub fn discord_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// The hex public key of [`discord_key`], as the developer portal shows it.
pub fn discord_public_key_hex() -> String {
    hex::encode(discord_key().verifying_key().as_bytes())
}

/// Discord: Ed25519 over `timestamp + body`, hex in `X-Signature-Ed25519`.
pub fn discord(ts: i64, body: &[u8]) -> Headers {
    let t = ts.to_string();
    let signed = [t.as_bytes(), body].concat();
    vec![
        header(
            "X-Signature-Ed25519",
            hex::encode(discord_key().sign(&signed).to_bytes()),
        ),
        header("X-Signature-Timestamp", t),
    ]
}

/// Square: base64 HMAC-SHA256 of `notification_url + body`.
pub fn square(key: &str, url: &str, body: &[u8]) -> Headers {
    let mac = hmac256(key.as_bytes(), &[url.as_bytes(), body]);
    vec![header("x-square-hmacsha256-signature", B64.encode(mac))]
}

/// Zoom: `x-zm-signature: v0=<hex HMAC(secret, "v0:" + ts + ":" + body)>`.
pub fn zoom(secret: &str, ts: i64, body: &[u8]) -> Headers {
    let t = ts.to_string();
    let mac = hmac256(secret.as_bytes(), &[b"v0:", t.as_bytes(), b":", body]);
    vec![
        header("x-zm-signature", format!("v0={}", hex::encode(mac))),
        header("x-zm-request-timestamp", t),
    ]
}

/// Twitch EventSub: `sha256=<hex HMAC(secret, id + timestamp + body)>`,
/// the timestamp RFC 3339 with nanoseconds.
pub fn twitch(secret: &str, id: &str, unix: i64, kind: &str, body: &[u8]) -> Headers {
    let ts = rfc3339_nanos(unix);
    let mac = hmac256(secret.as_bytes(), &[id.as_bytes(), ts.as_bytes(), body]);
    vec![
        header("Twitch-Eventsub-Message-Id", id),
        header("Twitch-Eventsub-Message-Timestamp", ts),
        header("Twitch-Eventsub-Message-Type", kind),
        header(
            "Twitch-Eventsub-Message-Signature",
            format!("sha256={}", hex::encode(mac)),
        ),
    ]
}

/// Paddle Billing: `Paddle-Signature: ts=<ts>;h1=<hex HMAC(secret, ts + ":" + body)>`.
pub fn paddle(secret: &str, ts: i64, body: &[u8]) -> Headers {
    let t = ts.to_string();
    let mac = hmac256(secret.as_bytes(), &[t.as_bytes(), b":", body]);
    vec![header(
        "Paddle-Signature",
        format!("ts={t};h1={}", hex::encode(mac)),
    )]
}

/// Linear: hex HMAC-SHA256 of the body (which carries `webhookTimestamp`).
pub fn linear(secret: &str, delivery: &str, body: &[u8]) -> Headers {
    let mac = hmac256(secret.as_bytes(), &[body]);
    vec![
        header("Linear-Signature", hex::encode(mac)),
        header("Linear-Delivery", delivery),
        header("Linear-Event", "Issue"),
    ]
}

/// Twilio: base64 HMAC-SHA1(auth token, URL + each form parameter sorted
/// by name as name+value). Returns the headers and the form body.
pub fn twilio(
    token: &str,
    url: &str,
    params: &[(&str, &str)],
    idempotency: &str,
) -> (Headers, Vec<u8>) {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut signed = url.to_string();
    for (name, value) in &sorted {
        signed.push_str(name);
        signed.push_str(value);
    }
    let mac = hmac_sha1(token.as_bytes(), &[signed.as_bytes()]);
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let headers = vec![
        header("X-Twilio-Signature", B64.encode(mac)),
        header("I-Twilio-Idempotency-Token", idempotency),
        header("Content-Type", "application/x-www-form-urlencoded"),
    ];
    (headers, body.into_bytes())
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GitLab: the secret token in clear in `X-Gitlab-Token`.
pub fn gitlab(token: &str, idempotency_key: &str) -> Headers {
    vec![
        header("X-Gitlab-Token", token),
        header("X-Gitlab-Event", "Push Hook"),
        header("Idempotency-Key", idempotency_key),
    ]
}

/// Intercom: `X-Hub-Signature: sha1=<hex HMAC-SHA1(body)>`.
pub fn intercom(secret: &str, body: &[u8]) -> Headers {
    let mac = hmac_sha1(secret.as_bytes(), &[body]);
    vec![header(
        "X-Hub-Signature",
        format!("sha1={}", hex::encode(mac)),
    )]
}

/// Typeform: `Typeform-Signature: sha256=<base64 HMAC-SHA256(body)>`.
pub fn typeform(secret: &str, body: &[u8]) -> Headers {
    let mac = hmac256(secret.as_bytes(), &[body]);
    vec![header(
        "Typeform-Signature",
        format!("sha256={}", B64.encode(mac)),
    )]
}

/// HubSpot v3: base64 HMAC-SHA256(secret, method + uri + body + timestamp ms).
pub fn hubspot(secret: &str, method: &str, uri: &str, body: &[u8], ts_ms: i64) -> Headers {
    let t = ts_ms.to_string();
    let mac = hmac256(
        secret.as_bytes(),
        &[method.as_bytes(), uri.as_bytes(), body, t.as_bytes()],
    );
    vec![
        header("X-HubSpot-Signature-v3", B64.encode(mac)),
        header("X-HubSpot-Request-Timestamp", t),
    ]
}

/// Mailgun: a JSON body whose `signature` object holds timestamp, token and
/// hex HMAC-SHA256(signing key, timestamp + token); the event data is not signed.
pub fn mailgun_body(key: &str, ts: i64, token: &str, event: &str) -> Vec<u8> {
    let t = ts.to_string();
    let mac = hmac256(key.as_bytes(), &[t.as_bytes(), token.as_bytes()]);
    serde_json::json!({
        "signature": { "timestamp": t, "token": token, "signature": hex::encode(mac) },
        "event-data": { "event": event },
    })
    .to_string()
    .into_bytes()
}

/// The P-256 key the tests sign SendGrid events with (fixed scalar).
fn sendgrid_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[9; 32]).expect("a valid scalar")
}

/// The base64 DER (SubjectPublicKeyInfo) public key, as SendGrid's UI shows it.
pub fn sendgrid_public_key() -> String {
    use p256::pkcs8::EncodePublicKey;
    let der = p256::PublicKey::from(sendgrid_key().verifying_key())
        .to_public_key_der()
        .expect("SPKI encoding");
    B64.encode(der.as_bytes())
}

/// SendGrid: base64 DER ECDSA P-256/SHA-256 signature over `timestamp + body`.
pub fn sendgrid(ts: i64, body: &[u8]) -> Headers {
    use p256::ecdsa::signature::Signer as _;
    let t = ts.to_string();
    let signed = [t.as_bytes(), body].concat();
    let signature: p256::ecdsa::Signature = sendgrid_key().sign(&signed);
    vec![
        header(
            "X-Twilio-Email-Event-Webhook-Signature",
            B64.encode(signature.to_der().as_bytes()),
        ),
        header("X-Twilio-Email-Event-Webhook-Timestamp", t),
    ]
}

/// `unix` as RFC 3339 UTC with nanoseconds, as Twitch writes it.
pub fn rfc3339_nanos(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.123456789Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twilio_signs_the_documented_example() {
        let params = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ];
        let (headers, _) = twilio(
            "12345",
            "https://example.com/myapp.php?foo=1&bar=2",
            &params,
            "x",
        );
        assert_eq!(headers[0].1, "L/OH5YylLD5NRKLltdqwSvS0BnU=");
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.123456789Z");
        assert_eq!(
            rfc3339_nanos(1_767_225_570),
            "2025-12-31T23:59:30.123456789Z"
        );
        assert_eq!(rfc3339_nanos(951_782_400), "2000-02-29T00:00:00.123456789Z");
    }
}
