//! `verify = "stripe"`: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`,
//! the HMAC-SHA256 of `t + "." + body`.
//!
//! The key is the endpoint secret string exactly as Stripe shows it, `whsec_`
//! included; unlike Standard Webhooks it is not base64-decoded, so the two
//! presets share no secret parsing. Only `v1` entries are signatures: Stripe
//! sends a fake `v0` on test-mode events, and accepting any other scheme would
//! allow a downgrade. During a secret roll Stripe sends one `v1` per active
//! secret, and any configured secret may match any of them. The idempotency
//! key is the event's `id` in the body, read only once the body is trusted.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, decode_signature, malformed, parse_unix_seconds, required_header, BuildError,
    MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "stripe";
const HEADER: &str = "Stripe-Signature";
/// Stripe's SDKs default to five minutes.
const DEFAULT_TOLERANCE_S: u64 = 300;

/// The Stripe verifier.
#[derive(Debug)]
struct Stripe {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `stripe` verifier: `secrets` required, `tolerance_s` optional
/// (default 300, applied to past and future alike).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Stripe { keys, tolerance_s }))
}

impl Verifier for Stripe {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let header = parse_header(required_header(req.headers, HEADER)?)?;
        let ts = parse_unix_seconds(header.t, HEADER)?;
        // `t` is signed as sent, so a changed timestamp is a mismatch.
        if !self
            .keys
            .matches_any(&[header.t.as_bytes(), b".", req.body], &header.v1)
        {
            return Err(VerifyError::Mismatch);
        }
        // After the match, so a stale forgery reports a mismatch, not a clock.
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: event_id(req.body),
        })
    }

    /// Stripe's id is the body's own `id`; `delivery_id` is not used.
    fn sign(&self, body: &[u8], _delivery_id: &str, now_unix: i64) -> Option<super::Signed> {
        let t = now_unix.to_string();
        let v1 = hex::encode(self.keys.sign(&[t.as_bytes(), b".", body]));
        Some(vec![
            (HEADER.into(), format!("t={t},v1={v1}")),
            ("Content-Type".into(), "application/json".into()),
        ])
    }
}

/// The parts of a `Stripe-Signature` value this preset reads.
struct Header<'a> {
    /// The `t=` value, unparsed (it is signed as text).
    t: &'a str,
    /// The decoded `v1=` signatures; never empty.
    v1: Vec<Vec<u8>>,
}

/// Splits on `,` then on the first `=`, as Stripe's SDKs do. Other schemes
/// (`v0`, future ones) are skipped without being decoded; a repeated `t` is
/// refused because it would be ambiguous which one was signed.
fn parse_header(value: &str) -> Result<Header<'_>, VerifyError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for element in value.split(',') {
        let (key, val) = element
            .split_once('=')
            .ok_or(malformed(HEADER, "element without `=`"))?;
        match key {
            "t" if t.is_some() => return Err(malformed(HEADER, "repeated t= element")),
            "t" => t = Some(val),
            "v1" => v1.push(decode_signature(val, SignatureEncoding::Hex, 32, HEADER)?),
            _ => {}
        }
    }
    let t = t.ok_or(malformed(HEADER, "no t= element"))?;
    if v1.is_empty() {
        return Err(malformed(HEADER, "no v1= signature"));
    }
    Ok(Header { t, v1 })
}

