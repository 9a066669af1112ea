//! Standard Webhooks v1 signing of what the HTTP sink forwards, so a
//! receiver can check it with any Standard Webhooks library: `webhook-id`,
//! `webhook-timestamp` (unix seconds) and `webhook-signature: v1,<base64>`,
//! the HMAC-SHA256 of `id + "." + timestamp + "." + body` keyed by the bytes
//! the `whsec_` secret decodes to (not by the secret string).

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// Secrets are pasted by hand, so a lost `=` of padding is forgiven, as the
/// verifier does (config validation already checked the value).
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A v1 signer holding the decoded key. `Debug` hides the key.
#[derive(Clone)]
pub(crate) struct Signer {
    /// Keyed once; each signature clones it instead of re-deriving the key.
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// A signer for `secret` (`whsec_` + base64; the prefix is optional, as
    /// in the spec's libraries). The error never quotes the value.
    pub(crate) fn new(secret: &Secret) -> Result<Self, &'static str> {
        let encoded = secret.expose();
        let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
        let key = KEY_BASE64
            .decode(encoded)
            .map_err(|_| "sign_secret is not \"whsec_\" followed by base64")?;
        if key.is_empty() {
            return Err("sign_secret decodes to no bytes");
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| "sign_secret is unusable")?;
        Ok(Self { mac })
    }

    /// The `webhook-signature` value (`v1,<base64>`) for message `id` sent at
    /// `timestamp` (unix seconds) with `body`.
    pub(crate) fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;
    use crate::verify::{preset, Unverified, VerifierParams};

    /// `standard-webhooks/v1_valid_unicode_body` from
    /// `/work/shared/vectors/provider-vectors.json` (signed by the spec's
    /// own library), copied so the test does not depend on the file's place.
    const SECRET: &str = "whsec_/A43EFui70qNzh3gxZ4dSVOF8ZbLDRVT7cjmPx9AS7Q=";
    const ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const TIMESTAMP: i64 = 1_767_225_570;
    const BODY: &str = "{\"type\":\"contact.updated\",\"timestamp\":\"2025-12-31T23:59:30Z\",\
                        \"data\":{\"fullName\":\"Zoë Ångström — café ✓ 日本語 🎉\"}}";
    const SIGNATURE: &str = "v1,xPwTMQbUl81SfL37A9CNh1X/ks/HLnZnY3Pb62YI4mI=";

    #[test]
    fn signs_the_shared_vector_byte_for_byte() {
        let signer = Signer::new(&Secret::new(SECRET)).unwrap();
        assert_eq!(signer.sign(ID, TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        // The Svix docs' example (SIGNATURES.md, Standard Webhooks section).
        let svix = Signer::new(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")).unwrap();
        assert_eq!(
            svix.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_routers_own_verifier_accepts_what_the_signer_makes() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let signer = Signer::new(&Secret::new(secret)).unwrap();
        let body = br#"{"forwarded":true}"#;
        let now = 1_800_000_000;
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", HeaderValue::from_static("dlv_01J0TEST"));
        headers.insert("webhook-timestamp", HeaderValue::from(now));
        let signature = signer.sign("dlv_01J0TEST", now, body);
        headers.insert("webhook-signature", signature.parse().unwrap());
        let verifier = preset("standard-webhooks").unwrap()(&VerifierParams {
            secrets: vec![Secret::new(secret)],
            ..VerifierParams::default()
        })
        .unwrap();
        let request = Unverified {
            method: &Method::POST,
            url: "https://receiver.example/hook",
            headers: &headers,
            body,
        };
        let verified = verifier.verify(&request, now).unwrap();
        assert_eq!(verified.provider_id.as_deref(), Some("dlv_01J0TEST"));
        // A different body must not pass with the same signature.
        let tampered = Unverified {
            body: b"{}",
            ..request
        };
        assert!(verifier.verify(&tampered, now).is_err());
    }

    #[test]
    fn bad_secrets_are_refused_without_quoting_them() {
        let err = Signer::new(&Secret::new("whsec_!!not-base64!!")).unwrap_err();
        assert!(!err.contains("not-base64"));
        assert!(Signer::new(&Secret::new("whsec_")).is_err());
        assert_eq!(
            format!("{:?}", Signer::new(&Secret::new(SECRET)).unwrap()),
            "Signer(***)"
        );
    }
}
