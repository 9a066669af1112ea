//! `verify = "slack"`: `X-Slack-Signature: v0=<hex>`, the HMAC-SHA256 of
//! `"v0:" + X-Slack-Request-Timestamp + ":" + body` keyed by the app's signing
//! secret.
//!
//! Slack sends one signature, so rotation is verifier-side (any configured
//! secret may match). It has no delivery id header, so the caller
//! deduplicates on the body's digest; the signed timestamp and a symmetric
//! five-minute window (as `slack_sdk` applies with `abs()`) bound replays.
//!
//! Handshake: the Events API's signed `url_verification` request is
//! answered with its `challenge` and not stored.

use std::sync::Arc;

use hmac::Hmac;
use sha2::Sha256;

use super::{
    check_window, v0_signer, BuildError, Handshake, MacKeys, Unverified, Verified, Verifier,
    VerifierParams, VerifyError,
};

const PRESET: &str = "slack";
const SIGNATURE_HEADER: &str = "X-Slack-Signature";
const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// Slack documents five minutes.
const DEFAULT_TOLERANCE_S: u64 = 300;

/// The Slack verifier.
#[derive(Debug)]
struct Slack {
    keys: MacKeys<Hmac<Sha256>>,
    tolerance_s: u64,
}

/// Builds the `slack` verifier: `secrets` required, `tolerance_s` optional
/// (default 300).
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    let keys = MacKeys::from_params(params, PRESET)?;
    let tolerance_s = params.tolerance_s.unwrap_or(DEFAULT_TOLERANCE_S);
    Ok(Arc::new(Slack { keys, tolerance_s }))
}

impl Verifier for Slack {
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError> {
        let (_, ts) = v0_signer(&self.keys, req, SIGNATURE_HEADER, TIMESTAMP_HEADER)?;
        check_window(ts, now_unix, self.tolerance_s)?;
        Ok(Verified {
            scheme: PRESET,
            provider_id: None,
        })
    }

    fn sign(&self, body: &[u8], _delivery_id: &str, now_unix: i64) -> Option<super::Signed> {
        Some(super::v0_sign(
            &self.keys,
            body,
            now_unix,
            SIGNATURE_HEADER,
            TIMESTAMP_HEADER,
        ))
    }

    /// Events API `url_verification`: echo `challenge` as JSON.
    fn handshake(&self, req: &Unverified<'_>) -> Option<Handshake> {
        #[derive(serde::Deserialize)]
        struct UrlVerification {
            #[serde(rename = "type")]
            kind: String,
            challenge: String,
        }
        // Slash commands and interactivity post forms; only the Events API
        // posts JSON, so anything that does not parse is an ordinary event.
        let check: UrlVerification = serde_json::from_slice(req.body).ok()?;
        if check.kind != "url_verification" {
            return None;
        }
        let body = serde_json::to_vec(&serde_json::json!({ "challenge": check.challenge })).ok()?;
        Some(Handshake {
            content_type: "application/json",
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{check, headers, params};
    use super::*;

    // Slack's documented example.
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const NOW: i64 = 1_531_420_618;

    fn run(pairs: &[(&str, &str)], body: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let v = build(&params(&[SECRET])).unwrap();
        check(&*v, &headers(pairs), body, now)
    }

    #[test]
    fn docs_example() {
        let pairs = [
            ("X-Slack-Signature", SIG),
            ("X-Slack-Request-Timestamp", TS),
        ];
        let got = run(&pairs, BODY, NOW).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "slack",
                provider_id: None
            }
        );
    }

    #[test]
    fn tampered_body_and_window() {
        let pairs = [
            ("X-Slack-Signature", SIG),
            ("X-Slack-Request-Timestamp", TS),
        ];
        assert_eq!(run(&pairs, b"token=other", NOW), Err(VerifyError::Mismatch));
        for now in [NOW - 301, NOW + 301] {
            let got = run(&pairs, BODY, now);
            assert_eq!(
                got,
                Err(VerifyError::TimestampOutOfWindow { tolerance_s: 300 })
            );
        }
    }

    #[test]
    fn missing_and_malformed() {
        let missing_ts = run(&[("X-Slack-Signature", SIG)], BODY, NOW);
        assert_eq!(
            missing_ts,
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
        let missing_sig = run(&[("X-Slack-Request-Timestamp", TS)], BODY, NOW);
        assert_eq!(
            missing_sig,
            Err(VerifyError::MissingHeader(SIGNATURE_HEADER))
        );
        for (sig, ts) in [
            (&SIG[3..], TS),
            ("v1=00", TS),
            (SIG, "soon"),
            (SIG, "-1531420618"),
        ] {
            let got = run(
                &[
                    ("X-Slack-Signature", sig),
                    ("X-Slack-Request-Timestamp", ts),
                ],
                BODY,
                NOW,
            );
            assert!(
                matches!(got, Err(VerifyError::MalformedHeader { .. })),
                "{sig} {ts}: {got:?}"
            );
        }
        let twice = [
            ("X-Slack-Signature", SIG),
            ("X-Slack-Signature", SIG),
            ("X-Slack-Request-Timestamp", TS),
        ];
        assert!(matches!(
            run(&twice, BODY, NOW),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn rotation() {
        let v = build(&params(&["another-signing-secret", SECRET])).unwrap();
        let h = headers(&[
            ("X-Slack-Signature", SIG),
            ("X-Slack-Request-Timestamp", TS),
        ]);
        assert!(check(&*v, &h, BODY, NOW).is_ok());
    }
}
