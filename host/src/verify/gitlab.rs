//! `verify = "gitlab"`: GitLab's `X-Gitlab-Token`, the configured secret
//! token sent in clear, compared in constant time over the whole value.
//!
//! The token proves only that the sender knows it: the body is not covered
//! and nothing bounds a replay, so deduplication on `Idempotency-Key` (or
//! `X-Gitlab-Event-UUID` when absent) is the only replay defence. The
//! comparison is between SHA-256 digests, so neither the token's content
//! nor its length leaks through timing. `variant = "signing-token"` is
//! GitLab's newer signing token (`whsec_…`): the Standard Webhooks scheme,
//! with body integrity and a 300 s window, verified by that preset's code.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{
    ct_eq, id_header, no_tolerance, require_secrets, required_header, standard_webhooks,
    BuildError, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "gitlab";
const TOKEN_HEADER: &str = "X-Gitlab-Token";
/// Idempotency key candidates, best first: `Idempotency-Key` is the same on
/// every retry of one delivery; the event UUID is the older fallback.
const ID_HEADERS: [&str; 2] = ["Idempotency-Key", "X-Gitlab-Event-UUID"];

/// The plain-token verifier: digests of the configured tokens, never the
/// tokens themselves, so `Debug` has nothing secret to show.
#[derive(Debug)]
struct GitLabToken {
    digests: Vec<[u8; 32]>,
}

/// Builds the `gitlab` verifier: `secrets` (tokens) required and no window;
/// with `variant = "signing-token"`, `secrets` are `whsec_` signing tokens
/// and `tolerance_s` is optional (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    if params.public_key.is_some() {
        return Err(BuildError::Invalid {
            preset: PRESET,
            key: "public_key",
            reason: "GitLab uses secrets only".into(),
        });
    }
    match params.variant.as_deref() {
        None => {}
        Some("signing-token") => {
            let params = VerifierParams {
                variant: None,
                ..params.clone()
            };
            require_secrets(&params, PRESET)?;
            return standard_webhooks::build_with(&params, PRESET, false);
        }
        Some(_) => {
            return Err(BuildError::Invalid {
                preset: PRESET,
                key: "variant",
                reason: "the only variant is \"signing-token\" (Standard Webhooks headers)".into(),
            })
        }
    }
    no_tolerance(params, PRESET)?;
    let digests = require_secrets(params, PRESET)?
        .iter()
        .map(|s| {
            if s.expose().is_empty() {
                return Err(BuildError::Invalid {
                    preset: PRESET,
                    key: "secrets",
                    reason: "a secret is empty".into(),
                });
            }
            Ok(Sha256::digest(s.expose().as_bytes()).into())
        })
        .collect::<Result<_, _>>()?;
    Ok(Arc::new(GitLabToken { digests }))
}

impl Verifier for GitLabToken {
    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let token = required_header(req.headers, TOKEN_HEADER)?;
        let digest = Sha256::digest(token.as_bytes());
        if !self.digests.iter().any(|d| ct_eq(d, &digest)) {
            return Err(VerifyError::Mismatch);
        }
        Ok(Verified {
            scheme: PRESET,
            provider_id: id_header(req.headers, &ID_HEADERS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const TOKEN: &str = "glwh-secret-token";

    fn run(pairs: &[(&str, &str)]) -> Result<Verified, VerifyError> {
        check(
            &*build(&params(&[TOKEN])).unwrap(),
            &headers(pairs),
            b"{}",
            0,
        )
    }

    #[test]
    fn provider_id_is_idempotency_key_then_event_uuid() {
        let both = [
            ("X-Gitlab-Token", TOKEN),
            ("X-Gitlab-Event-UUID", "event-uuid"),
            ("Idempotency-Key", "idem-key"),
        ];
        let got = run(&both).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "gitlab",
                provider_id: Some("idem-key".into())
            }
        );
        assert_eq!(
            run(&both[..2]).unwrap().provider_id.as_deref(),
            Some("event-uuid")
        );
        assert_eq!(run(&both[..1]).unwrap().provider_id, None);
    }

    #[test]
    fn whole_token_compared_and_no_window() {
        for wrong in [
            "glwh-secret-toke",
            "glwh-secret-tokenX",
            "GLWH-SECRET-TOKEN",
            "",
        ] {
            assert_eq!(
                run(&[("X-Gitlab-Token", wrong)]),
                Err(VerifyError::Mismatch)
            );
        }
        assert_eq!(run(&[]), Err(VerifyError::MissingHeader(TOKEN_HEADER)));
        let twice = [("X-Gitlab-Token", TOKEN), ("X-Gitlab-Token", TOKEN)];
        assert!(matches!(
            run(&twice),
            Err(VerifyError::MalformedHeader { .. })
        ));
        let with_window = VerifierParams {
            tolerance_s: Some(300),
            ..params(&[TOKEN])
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
    fn signing_token_is_standard_webhooks_with_300_s_window() {
        let secret = "whsec_D96P6n7acpJFRCZy0qtpLF8nzvLTZvI2FVGau1FUEEM=";
        let key = STANDARD.decode(&secret[6..]).unwrap();
        let (id, ts, body) = ("idem-key", "1767225600", b"{}");
        let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        let sig = format!("v1,{}", STANDARD.encode(mac));
        let h = headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", &sig),
            ("Idempotency-Key", id),
        ]);
        let p = VerifierParams {
            variant: Some("signing-token".into()),
            ..params(&[secret])
        };
        let v = build(&p).unwrap();
        let got = check(&*v, &h, body, 1_767_225_600).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "gitlab",
                provider_id: Some(id.into())
            }
        );
        assert!(check(&*v, &h, body, 1_767_225_600 + 300).is_ok());
        assert_eq!(
            check(&*v, &h, body, 1_767_225_600 + 301),
            Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
        );
        // The plain token is not accepted in signing-token mode.
        let token_only = headers(&[("X-Gitlab-Token", secret)]);
        assert!(check(&*v, &token_only, body, 1_767_225_600).is_err());
    }
}
