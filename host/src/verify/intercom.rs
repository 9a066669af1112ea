//! `verify = "intercom"`: `X-Hub-Signature: sha1=<hex>`, the HMAC-SHA1 of
//! the raw body keyed by the app's `client_secret`.
//!
//! SHA-1 is the only scheme Intercom has, so it is this preset's default
//! rather than an opt-in legacy mode. No timestamp is signed and Intercom's
//! scheme names no delivery id, so the caller deduplicates on the body's
//! digest and there is no replay window. It is the generic `hmac` family
//! with fixed settings.

use std::sync::Arc;

use super::{
    generic_hmac, BuildError, HmacAlgorithm, HmacParams, SignatureEncoding, Verifier,
    VerifierParams,
};

const PRESET: &str = "intercom";

/// Builds the `intercom` verifier: `secrets` required; no window.
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let scheme = HmacParams {
        header: "X-Hub-Signature".into(),
        algorithm: HmacAlgorithm::Sha1,
        encoding: SignatureEncoding::Hex,
        prefix: Some("sha1=".into()),
        id_header: None,
    };
    generic_hmac::build_family(params, PRESET, &scheme)
}

#[cfg(test)]
mod tests {
    use hmac::Hmac;
    use sha1::Sha1;

    use super::super::{Verified, VerifyError};
    use hmac::Mac;

    use super::super::test_support::{check, headers, params};
    use super::*;

    const SECRET: &str = "intercom-client-secret";
    const BODY: &[u8] = br#"{"type":"notification_event","id":"notif_1"}"#;

    fn sig(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn valid_has_no_provider_id_and_no_window() {
        let v = build(&params(&[SECRET])).unwrap();
        let h = headers(&[("X-Hub-Signature", &sig(BODY))]);
        for now in [0, i64::MAX] {
            let got = check(&*v, &h, BODY, now).unwrap();
            assert_eq!(
                got,
                Verified {
                    scheme: "intercom",
                    provider_id: None
                }
            );
        }
        let with_window = VerifierParams {
            tolerance_s: Some(300),
            ..params(&[SECRET])
        };
        assert!(matches!(
            build(&with_window),
            Err(BuildError::Invalid {
                key: "tolerance_s",
                ..
            })
        ));
    }

    #[test]
    fn tampered_and_sha256_prefix() {
        let v = build(&params(&[SECRET])).unwrap();
        let h = headers(&[("X-Hub-Signature", &sig(BODY))]);
        assert_eq!(check(&*v, &h, b"{}", 0), Err(VerifyError::Mismatch));
        let wrong = headers(&[("X-Hub-Signature", &sig(BODY).replace("sha1=", "sha256="))]);
        assert!(matches!(
            check(&*v, &wrong, BODY, 0),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }
}
