//! `verify = "standard-webhooks"` and `verify = "svix"`: the Standard Webhooks
//! scheme, `webhook-id`, `webhook-timestamp` and `webhook-signature` headers
//! over the signed bytes `id + "." + timestamp + "." + body`.
//!
//! The signature header is a space-separated list of `<version>,<base64>`
//! entries. `v1` is HMAC-SHA256 keyed by the *decoded* `whsec_` secret; `v1a`
//! is Ed25519 checked with a `whpk_` public key. A source configures secrets,
//! a public key or both, and entries of versions it did not configure are
//! skipped, as the spec asks, so a producer can send old and new schemes side
//! by side during a migration or rotation. Svix is the same scheme under
//! `svix-*` header names (white-labelled Svix accounts send `webhook-*`), so
//! the `svix` preset reads `svix-*` when present and `webhook-*` otherwise.
//! `webhook-id` is the idempotency key.

use std::sync::Arc;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::Hmac;
use http::HeaderMap;
use sha2::Sha256;

use super::{
    check_window, decode_signature, malformed, no_variant, parse_unix_seconds, required_header,
    BuildError, MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams,
    VerifyError,
};

const PRESET: &str = "standard-webhooks";
const SVIX_PRESET: &str = "svix";
/// The spec's window, applied to past and future alike as its libraries do.
const DEFAULT_TOLERANCE_S: u64 = 300;
/// Entries read from one signature header. A rotation needs two or three;
/// the cap bounds the Ed25519 checks an unsigned request can make us run.
const MAX_SIGNATURES: usize = 16;

/// Keys are pasted by hand, so a lost `=` of padding is forgiven; signatures
/// on the wire are decoded strictly.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The three headers of one naming.
#[derive(Debug, Clone, Copy)]
struct HeaderNames {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

const WEBHOOK_HEADERS: HeaderNames = HeaderNames {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

const SVIX_HEADERS: HeaderNames = HeaderNames {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// The Standard Webhooks (and Svix) verifier.
#[derive(Debug)]
struct StandardWebhooks {
    /// `"standard-webhooks"` or `"svix"`, recorded with the event.
    scheme: &'static str,
    /// Whether `svix-*` headers are read (before `webhook-*`).
    svix_headers: bool,
    /// `v1` keys, from `secrets`.
    hmac: Option<MacKeys<Hmac<Sha256>>>,
    /// The `v1a` key, from `public_key` (public, so it may be printed).
    public_key: Option<VerifyingKey>,
    tolerance_s: u64,
}

/// Builds the `standard-webhooks` verifier: `secrets` (`whsec_…`, for v1)
/// and/or `public_key` (`whpk_…`, for v1a); `tolerance_s` optional (300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    build_with(params, PRESET, false)
}

/// Builds the `svix` verifier: as [`build`], reading `svix-*` headers when
/// the request has any, else `webhook-*`.
pub(super) fn build_svix(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    build_with(params, SVIX_PRESET, true)
}

/// Builds a Standard Webhooks verifier recorded as `preset` (also used by
/// GitLab's signing-token variant, which is the same scheme).
pub(super) fn build_with(
    params: &VerifierParams,
    preset: &'static str,
    svix_headers: bool,
) -> Result<Arc<dyn Verifier>, BuildError> {
    no_variant(params, preset)?;
    let hmac = if params.secrets.is_empty() {
        None
    } else {
        let keys = params
            .secrets
            .iter()
            .map(|s| decode_secret(s.expose(), preset))
            .collect::<Result<Vec<_>, _>>()?;
        Some(MacKeys::new(keys.iter().map(Vec::as_slice), preset)?)
    };
    let public_key = params
        .public_key
        .as_deref()
        .map(|k| decode_public_key(k, preset))
        .transpose()?;
    if hmac.is_none() && public_key.is_none() {
        // Either key satisfies the preset, so the message names both.
        return Err(BuildError::Invalid {
            preset,
            key: "secrets",
            reason: "give `secrets` (whsec_..., v1), `public_key` (whpk_..., v1a), or both".into(),
        });
    }
    Ok(Arc::new(StandardWebhooks {
        scheme: preset,
        svix_headers,
        hmac,
        public_key,
        tolerance_s: params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S),
    }))
}

/// `whsec_` + base64 → key bytes. The prefix is optional, as in the spec's
/// libraries. Error texts never quote the value.
fn decode_secret(secret: &str, preset: &'static str) -> Result<Vec<u8>, BuildError> {
    let invalid = |reason: &str| BuildError::Invalid {
        preset,
        key: "secrets",
        reason: reason.into(),
    };
    if secret.starts_with("whsk_") || secret.starts_with("whpk_") {
        return Err(invalid(
            "an Ed25519 key is not an HMAC secret; put the whpk_ key in public_key",
        ));
    }
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = KEY_BASE64
        .decode(encoded)
        .map_err(|_| invalid("expected whsec_ followed by base64"))?;
    if key.is_empty() {
        return Err(invalid("a secret decodes to no bytes"));
    }
    Ok(key)
}

/// `whpk_` + base64 of 32 bytes → an Ed25519 public key (prefix optional).
fn decode_public_key(key: &str, preset: &'static str) -> Result<VerifyingKey, BuildError> {
    let invalid = |reason: &str| BuildError::Invalid {
        preset,
        key: "public_key",
        reason: reason.into(),
    };
    if key.starts_with("whsk_") {
        return Err(invalid(
            "this is the private signing key; configure the whpk_ public key",
        ));
    }
    let expected = "expected whpk_ followed by the base64 of 32 bytes";
    let bytes = KEY_BASE64
        .decode(key.strip_prefix("whpk_").unwrap_or(key))
        .map_err(|_| invalid(expected))?;
    let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| invalid(expected))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| invalid("not a valid Ed25519 public key"))
}

