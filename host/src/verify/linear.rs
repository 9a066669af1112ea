//! `verify = "linear"`: `Linear-Signature: <hex>`, the HMAC-SHA256 of the
//! raw body keyed by the webhook's signing secret.
//!
//! Linear signs no timestamp header; the replay timestamp is
//! `webhookTimestamp` (milliseconds) inside the signed JSON body, so the body
//! is parsed only after the MAC matched, and a trusted body without it is
//! refused because its window cannot be checked. Linear's SDK allows 60 s
//! either way. No idempotency id: SIGNATURES.md names none for Linear, and
//! the `Linear-Delivery` header is not signed, so the caller's digest of the
//! signed body is the safer key.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window_ms, decode_signature, json_object, required_header, BuildError, MacKeys,
    SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "linear";
const HEADER: &str = "Linear-Signature";
const TIMESTAMP_FIELD: &str = "webhookTimestamp";
/// `LinearWebhookClient.verify` allows 60 s.
const DEFAULT_TOLERANCE_S: u64 = 60;

/// The Linear verifier.
#[derive(Debug)]
struct Linear {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `linear` verifier: `secrets` required, `tolerance_s` optional
/// (default 60).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Linear { keys, tolerance_s }))
}

impl Verifier for Linear {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let value = required_header(req.headers, HEADER)?;
        let mac = decode_signature(value, SignatureEncoding::Hex, 32, HEADER)?;
        if !self.keys.matches_any(&[req.body], &[mac]) {
            return Err(VerifyError::Mismatch);
        }
        #[derive(serde::Deserialize)]
        struct Payload {
            #[serde(rename = "webhookTimestamp")]
            webhook_timestamp: Option<serde_json::Number>,
        }
        let ts_ms = json_object::<Payload>(req.body)
            .and_then(|p| p.webhook_timestamp)
            .and_then(|n| n.as_i64())
            .ok_or(VerifyError::MalformedBody {
                field: TIMESTAMP_FIELD,
                reason: "the signed body has no integer webhookTimestamp (ms)",
            })?;
        check_window_ms(ts_ms, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "lin_wh_test";
    const NOW: i64 = 1_767_225_600;

    fn run(body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let sig = hex::encode(hmac_sha256(SECRET.as_bytes(), &[body]));
        let h = headers(&[
            ("Linear-Signature", &sig),
            ("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72"),
        ]);
        check(&*build(&params(&[SECRET])).unwrap(), &h, body, now)
    }

    fn body(ts_ms: i64) -> Vec<u8> {
        format!(r#"{{"action":"create","webhookTimestamp":{ts_ms}}}"#).into_bytes()
    }

    #[test]
    fn valid_has_no_provider_id() {
        let got = run(&body(NOW * 1000), NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "linear",
                provider_id: None
            }
        );
    }

    #[test]
    fn default_window_is_60_s_in_milliseconds() {
        for ts in [(NOW - 60) * 1000, (NOW + 60) * 1000] {
            assert!(run(&body(ts), NOW).is_ok());
        }
        for ts in [
            (NOW - 60) * 1000 - 1,
            (NOW + 60) * 1000 + 1,
            i64::MIN,
            i64::MAX,
        ] {
            assert_eq!(
                run(&body(ts), NOW),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 60 })
            );
        }
    }

    #[test]
    fn signed_body_without_timestamp_is_malformed() {
        for b in [
            &br#"{"action":"create"}"#[..],
            br#"{"webhookTimestamp":"1767225600000"}"#,
            br#"{"webhookTimestamp":1.5}"#,
            br#"[1767225600000]"#,
        ] {
            let got = run(b, NOW);
            assert!(
                matches!(got, Err(VerifyError::MalformedBody { .. })),
                "{got:?}"
            );
        }
        let sig = hex::encode(hmac_sha256(b"other", &[&body(NOW * 1000)]));
        let v = build(&params(&[SECRET])).unwrap();
        let got = check(
            &*v,
            &headers(&[("Linear-Signature", &sig)]),
            &body(NOW * 1000),
            NOW,
        );
        assert_eq!(got, Err(VerifyError::Mismatch));
    }
}
