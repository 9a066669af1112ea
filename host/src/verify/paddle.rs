//! `verify = "paddle"`: Paddle Billing, `Paddle-Signature:
//! ts=<unix>;h1=<hex>[;h1=<hex>…]`, the HMAC-SHA256 of `ts + ":" + body`
//! keyed by the notification destination's secret (`pdl_ntfset_…`, used
//! verbatim).
//!
//! During a secret rotation Paddle sends one `h1` per active secret and any
//! match is enough. The window is Paddle's own: five seconds either way, as
//! its SDK applies. Unknown header keys are refused, as Paddle's SDK does.
//! The idempotency key is the body's `event_id`, read once the body is
//! trusted. Paddle Classic (`p_signature`) is a different scheme and is not
//! covered.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    body_event_id, check_window, decode_signature, malformed, parse_unix_seconds, required_header,
    BuildError, MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams,
    VerifyError,
};

const PRESET: &str = "paddle";
const HEADER: &str = "Paddle-Signature";
/// Paddle's SDK allows five seconds of variance.
const DEFAULT_TOLERANCE_S: u64 = 5;

/// The Paddle Billing verifier.
#[derive(Debug)]
struct Paddle {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `paddle` verifier: `secrets` required, `tolerance_s` optional
/// (default 5).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Paddle { keys, tolerance_s }))
}

impl Verifier for Paddle {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let (ts_text, h1) = parse_header(required_header(req.headers, HEADER)?)?;
        let ts = parse_unix_seconds(ts_text, HEADER)?;
        if !self
            .keys
            .matches_any(&[ts_text.as_bytes(), b":", req.body], &h1)
        {
            return Err(VerifyError::Mismatch);
        }
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: body_event_id(req.body, "event_id"),
        })
    }

    /// Paddle's id is the body's `event_id`: the delivery id has no place.
    fn sign(&self, body: &[u8], _delivery_id: &str, now_unix: i64) -> Option<super::Signed> {
        let ts = now_unix.to_string();
        let h1 = hex::encode(self.keys.sign(&[ts.as_bytes(), b":", body]));
        Some(vec![
            (HEADER.into(), format!("ts={ts};h1={h1}")),
            ("Content-Type".into(), "application/json".into()),
        ])
    }
}

/// Splits on `;` then on the first `=`: exactly one `ts`, at least one `h1`.
fn parse_header(value: &str) -> Result<(&str, Vec<Vec<u8>>), VerifyError> {
    let mut ts = None;
    let mut h1 = Vec::new();
    for element in value.split(';') {
        let (key, val) = element
            .split_once('=')
            .ok_or(malformed(HEADER, "element without `=`"))?;
        match key {
            "ts" if ts.is_some() => return Err(malformed(HEADER, "repeated ts= element")),
            "ts" => ts = Some(val),
            "h1" => h1.push(decode_signature(val, SignatureEncoding::Hex, 32, HEADER)?),
            _ => return Err(malformed(HEADER, "unknown element (only ts= and h1=)")),
        }
    }
    let ts = ts.ok_or(malformed(HEADER, "no ts= element"))?;
    if h1.is_empty() {
        return Err(malformed(HEADER, "no h1= signature"));
    }
    Ok((ts, h1))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "pdl_ntfset_01test_secret";
    const BODY: &[u8] = br#"{"event_id":"evt_01hv8x2acma2gz3he1zyz0000","event_type":"x"}"#;
    const NOW: i64 = 1_767_225_600;

    fn header(secret: &str, ts: i64, body: &[u8]) -> String {
        let t = ts.to_string();
        let mac = hmac_sha256(secret.as_bytes(), &[t.as_bytes(), b":", body]);
        format!("ts={t};h1={}", hex::encode(mac))
    }

    fn run(value: &str, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let v = build(&params(&[SECRET])).unwrap();
        check(&*v, &headers(&[("Paddle-Signature", value)]), body, now)
    }

    #[test]
    fn provider_id_is_the_body_event_id() {
        let got = run(&header(SECRET, NOW, BODY), BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "paddle",
                provider_id: Some("evt_01hv8x2acma2gz3he1zyz0000".into())
            }
        );
        let no_id = br#"{"event_type":"x"}"#;
        let got = run(&header(SECRET, NOW, no_id), no_id, NOW).unwrap();
        assert_eq!(got.provider_id, None);
    }

    #[test]
    fn default_window_is_5_s() {
        let value = header(SECRET, NOW, BODY);
        for now in [NOW - 5, NOW + 5] {
            assert!(run(&value, BODY, now).is_ok());
        }
        for now in [NOW - 6, NOW + 6] {
            assert_eq!(
                run(&value, BODY, now),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 5 })
            );
        }
    }

    #[test]
    fn several_h1_and_malformed_headers() {
        let good = header(SECRET, NOW, BODY);
        let other = header("pdl_ntfset_other", NOW, BODY);
        let (_, other_h1) = other.split_once(';').unwrap();
        assert!(run(
            &format!("{other};{}", &good[good.find("h1").unwrap()..]),
            BODY,
            NOW
        )
        .is_ok());
        assert_eq!(run(&other, BODY, NOW), Err(VerifyError::Mismatch));
        for bad in [
            format!("{good};ts={NOW}"),
            format!("{good};v2=abc"),
            format!("ts={NOW}"),
            other_h1.to_string(),
            format!("ts=-{NOW};{other_h1}"),
            String::new(),
        ] {
            let got = run(&bad, BODY, NOW);
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{bad}: {got:?}"
            );
        }
    }
}
