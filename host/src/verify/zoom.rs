//! `verify = "zoom"`: `x-zm-signature: v0=<hex>`, the HMAC-SHA256 of
//! `"v0:" + x-zm-request-timestamp + ":" + body` keyed by the app's secret
//! token.
//!
//! Zoom documents no replay window; 300 s (symmetric) is this router's
//! policy. The raw body is what is signed: Zoom's own SDK re-serialises the
//! parsed JSON and so refuses genuine bodies with a trailing newline or
//! `\u` escapes, which this preset accepts. Zoom sends no delivery id, so the
//! caller deduplicates on the body's digest.
//!
//! Handshake: a verified `endpoint.url_validation` event is answered with
//! `plainToken` and `encryptedToken` (Zoom re-validates every 72 h) and not
//! stored.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, v0_signer, BuildError, Handshake, MacKeys, Unverified, Verified, Verifier,
    VerifierParams, VerifyError,
};

const PRESET: &str = "zoom";
const SIGNATURE_HEADER: &str = "x-zm-signature";
const TIMESTAMP_HEADER: &str = "x-zm-request-timestamp";
/// Zoom documents no window; five minutes is the router's default policy.
const DEFAULT_TOLERANCE_S: u64 = 300;

/// The Zoom verifier.
#[derive(Debug)]
struct Zoom {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `zoom` verifier: `secrets` required, `tolerance_s` optional
/// (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Zoom { keys, tolerance_s }))
}

impl Verifier for Zoom {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let (_, ts) = v0_signer(&self.keys, req, SIGNATURE_HEADER, TIMESTAMP_HEADER)?;
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }

    /// `endpoint.url_validation`: answer `plainToken` with its HMAC-SHA256
    /// (hex) under the secret that signed this request, which during a
    /// rotation is the one Zoom holds.
    fn sign(&self, body: &[u8], _delivery_id: &str, now_unix: i64) -> Option<super::Signed> {
        Some(super::v0_sign(
            &self.keys,
            body,
            now_unix,
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
        ))
    }

    fn handshake(&self, req: &Unverified<'_>) -> Option<Handshake> {
        #[derive(serde::Deserialize)]
        struct Validation {
            event: String,
            payload: Payload,
        }
        #[derive(serde::Deserialize)]
        struct Payload {
            #[serde(rename = "plainToken")]
            plain_token: String,
        }
        let validation: Validation = serde_json::from_slice(req.body).ok()?;
        if validation.event != "endpoint.url_validation" {
            return None;
        }
        let (key, _) = v0_signer(&self.keys, req, SIGNATURE_HEADER, TIMESTAMP_HEADER).ok()?;
        let plain = validation.payload.plain_token;
        let encrypted = hex::encode(self.keys.tag(key, &[plain.as_bytes()]));
        let body = serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted });
        Some(Handshake {
            content_type: "application/json",
            body: serde_json::to_vec(&body).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "zoom-secret-token";
    const BODY: &[u8] = br#"{"event":"meeting.started","event_ts":1767225570000}"#;
    const NOW: i64 = 1_767_225_600;

    fn run(ts: i64, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let ts = ts.to_string();
        let mac = hmac_sha256(SECRET.as_bytes(), &[b"v0:", ts.as_bytes(), b":", BODY]);
        let sig = format!("v0={}", hex::encode(mac));
        let h = headers(&[("x-zm-signature", &sig), ("x-zm-request-timestamp", &ts)]);
        check(&*build(&params(&[SECRET])).unwrap(), &h, body, now)
    }

    #[test]
    fn valid_has_no_provider_id() {
        let got = run(NOW, BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "zoom",
                provider_id: None
            }
        );
    }

    #[test]
    fn default_window_is_300_s() {
        for now in [NOW - 300, NOW + 300] {
            assert!(run(NOW, BODY, now).is_ok());
        }
        for now in [NOW - 301, NOW + 301] {
            let got = run(NOW, BODY, now);
            assert_eq!(
                got,
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn tampered_and_repeated() {
        assert_eq!(run(NOW, b"{}", NOW), Err(VerifyError::Mismatch));
        let sig = format!("v0={}", "0".repeat(64));
        let twice = headers(&[
            ("x-zm-signature", &sig),
            ("x-zm-signature", &sig),
            ("x-zm-request-timestamp", "1"),
        ]);
        let v = build(&params(&[SECRET])).unwrap();
        assert!(matches!(
            check(&*v, &twice, BODY, NOW),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    /// During a rotation the answer uses the secret that signed the check,
    /// which is the one Zoom holds, not simply the first configured.
    #[test]
    fn url_validation_is_answered_with_the_signing_secret() {
        let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1,"event":"endpoint.url_validation"}"#;
        let ts = NOW.to_string();
        let mac = hmac_sha256(b"new-secret", &[b"v0:", ts.as_bytes(), b":", body]);
        let sig = format!("v0={}", hex::encode(mac));
        let h = headers(&[("x-zm-signature", &sig), ("x-zm-request-timestamp", &ts)]);
        let verifier = build(&params(&["old-secret", "new-secret"])).unwrap();
        let method = http::Method::POST;
        let req = Unverified {
            method: &method,
            url: "https://example.com/webhooks/zoom",
            headers: &h,
            body,
        };
        verifier.verify(&req, NOW).unwrap();
        let answer = verifier.handshake(&req).expect("a handshake");
        let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        let expected = hex::encode(hmac_sha256(b"new-secret", &[b"qgg8vlvZRS6UYooatFL8Aw"]));
        assert_eq!(json["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
        assert_eq!(json["encryptedToken"], expected.as_str());
        // An ordinary event is not a handshake.
        let event_ts = NOW.to_string();
        let mac = hmac_sha256(
            SECRET.as_bytes(),
            &[b"v0:", event_ts.as_bytes(), b":", BODY],
        );
        let sig = format!("v0={}", hex::encode(mac));
        let h = headers(&[
            ("x-zm-signature", &sig),
            ("x-zm-request-timestamp", &event_ts),
        ]);
        let req = Unverified {
            headers: &h,
            body: BODY,
            ..req
        };
        assert!(build(&params(&[SECRET])).unwrap().handshake(&req).is_none());
    }
}
