//! The shared provider test vectors (`../shared/vectors/provider-vectors.json`)
//! run against the presets, each case at its own `now_unix`, plus hostile
//! header values thrown at every preset.
//!
//! Every case of a provider with a preset here is checked; failures are
//! collected so one run shows all of them, and each provider must contribute
//! cases, so a renamed file or provider can never make the test pass empty.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::Deserialize;

use super::{
    preset, Handshake, HmacAlgorithm, HmacParams, SignatureEncoding, Unverified, VerifierParams,
};
use crate::secret::Secret;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/vectors/provider-vectors.json"
);

/// Vector provider → preset name in router.toml.
const PROVIDERS: [(&str, &str); 19] = [
    ("stripe", "stripe"),
    ("github", "github"),
    ("slack", "slack"),
    ("shopify", "shopify"),
    ("standard-webhooks", "standard-webhooks"),
    ("svix", "svix"),
    ("discord", "discord"),
    ("square", "square"),
    ("zoom", "zoom"),
    ("twitch", "twitch"),
    ("paddle", "paddle"),
    ("linear", "linear"),
    ("twilio", "twilio"),
    ("gitlab", "gitlab"),
    ("sendgrid", "sendgrid"),
    ("intercom", "intercom"),
    ("typeform", "typeform"),
    ("hubspot", "hubspot"),
    ("mailgun", "mailgun"),
];

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

/// The fields of one case these presets need (others are ignored).
#[derive(Deserialize)]
struct Case {
    id: String,
    provider: String,
    secret: Option<String>,
    extra_secrets: Option<Vec<String>>,
    public_key: Option<String>,
    variant: Option<String>,
    method: Option<String>,
    url: Option<String>,
    headers: BTreeMap<String, String>,
    body: Option<String>,
    #[serde(alias = "body_b64")]
    body_base64: Option<String>,
    now_unix: i64,
    tolerance_s: Option<u64>,
    expect: String,
    /// For a provider's endpoint check: what the router must answer.
    challenge_response: Option<ChallengeResponse>,
}

/// The expected answer to a handshake case.
#[derive(Deserialize, Clone)]
struct ChallengeResponse {
    content_type: String,
    json: Option<serde_json::Value>,
    text: Option<String>,
}

impl ChallengeResponse {
    /// Whether `got` is this answer (JSON compared as values).
    fn check(&self, got: Option<&Handshake>) -> Result<(), String> {
        let got = got.ok_or("expected a handshake answer, got none (it would be stored)")?;
        if got.content_type != self.content_type {
            return Err(format!(
                "content type {} != {}",
                got.content_type, self.content_type
            ));
        }
        let same = match (&self.json, &self.text) {
            (Some(json), _) => {
                serde_json::from_slice::<serde_json::Value>(&got.body)
                    .ok()
                    .as_ref()
                    == Some(json)
            }
            (None, Some(text)) => got.body == text.as_bytes(),
            (None, None) => return Err("challenge_response without json or text".into()),
        };
        if same {
            Ok(())
        } else {
            Err(format!(
                "handshake body {:?}",
                String::from_utf8_lossy(&got.body)
            ))
        }
    }
}

impl Case {
    fn params(&self) -> VerifierParams {
        let secrets = self
            .secret
            .iter()
            .chain(self.extra_secrets.iter().flatten());
        // Standard Webhooks' "v1"/"v1a" only describe the case: the scheme
        // follows from secrets vs public_key. GitHub's "sha1", Square's
        // "sha1-legacy" and GitLab's "signing-token" are the presets' own
        // variant names, passed through as they are.
        let variant = match (self.provider.as_str(), self.variant.as_deref()) {
            ("standard-webhooks" | "svix", Some("v1" | "v1a")) => None,
            (_, v) => v.map(str::to_owned),
        };
        VerifierParams {
            secrets: secrets.map(Secret::new).collect(),
            public_key: self.public_key.clone(),
            tolerance_s: self.tolerance_s,
            variant,
            hmac: None,
        }
    }

