//! `verify = "github"`: `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256
//! of the raw body keyed by the webhook secret.
//!
//! GitHub signs no timestamp, so there is no replay window; the delivery GUID
//! in `X-GitHub-Delivery` is the idempotency key that stops a replay from
//! being processed twice. GitHub sends one signature, so rotation is
//! verifier-side: any configured secret may match. The legacy SHA-1 header
//! is only read with `variant = "sha1"`, and even then only when the SHA-256
//! header is absent, so a request can never be downgraded to SHA-1.

use std::sync::Arc;

use hmac::Hmac;
use sha1::Sha1;
use sha2::Sha256;

use super::{
    decode_signature, id_header, malformed, no_tolerance, require_secrets, single_header,
    BuildError, MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams,
    VerifyError,
};

const PRESET: &str = "github";
const SHA256_HEADER: &str = "X-Hub-Signature-256";
const SHA1_HEADER: &str = "X-Hub-Signature";
const DELIVERY_HEADER: &str = "X-GitHub-Delivery";

/// The GitHub verifier.
#[derive(Debug)]
struct GitHub {
    sha256: MacKeys<Hmac<Sha256>>,
    /// Set only with `variant = "sha1"`.
    sha1: Option<MacKeys<Hmac<Sha1>>>,
}

/// Builds the `github` verifier: `secrets` required; `variant = "sha1"` also
/// accepts the legacy `X-Hub-Signature` when `X-Hub-Signature-256` is absent.
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    no_tolerance(params, PRESET)?;
    let secrets = require_secrets(params, PRESET)?;
    let keys = || secrets.iter().map(|s| s.expose().as_bytes());
    let sha1 = match params.variant.as_deref() {
        None => None,
        Some("sha1") => Some(MacKeys::new(keys(), PRESET)?),
        Some(_) => {
            return Err(BuildError::Invalid {
                preset: PRESET,
                key: "variant",
                reason: "the only variant is \"sha1\" (legacy X-Hub-Signature)".into(),
            })
        }
    };
    Ok(Arc::new(GitHub {
        sha256: MacKeys::new(keys(), PRESET)?,
        sha1,
    }))
}

impl Verifier for GitHub {
    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let matched = if let Some(value) = single_header(req.headers, SHA256_HEADER)? {
            matches(&self.sha256, value, "sha256=", SHA256_HEADER, req.body)?
        } else if let Some(sha1) = &self.sha1 {
            // Only reached without a SHA-256 header: the legacy header is a
            // fallback for senders that lack the new one, never an alternative
            // to a SHA-256 signature that failed.
            let value = single_header(req.headers, SHA1_HEADER)?
                .ok_or(VerifyError::MissingHeader(SHA256_HEADER))?;
            matches(sha1, value, "sha1=", SHA1_HEADER, req.body)?
        } else {
            return Err(VerifyError::MissingHeader(SHA256_HEADER));
        };
        if !matched {
            return Err(VerifyError::Mismatch);
        }
        let provider_id = id_header(req.headers, &[DELIVERY_HEADER])?;
        Ok(Verified {
            scheme: PRESET,
            provider_id,
        })
    }

    fn sign(&self, body: &[u8], delivery_id: &str, _now_unix: i64) -> Option<super::Signed> {
        Some(vec![
            (
                SHA256_HEADER.into(),
                format!("sha256={}", hex::encode(self.sha256.sign(&[body]))),
            ),
            (DELIVERY_HEADER.into(), delivery_id.into()),
            ("X-GitHub-Event".into(), "ping".into()),
            ("Content-Type".into(), "application/json".into()),
        ])
    }
}

