//! `verify = "sendgrid"`: SendGrid's signed Event Webhook, an ECDSA P-256
//! (SHA-256) signature over `X-Twilio-Email-Event-Webhook-Timestamp + body`,
//! base64 DER in `X-Twilio-Email-Event-Webhook-Signature`, checked with the
//! base64 DER (SubjectPublicKeyInfo) public key from SendGrid's settings.
//!
//! The payload ends with `\r\n` and the signature covers it: the body is
//! never trimmed. SendGrid documents no window and its SDK checks none; the
//! timestamp is signed, and 300 s (symmetric) is this router's policy. A
//! delivery is a batch of events, each with its own `sg_event_id`, so there
//! is no single provider id and the caller deduplicates on the body's digest.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::{
    check_window, malformed, parse_unix_seconds, public_key_only, required_header, BuildError,
    Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "sendgrid";
const SIGNATURE_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
const TIMESTAMP_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";
/// SendGrid documents no window; five minutes is the router's default policy.
const DEFAULT_TOLERANCE_S: u64 = 300;
/// A DER P-256 signature is at most 72 bytes, 96 characters of base64;
/// anything longer is refused before decoding.
const MAX_SIGNATURE_B64: usize = 96;

/// The SendGrid verifier (the key is public, so `Debug` may print it).
#[derive(Debug)]
struct SendGrid {
    key: VerifyingKey,
    tolerance_s: u64,
}

/// Builds the `sendgrid` verifier: `public_key` (base64 DER) required,
/// `secrets` refused, `tolerance_s` optional (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let text = public_key_only(params, PRESET, "SendGrid")?;
    let invalid = |reason: &str| BuildError::Invalid {
        preset: PRESET,
        key: "public_key",
        reason: reason.into(),
    };
    // The settings page shows the key as one base64 line; a pasted key may
    // carry line breaks, which are not part of it.
    let compact: String = text.split_ascii_whitespace().collect();
    let der = STANDARD
        .decode(compact)
        .map_err(|_| invalid("expected the verification key as base64 (DER, no PEM armour)"))?;
    let key = VerifyingKey::from_public_key_der(&der)
        .map_err(|_| invalid("not a P-256 public key (SubjectPublicKeyInfo DER)"))?;
    Ok(Arc::new(SendGrid {
        key,
        tolerance_s: params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
    }))
}

impl Verifier for SendGrid {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let ts_text = required_header(req.headers, TIMESTAMP_HEADER)?;
        if signature.len() > MAX_SIGNATURE_B64 {
            return Err(malformed(SIGNATURE_HEADER, "signature is too long"));
        }
        let der = STANDARD
            .decode(signature)
            .map_err(|_| malformed(SIGNATURE_HEADER, "signature is not base64"))?;
        let signature = Signature::from_der(&der)
            .map_err(|_| malformed(SIGNATURE_HEADER, "signature is not a DER ECDSA signature"))?;
        let ts = parse_unix_seconds(ts_text, TIMESTAMP_HEADER)?;
        let message = [ts_text.as_bytes(), req.body].concat();
        self.key
            .verify(&message, &signature)
            .map_err(|_| VerifyError::Mismatch)?;
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;
    use p256::pkcs8::EncodePublicKey as _;

    use super::super::test_support::{check, headers};
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = b"[{\"email\":\"a@example.com\",\"event\":\"delivered\"}]\r\n";

    fn signing_key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn run(ts: i64, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let der = p256::PublicKey::from(signing_key().verifying_key())
            .to_public_key_der()
            .unwrap();
        let p = VerifierParams {
            public_key: Some(STANDARD.encode(der.as_bytes())),
            ..VerifierParams::default()
        };
        let ts = ts.to_string();
        let sig: Signature = signing_key().sign(&[ts.as_bytes(), BODY].concat());
        let h = headers(&[
            (SIGNATURE_HEADER, &STANDARD.encode(sig.to_der().as_bytes())),
            (TIMESTAMP_HEADER, &ts),
        ]);
        check(&*build(&p).unwrap(), &h, body, now)
    }

    #[test]
    fn valid_has_no_provider_id() {
        let got = run(NOW, BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "sendgrid",
                provider_id: None
            }
        );
        let trimmed = &BODY[..BODY.len() - 2];
        assert_eq!(run(NOW, trimmed, NOW), Err(VerifyError::Mismatch));
    }

    #[test]
    fn default_window_is_300_s() {
        for now in [NOW - 300, NOW + 300] {
            assert!(run(NOW, BODY, now).is_ok());
        }
        for now in [NOW - 301, NOW + 301] {
            assert_eq!(
                run(NOW, BODY, now),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn build_refuses_secrets_and_bad_keys() {
        for p in [
            VerifierParams::default(),
            VerifierParams {
                public_key: Some("not base64!".into()),
                ..VerifierParams::default()
            },
            VerifierParams {
                public_key: Some(STANDARD.encode([4u8; 65])),
                ..VerifierParams::default()
            },
            VerifierParams {
                secrets: vec![crate::secret::Secret::new("x")],
                ..VerifierParams::default()
            },
        ] {
            assert!(build(&p).is_err());
        }
    }
}