    fn headers(&self) -> Result<HeaderMap, String> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let name =
                HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("{name}: {e}"))?;
            map.append(name, value);
        }
        Ok(map)
    }

    fn body(&self) -> Result<Vec<u8>, String> {
        match (&self.body, &self.body_base64) {
            (Some(text), None) => Ok(text.as_bytes().to_vec()),
            (None, Some(b64)) => STANDARD
                .decode(b64)
                .map_err(|e| format!("body_base64: {e}")),
            (None, None) => Ok(Vec::new()),
            (Some(_), Some(_)) => Err("both body and body_base64".into()),
        }
    }

    /// The answer the router owes this request if it is an endpoint check:
    /// the vector's `challenge_response`, or, for Discord, whose vectors
    /// carry PINGs without one, the PING answer SIGNATURES.md documents.
    fn expected_handshake(&self, body: &[u8]) -> Option<ChallengeResponse> {
        if let Some(expected) = &self.challenge_response {
            return Some(expected.clone());
        }
        let ping = self.provider == "discord"
            && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["type"] == 1);
        ping.then(|| ChallengeResponse {
            content_type: "application/json".into(),
            json: Some(serde_json::json!({ "type": 1 })),
            text: None,
        })
    }

    /// `Ok(())` when the preset's verdict is the expected one, else why not.
    fn run(&self, preset_name: &str) -> Result<(), String> {
        let build = preset(preset_name).ok_or_else(|| format!("no preset {preset_name}"))?;
        let verifier = build(&self.params()).map_err(|e| format!("build failed: {e}"))?;
        let headers = self.headers()?;
        let body = self.body()?;
        let method = match &self.method {
            Some(m) => Method::from_bytes(m.as_bytes()).map_err(|e| e.to_string())?,
            None => Method::POST,
        };
        let req = Unverified {
            method: &method,
            url: self.url.as_deref().unwrap_or(""),
            headers: &headers,
            body: &body,
        };
        let got = verifier.verify(&req, self.now_unix);
        match (self.expect.as_str(), &got) {
            // An accepted request is either the documented handshake or an
            // event, never an event mistaken for a handshake.
            ("valid", Ok(_)) => match (self.expected_handshake(&body), verifier.handshake(&req)) {
                (Some(expected), got) => expected.check(got.as_ref()),
                (None, None) => Ok(()),
                (None, Some(h)) => Err(format!("an event answered as a handshake: {h:?}")),
            },
            ("invalid", Err(_)) => Ok(()),
            ("valid" | "invalid", _) => Err(format!("expected {}, got {got:?}", self.expect)),
            (other, _) => Err(format!("unknown expect {other:?}")),
        }
    }
}