impl StandardWebhooks {
    /// Which naming this request uses. Any `svix-*` header selects the svix
    /// set (svix-* wins when both are present, as in the Svix libraries), and
    /// a missing one is then reported by its svix name.
    fn header_names(&self, headers: &HeaderMap) -> HeaderNames {
        let svix = [
            SVIX_HEADERS.id,
            SVIX_HEADERS.timestamp,
            SVIX_HEADERS.signature,
        ];
        if self.svix_headers && svix.iter().any(|name| headers.contains_key(*name)) {
            SVIX_HEADERS
        } else {
            WEBHOOK_HEADERS
        }
    }

    /// Decodes the entries of the versions this source is configured for.
    /// Every entry must have a version; unconfigured versions are not decoded.
    fn parse_signatures(
        &self,
        value: &str,
        header: &'static str,
    ) -> Result<Signatures, VerifyError> {
        let mut sigs = Signatures {
            v1: Vec::new(),
            v1a: Vec::new(),
        };
        let mut count = 0;
        for entry in value.split_ascii_whitespace() {
            count += 1;
            if count > MAX_SIGNATURES {
                return Err(malformed(header, "too many signatures"));
            }
            let (version, encoded) = entry
                .split_once(',')
                .ok_or(malformed(header, "entry without `<version>,`"))?;
            match version {
                "v1" if self.hmac.is_some() => {
                    sigs.v1.push(decode_signature(
                        encoded,
                        SignatureEncoding::Base64,
                        32,
                        header,
                    )?);
                }
                "v1a" if self.public_key.is_some() => {
                    let bytes = decode_signature(encoded, SignatureEncoding::Base64, 64, header)?;
                    let bytes = <[u8; 64]>::try_from(bytes)
                        .map_err(|_| malformed(header, "signature has the wrong length"))?;
                    sigs.v1a.push(Signature::from_bytes(&bytes));
                }
                _ => {}
            }
        }
        if count == 0 {
            return Err(malformed(header, "no signatures"));
        }
        Ok(sigs)
    }
}

