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
//! handshake: `endpoint.url_validation` events are signed like any other and
//! verified here; answering with `plainToken`/`encryptedToken` is the
//! caller's job.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, decode_signature, malformed, parse_unix_seconds, required_header, BuildError,
    MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
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
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let ts_text = required_header(req.headers, TIMESTAMP_HEADER)?;
        let hex = signature
            .strip_prefix("v0=")
            .ok_or(malformed(SIGNATURE_HEADER, "expected v0=<hex>"))?;
        let mac = decode_signature(hex, SignatureEncoding::Hex, 32, SIGNATURE_HEADER)?;
        let ts = parse_unix_seconds(ts_text, TIMESTAMP_HEADER)?;
        let signed: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", req.body];
        if !self.keys.matches_any(&signed, &[mac]) {
            return Err(VerifyError::Mismatch);
        }
        check_window(ts, now_unix, self.tolerance_s)?;
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
}
