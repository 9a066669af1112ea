//! `verify = "mailgun"`: Mailgun's JSON webhooks carry
//! `"signature": {"timestamp", "token", "signature"}` in the body, where
//! `signature` is the hex HMAC-SHA256 of `timestamp + token` keyed by the
//! webhook signing key.
//!
//! **The event data is not covered**: anyone holding one valid signature
//! object can attach any `event-data` to it. This preset authenticates the
//! sender only and gives no integrity, which is why it exists only as an
//! explicit preset. The body must be parsed before verification (the
//! signature is inside it). Replays are bounded by the 300 s window and by
//! deduplication on the `token`, which is the provider id.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, decode_signature, json_object, parse_unix_seconds, BuildError, MacKeys,
    SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "mailgun";
/// The router's default; Mailgun advises a tight window plus token caching.
const DEFAULT_TOLERANCE_S: u64 = 300;
/// Mailgun's tokens are 50 characters; a bound keeps the id column sane.
const MAX_TOKEN_LEN: usize = 256;

/// The Mailgun verifier.
#[derive(Debug)]
struct Mailgun {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `mailgun` verifier: `secrets` (webhook signing keys) required,
/// `tolerance_s` optional (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Mailgun { keys, tolerance_s }))
}

/// The part of the body this preset reads.
#[derive(serde::Deserialize)]
struct Payload {
    signature: Option<SignatureObject>,
}

#[derive(serde::Deserialize)]
struct SignatureObject {
    timestamp: Option<String>,
    token: Option<String>,
    signature: Option<String>,
}

fn bad(field: &'static str, reason: &'static str) -> VerifyError {
    VerifyError::MalformedBody { field, reason }
}

impl Verifier for Mailgun {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let sig = json_object::<Payload>(req.body)
            .and_then(|p| p.signature)
            .ok_or(bad(
                "signature",
                "expected a JSON body with a signature object",
            ))?;
        let ts_text = sig
            .timestamp
            .ok_or(bad("signature.timestamp", "absent or not a string"))?;
        let token = sig
            .token
            .filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
            .ok_or(bad("signature.token", "absent, empty or too long"))?;
        let hex = sig
            .signature
            .ok_or(bad("signature.signature", "absent or not a string"))?;
        let mac = decode_signature(&hex, SignatureEncoding::Hex, 32, "signature")
            .map_err(|_| bad("signature.signature", "expected 64 hex digits"))?;
        let ts = parse_unix_seconds(&ts_text, "signature")
            .map_err(|_| bad("signature.timestamp", "expected unix seconds"))?;
        if !self
            .keys
            .matches_any(&[ts_text.as_bytes(), token.as_bytes()], &[mac])
        {
            return Err(VerifyError::Mismatch);
        }
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: Some(token),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const KEY: &str = "mailgun-signing-key";
    const TOKEN: &str = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";
    const NOW: i64 = 1_767_225_600;

    fn body(ts: i64, event: &str) -> Vec<u8> {
        let t = ts.to_string();
        let sig = hex::encode(hmac_sha256(
            KEY.as_bytes(),
            &[t.as_bytes(), TOKEN.as_bytes()],
        ));
        format!(
            r#"{{"signature":{{"token":"{TOKEN}","timestamp":"{t}","signature":"{sig}"}},"event-data":{{"event":"{event}"}}}}"#
        )
        .into_bytes()
    }

    fn run(body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        check(&*build(&params(&[KEY])).unwrap(), &headers(&[]), body, now)
    }

    #[test]
    fn provider_id_is_the_token() {
        let got = run(&body(NOW, "delivered"), NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "mailgun",
                provider_id: Some(TOKEN.into())
            }
        );
    }

    #[test]
    fn event_data_is_not_covered() {
        // Documented limitation: a valid signature object vouches for any
        // event data attached to it.
        assert!(run(&body(NOW, "anything-at-all"), NOW).is_ok());
    }

    #[test]
    fn default_window_is_300_s() {
        for now in [NOW - 300, NOW + 300] {
            assert!(run(&body(NOW, "delivered"), now).is_ok());
        }
        for now in [NOW - 301, NOW + 301] {
            assert_eq!(
                run(&body(NOW, "delivered"), now),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn malformed_bodies_and_wrong_key() {
        for b in [
            &b"not json"[..],
            br#"{"event-data":{}}"#,
            br#"{"signature":{"token":"t","timestamp":1767225600,"signature":"00"}}"#,
            br#"{"signature":{"token":"","timestamp":"1767225600","signature":"00"}}"#,
            br#"{"signature":{"token":"t","timestamp":"1767225600","signature":"zz"}}"#,
        ] {
            let got = run(b, NOW);
            assert!(
                matches!(got, Err(VerifyError::MalformedBody { .. })),
                "{got:?}"
            );
        }
        let v = build(&params(&["other-key"])).unwrap();
        let got = check(&*v, &headers(&[]), &body(NOW, "delivered"), NOW);
        assert_eq!(got, Err(VerifyError::Mismatch));
    }
}