/// The decoded signatures of one request, by version.
struct Signatures {
    v1: Vec<Vec<u8>>,
    v1a: Vec<Signature>,
}

impl Verifier for StandardWebhooks {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let names = self.header_names(req.headers);
        let id = required_header(req.headers, names.id)?;
        let ts_text = required_header(req.headers, names.timestamp)?;
        let signature = required_header(req.headers, names.signature)?;
        // The spec forbids `.` in the id: with it, `id.ts.body` could be split
        // differently, moving bytes between the id (our dedupe key) and body.
        if id.is_empty() || id.contains('.') {
            return Err(malformed(names.id, "id is empty or contains `.`"));
        }
        let ts = parse_unix_seconds(ts_text, names.timestamp)?;
        let sigs = self.parse_signatures(signature, names.signature)?;

        let signed: [&[u8]; 5] = [id.as_bytes(), b".", ts_text.as_bytes(), b".", req.body];
        let hmac_ok = self
            .hmac
            .as_ref()
            .is_some_and(|keys| keys.matches_any(&signed, &sigs.v1));
        let ed25519_ok = || match &self.public_key {
            Some(key) if !sigs.v1a.is_empty() => {
                let message = signed.concat();
                // Strict: refuses small-order keys and non-canonical encodings,
                // which an honest signer never produces.
                sigs.v1a
                    .iter()
                    .any(|sig| key.verify_strict(&message, sig).is_ok())
            }
            _ => false,
        };
        if !(hmac_ok || ed25519_ok()) {
            return Err(VerifyError::Mismatch);
        }
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: self.scheme,
            provider_id: Some(id.to_owned()),
        })
    }

    /// A `v1` (HMAC) signature, with `svix-*` headers for an `svix` source;
    /// `None` for a source holding only a `v1a` public key.
    fn sign(&self, body: &[u8], delivery_id: &str, now_unix: i64) -> Option<super::Signed> {
        use base64::Engine as _;
        let keys = self.hmac.as_ref()?;
        let names = if self.svix_headers {
            SVIX_HEADERS
        } else {
            WEBHOOK_HEADERS
        };
        let ts = now_unix.to_string();
        let mac = keys.sign(&[delivery_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        Some(vec![
            (names.id.into(), delivery_id.into()),
            (names.timestamp.into(), ts),
            (
                names.signature.into(),
                format!(
                    "v1,{}",
                    base64::engine::general_purpose::STANDARD.encode(mac)
                ),
            ),
            ("Content-Type".into(), "application/json".into()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::{Signer, SigningKey};

    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    // The Svix docs example.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const NOW: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const V1: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    // The Go library's v1a test: seed and expected signature for the same message.
    const SEED: &str = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
    const V1A: &str = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

    fn signing_key() -> SigningKey {
        SigningKey::from_bytes(&STANDARD.decode(SEED).unwrap().try_into().unwrap())
    }

    fn public_key() -> String {
        format!(
            "whpk_{}",
            STANDARD.encode(signing_key().verifying_key().as_bytes())
        )
    }

    fn v1(secret: &str, id: &str, ts: &str, body: &[u8]) -> String {
        let key = STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .unwrap();
        let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", STANDARD.encode(mac))
    }

    fn v1a(id: &str, ts: &str, body: &[u8]) -> String {
        let message = [id.as_bytes(), b".", ts.as_bytes(), b".", body].concat();
        format!(
            "v1a,{}",
            STANDARD.encode(signing_key().sign(&message).to_bytes())
        )
    }

    fn webhook(sig: &str) -> HeaderMap {
        headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", TS),
            ("webhook-signature", sig),
        ])
    }

    fn hmac_verifier() -> Arc<dyn Verifier> {
        build(&params(&[SECRET])).unwrap()
    }

    fn ed25519_verifier() -> Arc<dyn Verifier> {
        build(&VerifierParams {
            public_key: Some(public_key()),
            ..VerifierParams::default()
        })
        .unwrap()
    }

    fn is_malformed(got: &Result<Verified, VerifyError>) -> bool {
        matches!(got, Err(VerifyError::MalformedHeader { .. }))
    }

    #[test]
    fn published_examples() {
        let got = check(&*hmac_verifier(), &webhook(V1), BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "standard-webhooks",
                provider_id: Some(ID.into())
            }
        );
        assert_eq!(
            v1a(ID, TS, BODY),
            V1A,
            "the test signer reproduces the Go vector"
        );
        assert!(check(&*ed25519_verifier(), &webhook(V1A), BODY, NOW).is_ok());
    }

    #[test]
    fn secret_prefix_is_optional() {
        let v = build(&params(&[SECRET.trim_start_matches("whsec_")])).unwrap();
        assert!(check(&*v, &webhook(V1), BODY, NOW).is_ok());
    }

    #[test]
    fn svix_headers_win_and_webhook_headers_are_the_fallback() {
        let v = build_svix(&params(&[SECRET])).unwrap();
        let svix = |sig: &str| {
            let mut h = headers(&[
                ("svix-id", ID),
                ("svix-timestamp", TS),
                ("svix-signature", sig),
            ]);
            h.extend(webhook(V1));
            h
        };
        let got = check(&*v, &svix(V1), BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "svix",
                provider_id: Some(ID.into())
            }
        );
        let wrong = v1("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ID, TS, BODY);
        assert_eq!(
            check(&*v, &svix(&wrong), BODY, NOW),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check(&*v, &webhook(V1), BODY, NOW).unwrap().scheme, "svix");
        let partial = headers(&[("svix-id", ID), ("webhook-timestamp", TS)]);
        let got = check(&*v, &partial, BODY, NOW);
        assert_eq!(got, Err(VerifyError::MissingHeader("svix-timestamp")));
    }

    #[test]
    fn standard_preset_ignores_svix_headers() {
        let h = headers(&[
            ("svix-id", ID),
            ("svix-timestamp", TS),
            ("svix-signature", V1),
        ]);
        let got = check(&*hmac_verifier(), &h, BODY, NOW);
        assert_eq!(got, Err(VerifyError::MissingHeader("webhook-id")));
    }

    #[test]
    fn unconfigured_versions_are_skipped() {
        let mixed = format!("v2,whatever v1,{}= {V1A}", "A".repeat(43));
        // Only a public key: the v1 entry (even an undecodable one) is skipped.
        let mixed_ok = format!("v2,whatever v1,%%% {V1A}");
        assert!(check(&*ed25519_verifier(), &webhook(&mixed_ok), BODY, NOW).is_ok());
        assert_eq!(
            check(&*ed25519_verifier(), &webhook(V1), BODY, NOW),
            Err(VerifyError::Mismatch)
        );
        // Only a secret: the v1a entry is skipped and the (wrong) v1 decides.
        assert_eq!(
            check(&*hmac_verifier(), &webhook(&mixed), BODY, NOW),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(&*hmac_verifier(), &webhook(V1A), BODY, NOW),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn both_configured_either_matches_and_rotation() {
        let both = VerifierParams {
            public_key: Some(public_key()),
            ..params(&["whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SECRET])
        };
        let v = build(&both).unwrap();
        assert!(check(&*v, &webhook(V1), BODY, NOW).is_ok());
        assert!(check(&*v, &webhook(V1A), BODY, NOW).is_ok());
        let rotated = format!(
            "{} {V1}",
            v1("whsec_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", ID, TS, BODY)
        );
        assert!(check(&*v, &webhook(&rotated), BODY, NOW).is_ok());
    }

    #[test]
    fn tampered_and_window() {
        assert_eq!(
            check(&*hmac_verifier(), &webhook(V1), b"{}", NOW),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(&*ed25519_verifier(), &webhook(V1A), b"{}", NOW),
            Err(VerifyError::Mismatch)
        );
        let h = webhook(&format!("{V1} {V1A}"));
        for now in [NOW - 301, NOW + 301] {
            for v in [hmac_verifier(), ed25519_verifier()] {
                let got = check(&*v, &h, BODY, now);
                assert_eq!(
                    got,
                    Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
                );
            }
        }
        // A forgery outside the window is a mismatch: the clock is not consulted.
        let forged = webhook(&format!("v1,{}=", "A".repeat(43)));
        assert_eq!(
            check(&*hmac_verifier(), &forged, BODY, NOW + 301),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_requests() {
        let v = VerifierParams {
            public_key: Some(public_key()),
            ..params(&[SECRET])
        };
        let v = build(&v).unwrap();
        let truncated = &V1A[..V1A.len() - 8];
        for sig in [
            "",
            "   ",
            "v1",
            "v1g0hM9SsE",
            "v1,not base64!",
            "v1,AAAA",
            truncated,
        ] {
            let got = check(&*v, &webhook(sig), BODY, NOW);
            assert!(is_malformed(&got), "{sig:?}: {got:?}");
        }
        let many = vec![V1; MAX_SIGNATURES + 1].join(" ");
        assert!(is_malformed(&check(&*v, &webhook(&many), BODY, NOW)));
        let bad_ts = headers(&[
            ("webhook-id", ID),
            ("webhook-timestamp", "1e9"),
            ("webhook-signature", V1),
        ]);
        assert!(is_malformed(&check(&*v, &bad_ts, BODY, NOW)));
        let dotted = headers(&[
            ("webhook-id", "msg.1"),
            ("webhook-timestamp", TS),
            ("webhook-signature", V1),
        ]);
        assert!(is_malformed(&check(&*v, &dotted, BODY, NOW)));
        let mut twice = webhook(V1);
        twice.append("webhook-signature", V1.parse().unwrap());
        assert!(is_malformed(&check(&*v, &twice, BODY, NOW)));
        let no_sig = headers(&[("webhook-id", ID), ("webhook-timestamp", TS)]);
        assert_eq!(
            check(&*v, &no_sig, BODY, NOW),
            Err(VerifyError::MissingHeader("webhook-signature"))
        );
    }

    #[test]
    fn build_errors_name_the_key_and_hide_the_value() {
        for (built, preset) in [
            (build(&VerifierParams::default()), PRESET),
            (build_svix(&VerifierParams::default()), SVIX_PRESET),
        ] {
            let missing = built.unwrap_err();
            assert!(
                matches!(&missing, BuildError::Invalid { preset: p, key: "secrets", .. } if *p == preset),
                "{missing:?}"
            );
            assert!(missing.to_string().contains("public_key"), "{missing}");
        }
        let cases = [
            (params(&["whsec_not*base64"]), "secrets"),
            (params(&["whsec_"]), "secrets"),
            (params(&["whsk_c2VjcmV0"]), "secrets"),
            (
                VerifierParams {
                    public_key: Some("whsk_c2VjcmV0".into()),
                    ..Default::default()
                },
                "public_key",
            ),
            (
                VerifierParams {
                    public_key: Some("whpk_AAAA".into()),
                    ..Default::default()
                },
                "public_key",
            ),
            (
                VerifierParams {
                    variant: Some("v1a".into()),
                    ..params(&[SECRET])
                },
                "variant",
            ),
        ];
        for (p, want) in cases {
            let err = build(&p).unwrap_err();
            assert!(
                matches!(err, BuildError::Invalid { key, .. } if key == want),
                "{err:?}"
            );
            let text = err.to_string();
            assert!(
                !text.contains("c2VjcmV0") && !text.contains("not*base64"),
                "{text}"
            );
        }
    }
}