#[test]
fn provider_vectors() {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| {
        panic!("cannot read {VECTORS}: {e} (shared/ must sit beside the repo)")
    });
    let vectors: Vectors = serde_json::from_str(&text).expect("provider-vectors.json parses");
    let presets: HashMap<&str, &str> = PROVIDERS.into_iter().collect();

    let mut checked: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in &vectors.cases {
        let Some(preset_name) = presets.get(case.provider.as_str()) else {
            continue;
        };
        let counts = checked.entry(preset_name).or_default();
        match case.expect.as_str() {
            "valid" => counts.0 += 1,
            _ => counts.1 += 1,
        }
        if let Err(why) = case.run(preset_name) {
            failures.push(format!("{}: {why}", case.id));
        }
    }
    for (provider, preset_name) in PROVIDERS {
        let (valid, invalid) = checked.get(preset_name).copied().unwrap_or_default();
        println!("{provider}: {valid} valid + {invalid} invalid cases checked");
        if valid + invalid == 0 {
            failures.push(format!("{provider}: no cases in {VECTORS}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Garbage in every header any preset reads, at extreme clocks: each preset
/// must answer with an error (a 4xx upstream), never panic or accept.
#[test]
fn hostile_headers_are_refused_without_panicking() {
    let names = [
        "stripe-signature",
        "x-hub-signature-256",
        "x-hub-signature",
        "x-github-delivery",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "x-shopify-hmac-sha256",
        "shopify-hmac-sha256",
        "x-shopify-event-id",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "x-signature",
        "x-signature-ed25519",
        "x-signature-timestamp",
        "x-square-hmacsha256-signature",
        "x-square-signature",
        "x-zm-signature",
        "x-zm-request-timestamp",
        "twitch-eventsub-message-id",
        "twitch-eventsub-message-timestamp",
        "twitch-eventsub-message-signature",
        "paddle-signature",
        "linear-signature",
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
        "i-twilio-idempotency-token",
        "x-gitlab-token",
        "idempotency-key",
        "x-twilio-email-event-webhook-signature",
        "x-twilio-email-event-webhook-timestamp",
        "typeform-signature",
        "x-hubspot-signature-v3",
        "x-hubspot-request-timestamp",
    ];
    let long_hex = "0".repeat(64);
    let long_b64 = format!("{}==", "A".repeat(86));
    let values: Vec<Vec<u8>> = [
        String::new(),
        " ".into(),
        "=".into(),
        ",".into(),
        "t=".into(),
        "t=1,v1=".into(),
        format!("t=1,v1={long_hex}"),
        format!("t=99999999999999999999,v1={long_hex}"),
        format!("t=-1,v1={long_hex}"),
        "v1,".into(),
        "v1a,".into(),
        format!("v1a,{long_b64}"),
        "v1,====".into(),
        ",,, ,,".into(),
        format!("sha256={long_hex}"),
        format!("sha1={}", "0".repeat(40)),
        format!("v0={long_hex}"),
        "9223372036854775807".into(),
        "-9223372036854775808".into(),
        "a".repeat(16 * 1024),
        format!("v1,{} ", "A".repeat(44)).repeat(200),
    ]
    .into_iter()
    .map(String::into_bytes)
    .chain([b"\xff\xfe".to_vec(), "Zo\u{eb}".as_bytes().to_vec()])
    .collect();

    let secrets = || vec![Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
    let public_key = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";
    let hmac = HmacParams {
        header: "X-Signature".into(),
        algorithm: HmacAlgorithm::Sha256,
        encoding: SignatureEncoding::Hex,
        prefix: Some("sha256=".into()),
        id_header: Some("X-GitHub-Delivery".into()),
    };
    let discord_key = hex::encode(STANDARD.decode(&public_key[5..]).unwrap());
    let sendgrid_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELPvsA+xvcpwrIzghIOKguNcViWAC4aKnMY0sKOWy4pso8qRiLZNPxOtmdVg6izA6zOM8S8G5ezpch2MyB1lq/g==";
    let keyed = |key: &str| VerifierParams {
        public_key: Some(key.into()),
        ..Default::default()
    };
    let with_secrets = |variant: Option<&str>| VerifierParams {
        secrets: secrets(),
        variant: variant.map(str::to_owned),
        ..Default::default()
    };
    let mut configs = vec![
        ("discord", keyed(&discord_key)),
        ("sendgrid", keyed(sendgrid_key)),
        ("square", with_secrets(Some("sha1-legacy"))),
        ("gitlab", with_secrets(None)),
        ("gitlab", with_secrets(Some("signing-token"))),
    ];
    for name in [
        "zoom", "twitch", "paddle", "linear", "twilio", "intercom", "typeform", "hubspot",
        "mailgun",
    ] {
        configs.push((name, with_secrets(None)));
    }
    configs.extend([
        (
            "stripe",
            VerifierParams {
                secrets: secrets(),
                ..Default::default()
            },
        ),
        (
            "github",
            VerifierParams {
                secrets: secrets(),
                variant: Some("sha1".into()),
                ..Default::default()
            },
        ),
        (
            "slack",
            VerifierParams {
                secrets: secrets(),
                ..Default::default()
            },
        ),
        (
            "shopify",
            VerifierParams {
                secrets: secrets(),
                ..Default::default()
            },
        ),
        (
            "hmac",
            VerifierParams {
                secrets: secrets(),
                hmac: Some(hmac),
                ..Default::default()
            },
        ),
        (
            "standard-webhooks",
            VerifierParams {
                secrets: secrets(),
                public_key: Some(public_key.into()),
                ..Default::default()
            },
        ),
        (
            "svix",
            VerifierParams {
                secrets: secrets(),
                public_key: Some(public_key.into()),
                ..Default::default()
            },
        ),
    ]);
    let method = Method::POST;
    let mut accepted = Vec::new();
    for (name, params) in configs {
        let verifier = preset(name).unwrap()(&params).unwrap();
        for value in &values {
            let value = HeaderValue::from_bytes(value).unwrap();
            for repeat in [1, 2] {
                let mut headers = HeaderMap::new();
                for header in names {
                    for _ in 0..repeat {
                        headers.append(header, value.clone());
                    }
                }
                for now in [0, i64::MIN, i64::MAX] {
                    let req = Unverified {
                        method: &method,
                        url: "",
                        headers: &headers,
                        body: b"{}",
                    };
                    if let Ok(v) = verifier.verify(&req, now) {
                        accepted.push(format!("{name} accepted {value:?} x{repeat}: {v:?}"));
                    }
                }
            }
        }
    }
    assert!(accepted.is_empty(), "{}", accepted.join("\n"));
}
