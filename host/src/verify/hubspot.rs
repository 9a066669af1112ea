//! `verify = "hubspot"`: HubSpot's signature v3, `X-HubSpot-Signature-v3`,
//! the base64 HMAC-SHA256 of `method + URI + body + timestamp` keyed by the
//! app's client secret, with `X-HubSpot-Request-Timestamp` in milliseconds.
//!
//! The URI is the request's public URL with exactly these escapes decoded
//! before signing, as HubSpot does: `%3A %2F %3F %40 %21 %24 %27 %28 %29
//! %2A %2C %3B`; every other escape stays encoded. The window is HubSpot's
//! five minutes, applied either way. Legacy v1/v2 signatures (plain SHA-256
//! of the secret and the body) are not supported. A delivery is a batch of
//! events with no single id, so the caller deduplicates on the body's digest.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window_ms, decode_signature, malformed, required_header, BuildError, MacKeys,
    SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "hubspot";
const SIGNATURE_HEADER: &str = "X-HubSpot-Signature-v3";
const TIMESTAMP_HEADER: &str = "X-HubSpot-Request-Timestamp";
/// HubSpot refuses requests older than five minutes.
const DEFAULT_TOLERANCE_S: u64 = 300;
/// The escapes HubSpot decodes before signing, with their characters.
const DECODED: [(&[u8; 2], u8); 12] = [
    (b"3A", b':'),
    (b"2F", b'/'),
    (b"3F", b'?'),
    (b"40", b'@'),
    (b"21", b'!'),
    (b"24", b'$'),
    (b"27", b'\''),
    (b"28", b'('),
    (b"29", b')'),
    (b"2A", b'*'),
    (b"2C", b','),
    (b"3B", b';'),
];

/// The HubSpot v3 verifier.
#[derive(Debug)]
struct HubSpot {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `hubspot` verifier: `secrets` required, `tolerance_s` optional
/// (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(HubSpot { keys, tolerance_s }))
}

impl Verifier for HubSpot {
    fn signs_url(&self) -> bool {
        true
    }

    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let ts_text = required_header(req.headers, TIMESTAMP_HEADER)?;
        let mac = decode_signature(signature, SignatureEncoding::Base64, 32, SIGNATURE_HEADER)?;
        // Milliseconds: 13 digits today, so the 18-digit cap of
        // parse_unix_seconds cannot be reused, but 18 digits still fit i64.
        if ts_text.is_empty() || ts_text.len() > 18 || !ts_text.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed(
                TIMESTAMP_HEADER,
                "expected milliseconds since the epoch",
            ));
        }
        let ts_ms: i64 = ts_text
            .parse()
            .map_err(|_| malformed(TIMESTAMP_HEADER, "expected milliseconds since the epoch"))?;
        let uri = decode_uri(req.url);
        let signed: [&[u8]; 4] = [
            req.method.as_str().as_bytes(),
            &uri,
            req.body,
            ts_text.as_bytes(),
        ];
        if !self.keys.matches_any(&signed, &[mac]) {
            return Err(VerifyError::Mismatch);
        }
        check_window_ms(ts_ms, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }
}

/// Decodes only the escapes in [`DECODED`] (uppercase hex, as HubSpot's own
/// table lists them); everything else is copied as is.
fn decode_uri(url: &str) -> Vec<u8> {
    let bytes = url.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(hex) = bytes.get(i + 1..i + 3) {
                if let Some((_, c)) = DECODED.iter().find(|(code, _)| code.as_slice() == hex) {
                    out.push(*c);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::super::test_support::{check_url, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "hubspot-client-secret";
    const URL: &str = "https://example.com/hook?label=a%3Ab&x=%20";
    const SIGNED_URI: &str = "https://example.com/hook?label=a:b&x=%20";
    const BODY: &[u8] = br#"[{"eventId":1}]"#;
    const NOW: i64 = 1_767_225_600;

    fn run(ts_ms: i64, body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let ts = ts_ms.to_string();
        let mac = hmac_sha256(
            SECRET.as_bytes(),
            &[b"POST", SIGNED_URI.as_bytes(), BODY, ts.as_bytes()],
        );
        let h = headers(&[
            (SIGNATURE_HEADER, &STANDARD.encode(mac)),
            (TIMESTAMP_HEADER, &ts),
        ]);
        check_url(&*build(&params(&[SECRET])).unwrap(), URL, &h, body, now)
    }

    #[test]
    fn valid_has_no_provider_id() {
        let got = run(NOW * 1000, BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "hubspot",
                provider_id: None
            }
        );
        assert_eq!(run(NOW * 1000, b"[]", NOW), Err(VerifyError::Mismatch));
    }

    #[test]
    fn default_window_is_300_s_in_milliseconds() {
        for ts in [(NOW - 300) * 1000, (NOW + 300) * 1000] {
            assert!(run(ts, BODY, NOW).is_ok());
        }
        for ts in [(NOW - 300) * 1000 - 1, (NOW + 300) * 1000 + 1] {
            assert_eq!(
                run(ts, BODY, NOW),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn only_the_listed_escapes_are_decoded() {
        assert_eq!(
            decode_uri("/a%3A%2f%20%2C%3b%40%"),
            b"/a:%2f%20,%3b@%".to_vec()
        );
    }
}
