//! `verify = "shopify"`: `X-Shopify-Hmac-Sha256`, the base64 HMAC-SHA256 of
//! the raw body keyed by the app's client secret.
//!
//! Shopify's newer "events" deliveries use the same MAC under un-prefixed
//! header names (`shopify-hmac-sha256`, `shopify-event-id`, ...), so both
//! spellings are read; when both signature headers are present the classic
//! `X-` one is the one checked, so a request has exactly one signature. No
//! timestamp is signed: deduplication on the event id is the replay defence.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    decode_signature, id_header, no_tolerance, single_header, BuildError, MacKeys,
    SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "shopify";
const SIGNATURE_HEADER: &str = "X-Shopify-Hmac-Sha256";
const EVENTS_SIGNATURE_HEADER: &str = "shopify-hmac-sha256";
/// Idempotency key candidates, best first: the event id is shared by every
/// retry of one event, the webhook id is the older fallback.
const ID_HEADERS: [&str; 4] = [
    "X-Shopify-Event-Id",
    "X-Shopify-Webhook-Id",
    "shopify-event-id",
    "shopify-webhook-id",
];

/// The Shopify verifier.
#[derive(Debug)]
struct Shopify {
    keys: MacKeys<Hmac<Sha256>>,
}

/// Builds the `shopify` verifier: `secrets` required (several while a client
/// secret is rotated).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    no_tolerance(params, PRESET)?;
    let keys = MacKeys::from_params(params, PRESET)?;
    Ok(Arc::new(Shopify { keys }))
}

impl Verifier for Shopify {
    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let (header, value) = match single_header(req.headers, SIGNATURE_HEADER)? {
            Some(value) => (SIGNATURE_HEADER, value),
            None => match single_header(req.headers, EVENTS_SIGNATURE_HEADER)? {
                Some(value) => (EVENTS_SIGNATURE_HEADER, value),
                None => return Err(VerifyError::MissingHeader(SIGNATURE_HEADER)),
            },
        };
        let mac = decode_signature(value, SignatureEncoding::Base64, 32, header)?;
        if !self.keys.matches_any(&[req.body], &[mac]) {
            return Err(VerifyError::Mismatch);
        }
        Ok(Verified {
            scheme: PRESET,
            provider_id: id_header(req.headers, &ID_HEADERS)?,
        })
    }

    fn sign(&self, body: &[u8], delivery_id: &str, _now_unix: i64) -> Option<super::Signed> {
        use base64::Engine as _;
        let mac = base64::engine::general_purpose::STANDARD.encode(self.keys.sign(&[body]));
        Some(vec![
            (SIGNATURE_HEADER.into(), mac),
            (ID_HEADERS[0].into(), delivery_id.into()),
            ("X-Shopify-Topic".into(), "orders/create".into()),
            ("Content-Type".into(), "application/json".into()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "shpss_test";
    const BODY: &[u8] = br#"{"id":820982911946154508}"#;

    fn b64(secret: &str, body: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), &[body]))
    }

    fn run(pairs: &[(&str, &str)], body: &[u8]) -> Result<Verified, VerifyError> {
        let v = build(&params(&[SECRET])).unwrap();
        check(&*v, &headers(pairs), body, 0)
    }

    #[test]
    fn classic_headers_with_event_id_first() {
        let sig = b64(SECRET, BODY);
        let pairs = [
            ("X-Shopify-Hmac-Sha256", sig.as_str()),
            ("X-Shopify-Webhook-Id", "wh-1"),
            ("X-Shopify-Event-Id", "ev-1"),
        ];
        let got = run(&pairs, BODY).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "shopify",
                provider_id: Some("ev-1".into())
            }
        );
        let got = run(&pairs[..2], BODY).unwrap();
        assert_eq!(got.provider_id.as_deref(), Some("wh-1"));
        assert_eq!(run(&pairs[..1], BODY).unwrap().provider_id, None);
    }

    #[test]
    fn events_headers() {
        let sig = b64(SECRET, BODY);
        let pairs = [
            ("shopify-hmac-sha256", sig.as_str()),
            ("shopify-webhook-id", "wh-2"),
        ];
        assert_eq!(
            run(&pairs, BODY).unwrap().provider_id.as_deref(),
            Some("wh-2")
        );
    }

    #[test]
    fn classic_header_wins_over_events_header() {
        let good = b64(SECRET, BODY);
        let bad = b64("other", BODY);
        let classic_bad = [
            ("X-Shopify-Hmac-Sha256", bad.as_str()),
            ("shopify-hmac-sha256", &good),
        ];
        assert_eq!(run(&classic_bad, BODY), Err(VerifyError::Mismatch));
        let classic_good = [
            ("X-Shopify-Hmac-Sha256", good.as_str()),
            ("shopify-hmac-sha256", &bad),
        ];
        assert!(run(&classic_good, BODY).is_ok());
    }

    #[test]
    fn hex_instead_of_base64_and_repeats_are_malformed() {
        let hex = hex::encode(hmac_sha256(SECRET.as_bytes(), &[BODY]));
        let got = run(&[("X-Shopify-Hmac-Sha256", &hex)], BODY);
        assert!(
            matches!(got, Err(VerifyError::MalformedHeader { .. })),
            "{got:?}"
        );
        let sig = b64(SECRET, BODY);
        let twice = [
            ("shopify-hmac-sha256", sig.as_str()),
            ("shopify-hmac-sha256", &sig),
        ];
        assert!(matches!(
            run(&twice, BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
        let unpadded = sig.trim_end_matches('=');
        let got = run(&[("X-Shopify-Hmac-Sha256", unpadded)], BODY);
        assert!(
            matches!(got, Err(VerifyError::MalformedHeader { .. })),
            "{got:?}"
        );
    }

    #[test]
    fn tampered_missing_rotation() {
        let sig = b64(SECRET, BODY);
        assert_eq!(
            run(&[("X-Shopify-Hmac-Sha256", &sig)], b"{}"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            run(&[], BODY),
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        let v = build(&params(&["shpss_new", SECRET])).unwrap();
        assert!(check(&*v, &headers(&[("X-Shopify-Hmac-Sha256", &sig)]), BODY, 0).is_ok());
    }
}
