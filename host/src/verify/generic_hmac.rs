//! `verify = "hmac"`: the generic fallback for providers without a preset, an
//! HMAC of the raw body in one configurable header.
//!
//! The settings name the header, the digest (SHA-256, SHA-512 or SHA-1), the
//! encoding (hex of either case, or padded base64), an optional prefix such as
//! `sha256=` and optionally the header carrying the provider's delivery id.
//! Only the body is signed and there is no timestamp: schemes that sign more
//! than the body need a preset of their own.

use std::sync::Arc;

use hmac::Hmac;
use http::HeaderName;
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::{
    decode_signature, id_header, malformed, no_tolerance, no_variant, require_secrets,
    required_header, BuildError, HmacAlgorithm, HmacParams, MacKeys, SignatureEncoding, Unverified,
    Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "hmac";

/// The keys, keyed for the configured digest.
#[derive(Debug)]
enum Keys {
    Sha256(MacKeys<Hmac<Sha256>>),
    Sha512(MacKeys<Hmac<Sha512>>),
    Sha1(MacKeys<Hmac<Sha1>>),
}

impl Keys {
    /// Output length of the digest, in bytes.
    fn output_len(&self) -> usize {
        match self {
            Keys::Sha256(_) => MacKeys::<Hmac<Sha256>>::output_len(),
            Keys::Sha512(_) => MacKeys::<Hmac<Sha512>>::output_len(),
            Keys::Sha1(_) => MacKeys::<Hmac<Sha1>>::output_len(),
        }
    }

    /// The MAC of `body` under the newest secret.
    fn sign(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Keys::Sha256(k) => k.sign(&[body]),
            Keys::Sha512(k) => k.sign(&[body]),
            Keys::Sha1(k) => k.sign(&[body]),
        }
    }

    fn matches(&self, body: &[u8], mac: &[u8]) -> bool {
        match self {
            Keys::Sha256(k) => k.matches_any(&[body], &[mac]),
            Keys::Sha512(k) => k.matches_any(&[body], &[mac]),
            Keys::Sha1(k) => k.matches_any(&[body], &[mac]),
        }
    }
}

/// The generic HMAC verifier.
#[derive(Debug)]
struct GenericHmac {
    /// `"hmac"`, or the named preset built on this family.
    scheme: &'static str,
    /// Lowercase header name (see [`static_name`]).
    header: &'static str,
    prefix: Option<String>,
    encoding: SignatureEncoding,
    id_header: Option<&'static str>,
    keys: Keys,
}

/// Builds the `hmac` verifier from `secrets` and `params.hmac` (whose absence
/// is reported as a missing `header`, the one setting it cannot default).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let hmac = params.hmac.as_ref().ok_or(BuildError::Missing {
        preset: PRESET,
        key: "header",
    })?;
    build_family(params, PRESET, hmac)
}

/// A named preset that is this family with fixed settings (Intercom,
/// Typeform): `secrets` from the source, everything else from `hmac`.
pub(super) fn build_family(
    params: &VerifierParams,
    preset: &'static str,
    hmac: &HmacParams,
) -> Result<Arc<dyn Verifier>, BuildError> {
    no_variant(params, preset)?;
    // Only the body is signed: a window would be a setting that does nothing.
    no_tolerance(params, preset)?;
    let secrets = require_secrets(params, preset)?;
    let keys = || secrets.iter().map(|s| s.expose().as_bytes());
    let keys = match hmac.algorithm {
        HmacAlgorithm::Sha256 => Keys::Sha256(MacKeys::new(keys(), preset)?),
        HmacAlgorithm::Sha512 => Keys::Sha512(MacKeys::new(keys(), preset)?),
        HmacAlgorithm::Sha1 => Keys::Sha1(MacKeys::new(keys(), preset)?),
    };
    let prefix = hmac.prefix.clone().filter(|p| !p.is_empty());
    // A header value is visible ASCII; a prefix outside it could never match,
    // which would turn every request into a 401 with a confusing reason.
    if prefix
        .as_deref()
        .is_some_and(|p| !p.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    {
        return Err(BuildError::Invalid {
            preset,
            key: "prefix",
            reason: "a prefix of visible ASCII characters".into(),
        });
    }
    Ok(Arc::new(GenericHmac {
        scheme: preset,
        header: static_name(&hmac.header, "header", preset)?,
        prefix,
        encoding: hmac.encoding,
        id_header: hmac
            .id_header
            .as_deref()
            .map(|h| static_name(h, "id_header", preset))
            .transpose()?,
        keys,
    }))
}

/// Validates a configured header name and gives it the `'static` lifetime
/// that [`VerifyError`] needs to name it. The string is leaked on purpose: it
/// is a few bytes per verifier built, and verifiers are built once per
/// configuration load, not per request.
fn static_name(
    name: &str,
    key: &'static str,
    preset: &'static str,
) -> Result<&'static str, BuildError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| BuildError::Invalid {
        preset,
        key,
        reason: "not a valid HTTP header name".into(),
    })?;
    Ok(Box::leak(name.as_str().to_owned().into_boxed_str()))
}

