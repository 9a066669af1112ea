//! `verify = "discord"`: interactions endpoints, an Ed25519 signature (hex
//! in `X-Signature-Ed25519`) over `X-Signature-Timestamp + body`, checked
//! with the application's hex public key.
//!
//! Discord probes an endpoint with bad signatures and drops it if they are
//! accepted, so every failure here is an error (a wrong signature of the
//! right shape is a mismatch, 401). Discord documents no window and its own
//! library checks none; the timestamp is signed, and 300 s (symmetric) is this
//! router's policy. Interactions carry no delivery id in the scheme, so the
//! caller deduplicates on the body's digest.
//!
//! handshake: a PING (`"type": 1`) is signed and verified here like any other
//! interaction; answering `{"type":1}` is the caller's job.

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};

use super::{
    check_window, decode_signature, parse_unix_seconds, public_key_only, required_header,
    BuildError, Handshake, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams,
    VerifyError,
};

const PRESET: &str = "discord";
const SIGNATURE_HEADER: &str = "X-Signature-Ed25519";
const TIMESTAMP_HEADER: &str = "X-Signature-Timestamp";
/// Discord documents no window; five minutes is the router's default policy.
const DEFAULT_TOLERANCE_S: u64 = 300;

/// The Discord verifier (the key is public, so `Debug` may print it).
#[derive(Debug)]
struct Discord {
    key: VerifyingKey,
    tolerance_s: u64,
}

/// Builds the `discord` verifier: `public_key` (64 hex digits) required,
/// `secrets` refused, `tolerance_s` optional (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let text = public_key_only(params, PRESET, "Discord")?;
    let invalid = |reason: &str| BuildError::Invalid {
        preset: PRESET,
        key: "public_key",
        reason: reason.into(),
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| invalid("expected the application's public key as 64 hex digits"))?;
    let key =
        VerifyingKey::from_bytes(&bytes).map_err(|_| invalid("not a valid Ed25519 public key"))?;
    Ok(Arc::new(Discord {
        key,
        tolerance_s: params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
    }))
}

impl Verifier for Discord {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let ts_text = required_header(req.headers, TIMESTAMP_HEADER)?;
        // Discord requires 401 for every invalid signature (it probes with
        // bad ones), so an undecodable signature is a mismatch here rather
        // than the usual 400; a repeated header is still malformed.
        let bytes = decode_signature(signature, SignatureEncoding::Hex, 64, SIGNATURE_HEADER)
            .map_err(|_| VerifyError::Mismatch)?;
        let bytes = <[u8; 64]>::try_from(bytes).map_err(|_| VerifyError::Mismatch)?;
        let ts = parse_unix_seconds(ts_text, TIMESTAMP_HEADER)?;
        let message = [ts_text.as_bytes(), req.body].concat();
        // Strict: refuses small-order keys and non-canonical signatures, which
        // an honest signer never produces.
        self.key
            .verify_strict(&message, &Signature::from_bytes(&bytes))
            .map_err(|_| VerifyError::Mismatch)?;
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }

    /// PING (`"type": 1`), which Discord sends when the endpoint is saved:
    /// answered with `{"type":1}`.
    fn handshake(&self, req: &Unverified<'_>) -> Option<Handshake> {
        #[derive(serde::Deserialize)]
        struct Interaction {
            #[serde(rename = "type")]
            kind: i64,
        }
        let interaction: Interaction = serde_json::from_slice(req.body).ok()?;
        (interaction.kind == 1).then(|| Handshake {
            content_type: "application/json",
            body: br#"{"type":1}"#.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::super::test_support::{check, headers};
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"id":"987654321098765432","type":1,"version":1}"#;

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn verifier() -> Arc<dyn Verifier> {
        let p = VerifierParams {
            public_key: Some(hex::encode(signing_key().verifying_key().as_bytes())),
            ..VerifierParams::default()
        };
        build(&p).unwrap()
    }

    fn run(ts: i64, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let ts = ts.to_string();
        let sig = signing_key().sign(&[ts.as_bytes(), BODY].concat());
        let h = headers(&[
            ("X-Signature-Ed25519", &hex::encode(sig.to_bytes())),
            ("X-Signature-Timestamp", &ts),
        ]);
        check(&*verifier(), &h, body, now)
    }

    #[test]
    fn valid_has_no_provider_id() {
        let got = run(NOW, BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "discord",
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
            assert_eq!(
                run(NOW, BODY, now),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn every_bad_signature_is_a_401_mismatch() {
        assert_eq!(run(NOW, b"{}", NOW), Err(VerifyError::Mismatch));
        let ts = NOW.to_string();
        for sig in ["zz", "", &"0".repeat(127), &"0".repeat(128)] {
            let h = headers(&[("X-Signature-Ed25519", sig), ("X-Signature-Timestamp", &ts)]);
            assert_eq!(
                check(&*verifier(), &h, BODY, NOW),
                Err(VerifyError::Mismatch)
            );
        }
        let sig = "0".repeat(128);
        let twice = headers(&[
            ("X-Signature-Ed25519", &sig),
            ("X-Signature-Ed25519", &sig),
            ("X-Signature-Timestamp", &ts),
        ]);
        assert!(matches!(
            check(&*verifier(), &twice, BODY, NOW),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn build_refuses_secrets_and_bad_keys() {
        let with_secret = VerifierParams {
            secrets: vec![crate::secret::Secret::new("x")],
            public_key: Some("00".repeat(32)),
            ..VerifierParams::default()
        };
        assert!(matches!(
            build(&with_secret),
            Err(BuildError::Invalid { key: "secrets", .. })
        ));
        assert!(matches!(
            build(&VerifierParams::default()),
            Err(BuildError::Missing {
                key: "public_key",
                ..
            })
        ));
        let short = VerifierParams {
            public_key: Some("abcd".into()),
            ..VerifierParams::default()
        };
        assert!(matches!(
            build(&short),
            Err(BuildError::Invalid {
                key: "public_key",
                ..
            })
        ));
    }
}
