//! `verify = "typeform"`: `Typeform-Signature: sha256=<base64>`, the
//! HMAC-SHA256 of the raw body keyed by the webhook's secret.
//!
//! The digest is base64 after a `sha256=` prefix (hex there is refused as
//! malformed). No timestamp is signed and the scheme names no delivery id, so
//! the caller deduplicates on the body's digest and there is no window. It
//! is the generic `hmac` family with fixed settings.

use std::sync::Arc;

use super::{
    generic_hmac, BuildError, HmacAlgorithm, HmacParams, SignatureEncoding, Verifier,
    VerifierParams,
};

const PRESET: &str = "typeform";

/// Builds the `typeform` verifier: `secrets` required; no window.
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let scheme = HmacParams {
        header: "Typeform-Signature".into(),
        algorithm: HmacAlgorithm::Sha256,
        encoding: SignatureEncoding::Base64,
        prefix: Some("sha256=".into()),
        id_header: None,
    };
    generic_hmac::build_family(params, PRESET, &scheme)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::super::{Verified, VerifyError};
    use super::*;

    const SECRET: &str = "typeform-secret";
    const BODY: &[u8] = br#"{"event_id":"01HT0EXAMPLE","event_type":"form_response"}"#;

    #[test]
    fn valid_has_no_provider_id_and_no_window() {
        let v = build(&params(&[SECRET])).unwrap();
        let mac = hmac_sha256(SECRET.as_bytes(), &[BODY]);
        let h = headers(&[(
            "Typeform-Signature",
            &format!("sha256={}", STANDARD.encode(&mac)),
        )]);
        for now in [0, i64::MAX] {
            let got = check(&*v, &h, BODY, now).unwrap();
            assert_eq!(
                got,
                Verified {
                    scheme: "typeform",
                    provider_id: None
                }
            );
        }
        assert_eq!(check(&*v, &h, b"{}", 0), Err(VerifyError::Mismatch));
        let hex = headers(&[(
            "Typeform-Signature",
            &format!("sha256={}", hex::encode(&mac)),
        )]);
        assert!(matches!(
            check(&*v, &hex, BODY, 0),
            Err(VerifyError::MalformedHeader { .. })
        ));
        let with_window = VerifierParams {
            tolerance_s: Some(5),
            ..params(&[SECRET])
        };
        assert!(build(&with_window).is_err());
    }
}
