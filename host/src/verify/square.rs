//! `verify = "square"`: `x-square-hmacsha256-signature`, the base64
//! HMAC-SHA256 of `notification URL + body` keyed by the subscription's
//! signature key.
//!
//! The URL is the request's public URL and must match the subscription's
//! byte for byte (scheme, trailing slash, query). The legacy
//! `x-square-signature` (same construction, HMAC-SHA1) is read only with
//! `variant = "sha1-legacy"`, and then only when the SHA-256 header is
//! absent, so a request can never be downgraded. No timestamp is signed; the
//! body's `event_id` is the idempotency key.

use std::sync::Arc;

use hmac::Hmac;
use sha1::Sha1;
use sha2::Sha256;

use super::{
    body_event_id, decode_signature, no_tolerance, require_secrets, single_header, BuildError,
    MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "square";
const SHA256_HEADER: &str = "x-square-hmacsha256-signature";
const SHA1_HEADER: &str = "x-square-signature";

/// The Square verifier.
#[derive(Debug)]
struct Square {
    sha256: MacKeys<Hmac<Sha256>>,
    /// Set only with `variant = "sha1-legacy"`.
    sha1: Option<MacKeys<Hmac<Sha1>>>,
}

/// Builds the `square` verifier: `secrets` required; `variant =
/// "sha1-legacy"` also accepts `x-square-signature` when the SHA-256 header
/// is absent. No window.
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    no_tolerance(params, PRESET)?;
    let secrets = require_secrets(params, PRESET)?;
    let keys = || secrets.iter().map(|s| s.expose().as_bytes());
    let sha1 = match params.variant.as_deref() {
        None => None,
        Some("sha1-legacy") => Some(MacKeys::new(keys(), PRESET)?),
        Some(_) => {
            return Err(BuildError::Invalid {
                preset: PRESET,
                key: "variant",
                reason: "the only variant is \"sha1-legacy\" (x-square-signature)".into(),
            })
        }
    };
    Ok(Arc::new(Square {
        sha256: MacKeys::new(keys(), PRESET)?,
        sha1,
    }))
}

impl Verifier for Square {
    fn signs_url(&self) -> bool {
        true
    }

    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let signed: [&[u8]; 2] = [req.url.as_bytes(), req.body];
        let matched = if let Some(value) = single_header(req.headers, SHA256_HEADER)? {
            let mac = decode_signature(value, SignatureEncoding::Base64, 32, SHA256_HEADER)?;
            self.sha256.matches_any(&signed, &[mac])
        } else if let Some(sha1) = &self.sha1 {
            // A fallback for senders without the new header, never an
            // alternative to a SHA-256 signature that failed.
            let value = single_header(req.headers, SHA1_HEADER)?
                .ok_or(VerifyError::MissingHeader(SHA256_HEADER))?;
            let mac = decode_signature(value, SignatureEncoding::Base64, 20, SHA1_HEADER)?;
            sha1.matches_any(&signed, &[mac])
        } else {
            return Err(VerifyError::MissingHeader(SHA256_HEADER));
        };
        if !matched {
            return Err(VerifyError::Mismatch);
        }
        Ok(Verified {
            scheme: PRESET,
            provider_id: body_event_id(req.body, "event_id"),
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::Mac;

    use super::super::test_support::{check_url, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "square-signature-key";
    const URL: &str = "https://example.com/webhooks/square";
    const BODY: &[u8] = br#"{"merchant_id":"6SSW7HV8K2ST5","event_id":"13b867cf-db3d"}"#;

    fn sha256_sig(url: &str) -> String {
        STANDARD.encode(hmac_sha256(SECRET.as_bytes(), &[url.as_bytes(), BODY]))
    }

    fn sha1_sig() -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(URL.as_bytes());
        mac.update(BODY);
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn run(p: &VerifierParams, pairs: &[(&str, &str)]) -> Result<Verified, VerifyError> {
        check_url(&*build(p).unwrap(), URL, &headers(pairs), BODY, 0)
    }

    #[test]
    fn provider_id_is_the_body_event_id_and_no_window() {
        let got = run(&params(&[SECRET]), &[(SHA256_HEADER, &sha256_sig(URL))]).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "square",
                provider_id: Some("13b867cf-db3d".into())
            }
        );
        let with_window = VerifierParams {
            tolerance_s: Some(300),
            ..params(&[SECRET])
        };
        assert!(build(&with_window).is_err());
    }

    #[test]
    fn url_is_signed() {
        let got = run(
            &params(&[SECRET]),
            &[(SHA256_HEADER, &sha256_sig(&format!("{URL}/")))],
        );
        assert_eq!(got, Err(VerifyError::Mismatch));
    }

    #[test]
    fn sha1_only_with_the_variant_and_never_as_a_fallback() {
        let legacy = VerifierParams {
            variant: Some("sha1-legacy".into()),
            ..params(&[SECRET])
        };
        let sha1 = sha1_sig();
        assert_eq!(
            run(&params(&[SECRET]), &[(SHA1_HEADER, &sha1)]),
            Err(VerifyError::MissingHeader(SHA256_HEADER))
        );
        assert!(run(&legacy, &[(SHA1_HEADER, &sha1)]).is_ok());
        let wrong256 = STANDARD.encode([0u8; 32]);
        let both = [(SHA256_HEADER, wrong256.as_str()), (SHA1_HEADER, &sha1)];
        assert_eq!(run(&legacy, &both), Err(VerifyError::Mismatch));
    }
}
