//! `verify = "none"`: accepts every request without checking anything.
//!
//! For sources that carry no signature (internal senders, local testing). The
//! config layer makes this an explicit choice and refuses secrets beside it;
//! here it only records that nothing was verified, so a stored event says so.

use std::sync::Arc;

use super::{BuildError, Unverified, Verified, Verifier, VerifierParams};

/// The verifier of `verify = "none"`.
#[derive(Debug)]
struct NoVerification;

/// Builds the `none` verifier; it reads no settings.
pub(super) fn build(_params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    Ok(Arc::new(NoVerification))
}

impl Verifier for NoVerification {
    fn verify(
        &self,
        _req: &Unverified<'_>,
        _now_unix: i64,
    ) -> Result<Verified, super::VerifyError> {
        // No provider id: the caller deduplicates on the body's digest.
        Ok(Verified {
            scheme: "none",
            provider_id: None,
        })
    }

    fn sign(&self, _body: &[u8], _delivery_id: &str, _now_unix: i64) -> Option<super::Signed> {
        Some(vec![("Content-Type".into(), "application/json".into())])
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers};
    use super::*;

    #[test]
    fn accepts_anything_without_an_id() {
        let v = build(&VerifierParams::default()).unwrap();
        let got = check(
            &*v,
            &headers(&[("x-hub-signature-256", "garbage")]),
            b"\xff",
            0,
        )
        .unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "none",
                provider_id: None
            }
        );
    }
}
