//! `verify = "twitch"`: EventSub's webhook transport,
//! `Twitch-Eventsub-Message-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! `message id + timestamp + body` keyed by the subscription secret.
//!
//! The timestamp is RFC 3339 with nanoseconds, signed as the header string;
//! it is parsed only for the window, which Twitch sets at ten minutes. The
//! message id is signed and is Twitch's documented deduplication key.
//!
//! Handshake: a verified `webhook_callback_verification` message is answered
//! with its raw `challenge` as `text/plain` and not stored.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, decode_signature, malformed, required_header, BuildError, Handshake, MacKeys,
    SignatureEncoding, Unverified, Verified, Verifier, VerifierParams, VerifyError,
};

const PRESET: &str = "twitch";
const ID_HEADER: &str = "Twitch-Eventsub-Message-Id";
const TIMESTAMP_HEADER: &str = "Twitch-Eventsub-Message-Timestamp";
const SIGNATURE_HEADER: &str = "Twitch-Eventsub-Message-Signature";
/// `notification`, `webhook_callback_verification` or `revocation`.
const TYPE_HEADER: &str = "Twitch-Eventsub-Message-Type";
/// Twitch says to refuse messages older than ten minutes.
const DEFAULT_TOLERANCE_S: u64 = 600;

/// The Twitch EventSub verifier.
#[derive(Debug)]
struct Twitch {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `twitch` verifier: `secrets` required, `tolerance_s` optional
/// (default 600).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Twitch { keys, tolerance_s }))
}

impl Verifier for Twitch {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let id = required_header(req.headers, ID_HEADER)?;
        let ts_text = required_header(req.headers, TIMESTAMP_HEADER)?;
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or(malformed(SIGNATURE_HEADER, "expected sha256=<hex>"))?;
        let mac = decode_signature(hex, SignatureEncoding::Hex, 32, SIGNATURE_HEADER)?;
        if id.is_empty() {
            return Err(malformed(ID_HEADER, "empty message id"));
        }
        let ts = parse_rfc3339(ts_text).ok_or(malformed(
            TIMESTAMP_HEADER,
            "expected an RFC 3339 timestamp",
        ))?;
        let signed: [&[u8]; 3] = [id.as_bytes(), ts_text.as_bytes(), req.body];
        if !self.keys.matches_any(&signed, &[mac]) {
            return Err(VerifyError::Mismatch);
        }
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: Some(id.to_owned()),
        })
    }

    fn handshake(&self, req: &Unverified<'_>) -> Option<Handshake> {
        #[derive(serde::Deserialize)]
        struct Verification {
            challenge: String,
        }
        let kind = req.headers.get(TYPE_HEADER)?.to_str().ok()?;
        if kind != "webhook_callback_verification" {
            return None;
        }
        let verification: Verification = serde_json::from_slice(req.body).ok()?;
        Some(Handshake {
            content_type: "text/plain",
            body: verification.challenge.into_bytes(),
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → unix seconds (the fraction
/// is dropped). Strict about the shape; every field is bounded, so the
/// arithmetic cannot overflow.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // 60 is a leap second, which RFC 3339 allows.
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|d| d.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let part = |a: &u8, b: &u8| -> Option<i64> {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (h, m) = (part(h1, h2)?, part(m1, m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = h * 3600 + m * 60;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, hmac_sha256, params};
    use super::*;

    const SECRET: &str = "twitch-eventsub-secret";
    const ID: &str = "e76c6bd4-55c9-4987-8304-da1588d8988b";
    const TS: &str = "2025-12-31T23:59:30.123456789Z";
    /// `TS` in unix seconds (the fraction dropped).
    const TS_UNIX: i64 = 1_767_225_570;
    const BODY: &[u8] = br#"{"subscription":{"type":"channel.follow"}}"#;

    fn run(body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let mac = hmac_sha256(SECRET.as_bytes(), &[ID.as_bytes(), TS.as_bytes(), BODY]);
        let sig = format!("sha256={}", hex::encode(mac));
        let h = headers(&[
            ("Twitch-Eventsub-Message-Id", ID),
            ("Twitch-Eventsub-Message-Timestamp", TS),
            ("Twitch-Eventsub-Message-Signature", &sig),
        ]);
        check(&*build(&params(&[SECRET])).unwrap(), &h, body, now)
    }

    #[test]
    fn provider_id_is_the_message_id() {
        let got = run(BODY, TS_UNIX).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "twitch",
                provider_id: Some(ID.into())
            }
        );
        assert_eq!(run(b"{}", TS_UNIX), Err(VerifyError::Mismatch));
    }

    #[test]
    fn default_window_is_600_s() {
        for now in [TS_UNIX - 600, TS_UNIX + 600] {
            assert!(run(BODY, now).is_ok());
        }
        for now in [TS_UNIX - 601, TS_UNIX + 601] {
            assert_eq!(
                run(BODY, now),
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 600 })
            );
        }
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(parse_rfc3339(TS), Some(TS_UNIX));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600)
        );
        assert_eq!(parse_rfc3339("2024-02-29t00:00:00.5z"), Some(1_709_164_800));
        for bad in [
            "1767225570",
            "2025-12-31 23:59:30Z",
            "2025-12-31T23:59:30",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-12-31T24:00:00Z",
            "2025-12-31T23:59:30.Z",
            "2025-12-31T23:59:30+1:00",
            "+025-12-31T23:59:30Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