/// Parses `<prefix><hex>` and checks it against the body's MAC.
fn matches<M: hmac::Mac + hmac::digest::KeyInit + Clone>(
    keys: &MacKeys<M>,
    value: &str,
    prefix: &str,
    header: &'static str,
    body: &[u8],
) -> Result<bool, VerifyError> {
    let hex = value
        .strip_prefix(prefix)
        .ok_or(malformed(header, "signature lacks its algorithm prefix"))?;
    let mac = decode_signature(
        hex,
        SignatureEncoding::Hex,
        MacKeys::<M>::output_len(),
        header,
    )?;
    Ok(keys.matches_any(&[body], &[mac]))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, params};
    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    // GitHub's published example.
    const SIG256: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn sha1_sig(secret: &str, body: &[u8]) -> String {
        use hmac::Mac;
        let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn sha1_params() -> VerifierParams {
        VerifierParams {
            variant: Some("sha1".into()),
            ..params(&[SECRET])
        }
    }

    #[test]
    fn docs_example_with_delivery_id() {
        let v = build(&params(&[SECRET])).unwrap();
        let h = headers(&[
            ("x-hub-signature-256", SIG256),
            ("x-github-delivery", "72d3162e"),
        ]);
        let got = check(&*v, &h, BODY, 0).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "github",
                provider_id: Some("72d3162e".into())
            }
        );
    }

    #[test]
    fn uppercase_hex_is_the_same_mac() {
        let v = build(&params(&[SECRET])).unwrap();
        let upper = format!("sha256={}", SIG256["sha256=".len()..].to_ascii_uppercase());
        assert!(check(&*v, &headers(&[("X-Hub-Signature-256", &upper)]), BODY, 0).is_ok());
    }

    #[test]
    fn rotation_any_secret_matches() {
        let v = build(&params(&["new-secret", SECRET])).unwrap();
        assert!(check(&*v, &headers(&[("X-Hub-Signature-256", SIG256)]), BODY, 0).is_ok());
    }

    #[test]
    fn tampered_body_and_repeated_header() {
        let v = build(&params(&[SECRET])).unwrap();
        let h = headers(&[("X-Hub-Signature-256", SIG256)]);
        assert_eq!(
            check(&*v, &h, b"Hello, World?", 0),
            Err(VerifyError::Mismatch)
        );
        let twice = headers(&[
            ("X-Hub-Signature-256", SIG256),
            ("X-Hub-Signature-256", SIG256),
        ]);
        assert!(matches!(
            check(&*v, &twice, BODY, 0),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn malformed_values() {
        let v = build(&params(&[SECRET])).unwrap();
        for bad in [
            &SIG256["sha256=".len()..],
            "sha256=abc",
            "sha256=zz",
            "sha1=00",
        ] {
            let got = check(&*v, &headers(&[("X-Hub-Signature-256", bad)]), BODY, 0);
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{bad}: {got:?}"
            );
        }
    }

    #[test]
    fn sha1_is_never_accepted_without_the_variant() {
        let v = build(&params(&[SECRET])).unwrap();
        let h = headers(&[("X-Hub-Signature", &sha1_sig(SECRET, BODY))]);
        assert_eq!(
            check(&*v, &h, BODY, 0),
            Err(VerifyError::MissingHeader(SHA256_HEADER))
        );
    }

    #[test]
    fn sha1_variant_accepts_legacy_header_alone() {
        let v = build(&sha1_params()).unwrap();
        let h = headers(&[("X-Hub-Signature", &sha1_sig(SECRET, BODY))]);
        assert!(check(&*v, &h, BODY, 0).is_ok());
        let none = headers(&[]);
        assert_eq!(
            check(&*v, &none, BODY, 0),
            Err(VerifyError::MissingHeader(SHA256_HEADER))
        );
    }

    #[test]
    fn sha1_variant_never_falls_back_when_sha256_is_present() {
        // A valid SHA-1 beside a wrong SHA-256 must not pass: the SHA-256
        // header, when present, is the only one read.
        let v = build(&sha1_params()).unwrap();
        let wrong256 = format!("sha256={}", "0".repeat(64));
        let h = headers(&[
            ("X-Hub-Signature-256", wrong256.as_str()),
            ("X-Hub-Signature", &sha1_sig(SECRET, BODY)),
        ]);
        assert_eq!(check(&*v, &h, BODY, 0), Err(VerifyError::Mismatch));
    }

    #[test]
    fn build_errors() {
        assert_eq!(
            build(&VerifierParams::default()).unwrap_err(),
            BuildError::Missing {
                preset: PRESET,
                key: "secrets"
            }
        );
        let bad = VerifierParams {
            variant: Some("md5".into()),
            ..params(&[SECRET])
        };
        assert!(matches!(
            build(&bad),
            Err(BuildError::Invalid { key: "variant", .. })
        ));
        let empty = params(&[""]);
        assert!(matches!(
            build(&empty),
            Err(BuildError::Invalid { key: "secrets", .. })
        ));
    }
}