impl Verifier for GenericHmac {
    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let value = required_header(req.headers, self.header)?;
        let encoded = match &self.prefix {
            Some(prefix) => value.strip_prefix(prefix.as_str()).ok_or(malformed(
                self.header,
                "signature lacks the configured prefix",
            ))?,
            None => value,
        };
        let mac = decode_signature(encoded, self.encoding, self.keys.output_len(), self.header)?;
        if !self.keys.matches(req.body, &mac) {
            return Err(VerifyError::Mismatch);
        }
        let provider_id = match self.id_header {
            Some(name) => id_header(req.headers, &[name])?,
            None => None,
        };
        Ok(Verified {
            scheme: self.scheme,
            provider_id,
        })
    }

    fn sign(&self, body: &[u8], delivery_id: &str, _now_unix: i64) -> Option<super::Signed> {
        let mac = self.keys.sign(body);
        let encoded = match self.encoding {
            SignatureEncoding::Hex => hex::encode(mac),
            SignatureEncoding::Base64 => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(mac)
            }
        };
        let prefix = self.prefix.as_deref().unwrap_or("");
        let mut headers = vec![
            (self.header.to_string(), format!("{prefix}{encoded}")),
            ("Content-Type".into(), "application/json".into()),
        ];
        if let Some(name) = self.id_header {
            headers.push((name.to_string(), delivery_id.to_string()));
        }
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::Mac;

    use super::super::test_support::{check, headers, params};
    use super::super::HmacParams;
    use super::*;

    const SECRET: &str = "generic-secret";
    const BODY: &[u8] = b"{\"event\":\"ping\"}\n";

    fn hmac_params(algorithm: HmacAlgorithm, encoding: SignatureEncoding) -> HmacParams {
        HmacParams {
            header: "X-Signature".into(),
            algorithm,
            encoding,
            prefix: None,
            id_header: None,
        }
    }

    fn verifier(hmac: HmacParams) -> Arc<dyn Verifier> {
        build(&VerifierParams {
            hmac: Some(hmac),
            ..params(&[SECRET])
        })
        .unwrap()
    }

    fn mac<M: Mac + hmac::digest::KeyInit>(body: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
        m.update(body);
        m.finalize().into_bytes().to_vec()
    }

    fn run(v: &dyn Verifier, pairs: &[(&str, &str)]) -> Result<Verified, VerifyError> {
        check(v, &headers(pairs), BODY, 0)
    }

    #[test]
    fn every_algorithm_and_encoding() {
        let macs = [
            (HmacAlgorithm::Sha256, mac::<Hmac<Sha256>>(BODY)),
            (HmacAlgorithm::Sha512, mac::<Hmac<Sha512>>(BODY)),
            (HmacAlgorithm::Sha1, mac::<Hmac<Sha1>>(BODY)),
        ];
        for (algorithm, mac) in macs {
            let hex_v = verifier(hmac_params(algorithm, SignatureEncoding::Hex));
            let b64_v = verifier(hmac_params(algorithm, SignatureEncoding::Base64));
            let lower = hex::encode(&mac);
            let upper = lower.to_ascii_uppercase();
            let b64 = STANDARD.encode(&mac);
            assert!(
                run(&*hex_v, &[("x-signature", &lower)]).is_ok(),
                "{algorithm:?}"
            );
            assert!(
                run(&*hex_v, &[("x-signature", &upper)]).is_ok(),
                "{algorithm:?}"
            );
            assert!(
                run(&*b64_v, &[("x-signature", &b64)]).is_ok(),
                "{algorithm:?}"
            );
            // Each encoding refuses the other, as malformed, before comparing.
            let got = run(&*hex_v, &[("x-signature", &b64)]);
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{got:?}"
            );
            let got = run(&*b64_v, &[("x-signature", &lower)]);
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{got:?}"
            );
        }
    }

    #[test]
    fn prefix_id_header_and_scheme() {
        let hmac = HmacParams {
            prefix: Some("sha256=".into()),
            id_header: Some("X-Delivery".into()),
            ..hmac_params(HmacAlgorithm::Sha256, SignatureEncoding::Base64)
        };
        let v = verifier(hmac);
        let sig = format!("sha256={}", STANDARD.encode(mac::<Hmac<Sha256>>(BODY)));
        let got = run(&*v, &[("X-Signature", &sig), ("x-delivery", "d-1")]).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "hmac",
                provider_id: Some("d-1".into())
            }
        );
        assert_eq!(
            run(&*v, &[("X-Signature", &sig)]).unwrap().provider_id,
            None
        );
        let bare = &sig["sha256=".len()..];
        let got = run(&*v, &[("X-Signature", bare)]);
        assert!(matches!(
            got,
            Err(VerifyError::MalformedHeader {
                header: "x-signature",
                ..
            })
        ));
    }

    #[test]
    fn missing_repeated_tampered() {
        let v = verifier(hmac_params(HmacAlgorithm::Sha256, SignatureEncoding::Hex));
        assert_eq!(
            run(&*v, &[]),
            Err(VerifyError::MissingHeader("x-signature"))
        );
        let sig = hex::encode(mac::<Hmac<Sha256>>(BODY));
        let got = run(&*v, &[("X-Signature", &sig), ("X-Signature", &sig)]);
        assert!(matches!(got, Err(VerifyError::MalformedHeader { .. })));
        let tampered = check(&*v, &headers(&[("X-Signature", &sig)]), b"{}", 0);
        assert_eq!(tampered, Err(VerifyError::Mismatch));
    }

    #[test]
    fn rotation() {
        let hmac = hmac_params(HmacAlgorithm::Sha256, SignatureEncoding::Hex);
        let v = build(&VerifierParams {
            hmac: Some(hmac),
            ..params(&["new", SECRET])
        })
        .unwrap();
        let sig = hex::encode(mac::<Hmac<Sha256>>(BODY));
        assert!(run(&*v, &[("X-Signature", &sig)]).is_ok());
    }

    #[test]
    fn build_errors() {
        let no_hmac = build(&params(&[SECRET])).unwrap_err();
        assert_eq!(
            no_hmac,
            BuildError::Missing {
                preset: PRESET,
                key: "header"
            }
        );
        let base = hmac_params(HmacAlgorithm::Sha256, SignatureEncoding::Hex);
        let bad = [
            (
                HmacParams {
                    header: "bad header".into(),
                    ..base.clone()
                },
                "header",
            ),
            (
                HmacParams {
                    id_header: Some("".into()),
                    ..base.clone()
                },
                "id_header",
            ),
            (
                HmacParams {
                    prefix: Some("sha256=\n".into()),
                    ..base.clone()
                },
                "prefix",
            ),
        ];
        for (hmac, want) in bad {
            let err = build(&VerifierParams {
                hmac: Some(hmac),
                ..params(&[SECRET])
            })
            .unwrap_err();
            assert!(
                matches!(err, BuildError::Invalid { key, .. } if key == want),
                "{err:?}"
            );
        }
        let no_secret = VerifierParams {
            hmac: Some(base),
            ..VerifierParams::default()
        };
        assert!(matches!(
            build(&no_secret),
            Err(BuildError::Missing { key: "secrets", .. })
        ));
    }
}