/// The event's top-level string `id` (`evt_…`), if the body is a JSON object
/// that has one; otherwise the caller falls back to the body's digest.
fn event_id(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Event {
        id: Option<String>,
    }
    // Serde would also read a struct from a JSON array (`["evt_…"]`), so
    // only an object is considered. Other fields are skipped, not built.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice::<Event>(body)
        .ok()?
        .id
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_123","object":"event"}"#;
    const NOW: i64 = 1_767_225_600;

    fn sig(secret: &str, t: &str, body: &[u8]) -> String {
        hex::encode(hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b".", body]))
    }

    fn run(value: &str, body: &[u8]) -> Result<Verified, VerifyError> {
        let v = build(&params(&[SECRET])).unwrap();
        check(&*v, &headers(&[("stripe-signature", value)]), body, NOW)
    }

    #[test]
    fn valid_with_event_id() {
        let value = format!("t={NOW},v1={}", sig(SECRET, &NOW.to_string(), BODY));
        let got = run(&value, BODY).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "stripe",
                provider_id: Some("evt_123".into())
            }
        );
    }

    #[test]
    fn key_is_the_secret_verbatim_not_decoded() {
        let decoded_key = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "dGVzdF9zZWNyZXQ=",
        )
        .unwrap();
        let mac = hex::encode(hmac_sha256(
            &decoded_key,
            &[NOW.to_string().as_bytes(), b".", BODY],
        ));
        assert_eq!(
            run(&format!("t={NOW},v1={mac}"), BODY),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn provider_id_absent_for_non_json_or_non_string_id() {
        for body in [
            &b"not json"[..],
            br#"{"id":42}"#,
            br#"["evt_1"]"#,
            br#"{"object":"x"}"#,
        ] {
            let value = format!("t={NOW},v1={}", sig(SECRET, &NOW.to_string(), body));
            assert_eq!(run(&value, body).unwrap().provider_id, None);
        }
    }

    #[test]
    fn only_v0_is_refused() {
        // A correct MAC labelled v0 must not count: v0 is never trusted.
        let value = format!("t={NOW},v0={}", sig(SECRET, &NOW.to_string(), BODY));
        assert!(matches!(
            run(&value, BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn window_is_symmetric_and_checked_after_the_match() {
        for t in [NOW - 301, NOW + 301] {
            let value = format!("t={t},v1={}", sig(SECRET, &t.to_string(), BODY));
            let got = run(&value, BODY);
            assert_eq!(
                got,
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
        let stale_forgery = format!("t={},v1={}", NOW - 301, "0".repeat(64));
        assert_eq!(run(&stale_forgery, BODY), Err(VerifyError::Mismatch));
        let p = VerifierParams {
            tolerance_s: Some(1000),
            ..params(&[SECRET])
        };
        let v = build(&p).unwrap();
        let t = NOW - 900;
        let value = format!("t={t},v1={}", sig(SECRET, &t.to_string(), BODY));
        assert!(check(&*v, &headers(&[("Stripe-Signature", &value)]), BODY, NOW).is_ok());
    }

    #[test]
    fn malformed_headers() {
        let good = sig(SECRET, &NOW.to_string(), BODY);
        for bad in [
            format!("v1={good}"),
            format!("t={NOW},t={NOW},v1={good}"),
            format!("t={NOW},v1={good},junk"),
            format!("t={NOW},v1={}", &good[..62]),
            format!("t={NOW},v1={}", "g".repeat(64)),
            format!("t=-{NOW},v1={good}"),
            format!("t=,v1={good}"),
            String::new(),
        ] {
            let got = run(&bad, BODY);
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{bad}: {got:?}"
            );
        }
        let v = build(&params(&[SECRET])).unwrap();
        let no_header = check(&*v, &headers(&[]), BODY, NOW);
        assert_eq!(no_header, Err(VerifyError::MissingHeader(HEADER)));
    }

    #[test]
    fn rotation_secret_and_signature_lists() {
        let v = build(&params(&["whsec_old", SECRET])).unwrap();
        let t = NOW.to_string();
        let value = format!(
            "t={t},v1={},v1={}",
            sig("whsec_other", &t, BODY),
            sig(SECRET, &t, BODY)
        );
        assert!(check(&*v, &headers(&[("Stripe-Signature", &value)]), BODY, NOW).is_ok());
    }

    #[test]
    fn build_errors() {
        let no_secret = build(&VerifierParams::default()).unwrap_err();
        assert_eq!(
            no_secret,
            BuildError::Missing {
                preset: PRESET,
                key: "secrets"
            }
        );
        let variant = VerifierParams {
            variant: Some("v0".into()),
            ..params(&[SECRET])
        };
        assert!(matches!(
            build(&variant),
            Err(BuildError::Invalid { key: "variant", .. })
        ));
    }
}
