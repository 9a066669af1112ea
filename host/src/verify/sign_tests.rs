//! What `hookyard send` signs passes verification: for every preset that
//! can sign, the headers it makes with the newest secret are accepted, and
//! carry the id where the provider puts it.

use base64::Engine as _;

use super::test_support::{check, headers, params};
use super::{HmacAlgorithm, HmacParams, SignatureEncoding, VerifierParams, PRESETS};

const NOW: i64 = 1_767_225_600;
const BODY: &[u8] = br#"{"id":"evt_signed","hello":"send"}"#;

/// The presets `hookyard send` supports (a test fails if one stops signing).
/// The rest cannot: the router holds only a public key (discord, sendgrid),
/// a token's digest (gitlab), or the scheme signs the URL (square, twilio,
/// hubspot) or a timestamp inside the body (linear, mailgun).
const SIGNING: [&str; 12] = [
    "github",
    "stripe",
    "slack",
    "shopify",
    "none",
    "standard-webhooks",
    "svix",
    "zoom",
    "paddle",
    "intercom",
    "typeform",
    "hmac",
];

/// `secrets` in the form `name` takes, with the settings it needs besides.
fn params_for(name: &str, secrets: &[&str]) -> VerifierParams {
    match name {
        "standard-webhooks" | "svix" => {
            let keys: Vec<String> = secrets
                .iter()
                .map(|s| {
                    format!(
                        "whsec_{}",
                        base64::engine::general_purpose::STANDARD.encode(s)
                    )
                })
                .collect();
            params(&keys.iter().map(String::as_str).collect::<Vec<_>>())
        }
        "hmac" => VerifierParams {
            hmac: Some(HmacParams {
                header: "X-Acme-Signature".into(),
                algorithm: HmacAlgorithm::Sha512,
                encoding: SignatureEncoding::Base64,
                prefix: Some("v1=".into()),
                id_header: Some("X-Acme-Delivery".into()),
            }),
            ..params(secrets)
        },
        _ => params(secrets),
    }
}

#[test]
fn what_send_signs_is_verified_with_the_newest_secret() {
    for (name, build) in PRESETS {
        let secrets: &[&str] = if *name == "none" {
            &[]
        } else {
            &["an-older-secret-0001", "the-newest-secret-002"]
        };
        let Ok(verifier) = build(&params_for(name, secrets)) else {
            // Presets needing other settings (public keys, hmac headers)
            // are checked by their own tests.
            assert!(!SIGNING.contains(name), "{name} does not build");
            continue;
        };
        let Some(signed) = verifier.sign(BODY, "dlv-send-1", NOW) else {
            assert!(!SIGNING.contains(name), "{name} no longer signs");
            continue;
        };
        let pairs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let verified = check(&*verifier, &headers(&pairs), BODY, NOW)
            .unwrap_or_else(|e| panic!("{name}: what send signs is refused: {e}"));
        if ["github", "shopify", "standard-webhooks", "svix", "hmac"].contains(name) {
            assert_eq!(
                verified.provider_id.as_deref(),
                Some("dlv-send-1"),
                "{name}"
            );
        }
        if *name != "none" {
            // Signed with the newest secret: a verifier holding only the
            // older one refuses it.
            let older = build(&params_for(name, &["an-older-secret-0001"])).unwrap();
            assert!(
                check(&*older, &headers(&pairs), BODY, NOW).is_err(),
                "{name}"
            );
        }
    }
}
