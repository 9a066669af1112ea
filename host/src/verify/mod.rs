//! Signature verification on the raw request, before anything parses it.
//!
//! Each provider scheme is one file with a type implementing [`Verifier`]; the
//! [`PRESETS`] table maps the `verify = "..."` names of router.toml to their
//! builders, so adding a preset is one file plus one line there. Verifiers do
//! no I/O and take the current time as a parameter, so timestamped test
//! vectors are checked at their own `now_unix`.

use std::sync::Arc;

use base64::Engine as _;
use hmac::digest::KeyInit;
use hmac::Mac;
use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

mod discord;
mod generic_hmac;
mod github;
mod gitlab;
mod hubspot;
mod intercom;
mod linear;
mod mailgun;
mod none;
mod paddle;
mod sendgrid;
mod shopify;
mod slack;
mod square;
mod standard_webhooks;
mod stripe;
mod twilio;
mod twitch;
mod typeform;
mod zoom;

#[cfg(test)]
mod sign_tests;
#[cfg(test)]
mod vector_tests;

/// A request as received, not yet trusted. Only [`Verifier::verify`] turns it
/// into a [`Verified`] outcome, and only a verified request is stored.
#[derive(Debug, Clone, Copy)]
pub struct Unverified<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The full public URL the provider called (scheme, host, path, query);
    /// URL-signing schemes sign it. Empty for the others: the receive path
    /// builds it only when [`Verifier::signs_url`] says so.
    pub url: &'a str,
    /// The request headers (names are case-insensitive).
    pub headers: &'a HeaderMap,
    /// The raw body bytes exactly as received.
    pub body: &'a [u8],
}

/// What a successful verification establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The scheme that accepted the request (`"github"`, `"none"`, ...),
    /// stored with the event as its verification result.
    pub scheme: &'static str,
    /// The provider's own event or delivery id where the scheme has one
    /// (`webhook-id`, `X-GitHub-Delivery`, Stripe's body `id`, ...). `None`
    /// means the caller falls back to the SHA-256 of the body.
    pub provider_id: Option<String>,
}

/// Why a request was refused. Displays never contain a secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    /// A header is present but not in the scheme's format (or is repeated).
    #[error("malformed header `{header}`: {reason}")]
    MalformedHeader {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request is well-formed but no signature matched any secret.
    #[error("signature does not match")]
    Mismatch,
    /// A body field the scheme reads before or after the signature check (a
    /// signature object in the body, a signed timestamp) is absent or not in
    /// the scheme's format.
    #[error("malformed body field `{field}`: {reason}")]
    MalformedBody {
        /// The field's name (a JSON path such as `signature.token`).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The signature matched but its timestamp is outside the replay window.
    #[error("timestamp is outside the {tolerance_s} s window")]
    TimestampOutOfWindow {
        /// The window that was applied, in seconds either side of now.
        tolerance_s: u64,
    },
}

/// One provider's signature scheme, configured with its secrets.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// Checks `req` as of `now_unix` (seconds since the epoch).
    fn verify(&self, req: &Unverified<'_>, now_unix: i64) -> Result<Verified, VerifyError>;

    /// Whether [`Verifier::verify`] reads [`Unverified::url`]. Only
    /// URL-signing schemes do, and the receive path builds the URL (an
    /// allocation and a copy per request) only for them; the others get an
    /// empty one.
    fn signs_url(&self) -> bool {
        false
    }

    /// The router's own answer when `req` is the provider checking the
    /// endpoint (Slack `url_verification`, Twitch callback verification,
    /// ...) rather than an event: sent instead of storing anything. Called
    /// only after [`Verifier::verify`] accepted `req`. Most schemes have none.
    fn handshake(&self, req: &Unverified<'_>) -> Option<Handshake> {
        let _ = req;
        None
    }

    /// The headers the provider would send with `body`, signed with the
    /// configured secret (the last one: the newest during a rotation) at
    /// `now_unix`, so the request passes [`Verifier::verify`]; `delivery_id`
    /// goes where the provider puts its id. For `hookyard send`. `None`
    /// when the router cannot sign for the scheme (a provider's private
    /// key, a URL-signing scheme, or not yet written).
    fn sign(&self, body: &[u8], delivery_id: &str, now_unix: i64) -> Option<Signed> {
        let _ = (body, delivery_id, now_unix);
        None
    }
}

/// Headers a provider would send, as [`Verifier::sign`] makes them.
pub type Signed = Vec<(String, String)>;

/// An answer to a provider's endpoint check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The answer's `Content-Type`.
    pub content_type: &'static str,
    /// The answer's body.
    pub body: Vec<u8>,
}

/// The per-source settings a verifier is built from (already read from
/// router.toml; the config module checks which keys each preset accepts).
#[derive(Debug, Clone, Default)]
pub struct VerifierParams {
    /// Signing secrets; several during a rotation, any one may match.
    pub secrets: Vec<Secret>,
    /// Public key for asymmetric schemes (`whpk_...` for Standard Webhooks
    /// v1a, hex for Discord, base64 DER for SendGrid).
    pub public_key: Option<String>,
    /// Replay window in seconds, overriding the preset's default.
    pub tolerance_s: Option<u64>,
    /// A preset's opt-in sub-scheme (`"sha1"` for GitHub's legacy header,
    /// `"sha1-legacy"` for Square's, `"signing-token"` for GitLab's).
    pub variant: Option<String>,
    /// Settings of the generic `hmac` preset.
    pub hmac: Option<HmacParams>,
}

/// Settings of the generic `hmac` preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacParams {
    /// Header carrying the signature (`X-Signature`).
    pub header: String,
    /// Digest: `sha256` (default), `sha512` or `sha1`.
    pub algorithm: HmacAlgorithm,
    /// Signature encoding: `hex` (default) or `base64`.
    pub encoding: SignatureEncoding,
    /// Prefix before the encoded signature, such as `sha256=`.
    pub prefix: Option<String>,
    /// Header holding the provider's delivery id, used as idempotency key.
    pub id_header: Option<String>,
}

/// Digest of the generic `hmac` preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
    /// HMAC-SHA1 (legacy providers only).
    Sha1,
}

/// Encoding of a signature in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Lowercase or uppercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// Why a verifier could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A setting the preset needs is absent.
    #[error("`{key}` is required for verify = \"{preset}\"")]
    Missing {
        /// The preset.
        preset: &'static str,
        /// The router.toml key.
        key: &'static str,
    },
    /// A setting has a value the preset cannot use.
    #[error("`{key}` is invalid for verify = \"{preset}\": {reason}")]
    Invalid {
        /// The preset.
        preset: &'static str,
        /// The router.toml key.
        key: &'static str,
        /// What was expected (never the secret itself).
        reason: String,
    },
}

/// Builds one preset's verifier from its settings.
pub type BuildFn = fn(&VerifierParams) -> Result<Arc<dyn Verifier>, BuildError>;

/// Every `verify = "..."` name router.toml accepts, with its builder.
/// Adding a preset: one file in this folder, one line here.
pub const PRESETS: &[(&str, BuildFn)] = &[
    ("none", none::build),
    ("hmac", generic_hmac::build),
    ("github", github::build),
    ("stripe", stripe::build),
    ("slack", slack::build),
    ("shopify", shopify::build),
    ("standard-webhooks", standard_webhooks::build),
    ("svix", standard_webhooks::build_svix),
    ("discord", discord::build),
    ("square", square::build),
    ("zoom", zoom::build),
    ("twitch", twitch::build),
    ("paddle", paddle::build),
    ("linear", linear::build),
    ("twilio", twilio::build),
    ("gitlab", gitlab::build),
    ("sendgrid", sendgrid::build),
    ("intercom", intercom::build),
    ("typeform", typeform::build),
    ("hubspot", hubspot::build),
    ("mailgun", mailgun::build),
];

/// Looks up a preset by name; `None` for an unknown name.
pub fn preset(name: &str) -> Option<BuildFn> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The value of a header that must appear at most once. A repeated signature
/// header is refused: which copy was meant is ambiguous, and picking one
/// would let an attacker append a header of their choosing.
pub(crate) fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::MalformedHeader {
            header: name,
            reason: "header is repeated",
        });
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| VerifyError::MalformedHeader {
            header: name,
            reason: "not visible ASCII",
        })
}

/// Like [`single_header`] but the header is required.
pub(crate) fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    single_header(headers, name)?.ok_or(VerifyError::MissingHeader(name))
}

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks `|now - ts| <= tolerance_s` without overflow. Future timestamps are
/// refused as well as stale ones: a symmetric window is the only one that
/// bounds how long a captured request stays replayable.
pub(crate) fn check_window(ts: i64, now_unix: i64, tolerance_s: u64) -> Result<(), VerifyError> {
    let skew = ts.abs_diff(now_unix);
    if skew > tolerance_s {
        return Err(VerifyError::TimestampOutOfWindow { tolerance_s });
    }
    Ok(())
}

/// As [`check_window`] for a timestamp in milliseconds (HubSpot, Linear),
/// compared at millisecond precision in `i128` so no value can overflow.
pub(crate) fn check_window_ms(
    ts_ms: i64,
    now_unix: i64,
    tolerance_s: u64,
) -> Result<(), VerifyError> {
    let skew_ms = (i128::from(ts_ms) - i128::from(now_unix) * 1000).unsigned_abs();
    if skew_ms > u128::from(tolerance_s) * 1000 {
        return Err(VerifyError::TimestampOutOfWindow { tolerance_s });
    }
    Ok(())
}

/// Parses a decimal unix timestamp in seconds, refusing signs, spaces and
/// anything that does not fit an `i64`.
pub(crate) fn parse_unix_seconds(value: &str, header: &'static str) -> Result<i64, VerifyError> {
    let malformed = VerifyError::MalformedHeader {
        header,
        reason: "timestamp is not a decimal number of seconds",
    };
    if value.is_empty() || value.len() > 18 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed);
    }
    value.parse().map_err(|_| malformed)
}

/// At least one secret, or the `secrets` key is missing.
pub(crate) fn require_secrets(
    params: &VerifierParams,
    preset: &'static str,
) -> Result<Vec<Secret>, BuildError> {
    if params.secrets.is_empty() {
        return Err(BuildError::Missing {
            preset,
            key: "secrets",
        });
    }
    Ok(params.secrets.clone())
}

/// Shorthand for a [`VerifyError::MalformedHeader`].
pub(crate) fn malformed(header: &'static str, reason: &'static str) -> VerifyError {
    VerifyError::MalformedHeader { header, reason }
}

/// Refuses any `variant` for a preset that has none: a typo there must not
/// silently leave the default scheme in place.
pub(crate) fn no_variant(params: &VerifierParams, preset: &'static str) -> Result<(), BuildError> {
    match params.variant {
        None => Ok(()),
        Some(_) => Err(BuildError::Invalid {
            preset,
            key: "variant",
            reason: "this preset has no variants".into(),
        }),
    }
}

/// Refuses `tolerance_s` for a preset that signs no timestamp: a window the
/// operator believes is applied, but is not, is worse than an error.
pub(crate) fn no_tolerance(
    params: &VerifierParams,
    preset: &'static str,
) -> Result<(), BuildError> {
    match params.tolerance_s {
        None => Ok(()),
        Some(_) => Err(BuildError::Invalid {
            preset,
            key: "tolerance_s",
            reason: "this preset signs no timestamp, so there is no window".into(),
        }),
    }
}

/// Reads the body as a JSON object into `T` (unknown fields skipped), or
/// `None`. Only an object is considered: serde would also read a struct from
/// a JSON array positionally.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(body).ok()
}

/// The top-level string field `name` of a JSON object body, if non-empty:
/// the provider's event id for presets that carry it in the body.
pub(crate) fn body_event_id(body: &[u8], name: &str) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = json_object(body)?;
    match map.get(name)? {
        serde_json::Value::String(id) if !id.is_empty() => Some(id.clone()),
        _ => None,
    }
}

/// The start of a build for a key-pair scheme: no `variant`, no `secrets`
/// (`provider` signs with its private key), and the `public_key` text.
pub(crate) fn public_key_only<'p>(
    params: &'p VerifierParams,
    preset: &'static str,
    provider: &str,
) -> Result<&'p str, BuildError> {
    no_variant(params, preset)?;
    if !params.secrets.is_empty() {
        return Err(BuildError::Invalid {
            preset,
            key: "secrets",
            reason: format!("{provider} signs with a key pair; configure only public_key"),
        });
    }
    params.public_key.as_deref().ok_or(BuildError::Missing {
        preset,
        key: "public_key",
    })
}

/// The provider's id from the first of `names` that is present and not
/// empty, in order of preference. A repeated header is refused like a
/// repeated signature header: which copy is the idempotency key would be
/// ambiguous.
pub(crate) fn id_header(
    headers: &HeaderMap,
    names: &[&'static str],
) -> Result<Option<String>, VerifyError> {
    for name in names {
        if let Some(id) = single_header(headers, name)?.filter(|id| !id.is_empty()) {
            return Ok(Some(id.to_owned()));
        }
    }
    Ok(None)
}

/// Decodes a signature that must be exactly `len` bytes. The length is checked
/// on the encoded text first, so a hex digest sent where base64 is expected (or
/// a truncated one) is refused as malformed before any comparison.
pub(crate) fn decode_signature(
    value: &str,
    encoding: SignatureEncoding,
    len: usize,
    header: &'static str,
) -> Result<Vec<u8>, VerifyError> {
    let wrong_length = malformed(header, "signature has the wrong length");
    match encoding {
        SignatureEncoding::Hex => {
            if value.len() != 2 * len {
                return Err(wrong_length);
            }
            // `hex` accepts both cases; the bytes are what is compared.
            hex::decode(value).map_err(|_| malformed(header, "signature is not hex"))
        }
        SignatureEncoding::Base64 => {
            if value.len() != 4 * len.div_ceil(3) {
                return Err(wrong_length);
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| malformed(header, "signature is not base64"))?;
            // Padding can still shorten a text of the right length.
            if bytes.len() != len {
                return Err(wrong_length);
            }
            Ok(bytes)
        }
    }
}

/// The signing keys of an HMAC scheme, keyed once at build time: a request
/// pays only for its own bytes, keying cannot fail on the request path, and no
/// secret string is kept. `Debug` shows only how many keys there are.
#[derive(Clone)]
pub(crate) struct MacKeys<M> {
    keyed: Vec<M>,
}

impl<M: Mac + KeyInit + Clone> MacKeys<M> {
    /// The usual start of an HMAC preset's build: no `variant`, at least
    /// one secret, each secret's UTF-8 bytes as a key (used verbatim).
    pub(crate) fn from_params(
        params: &VerifierParams,
        preset: &'static str,
    ) -> Result<Self, BuildError> {
        no_variant(params, preset)?;
        let secrets = require_secrets(params, preset)?;
        Self::new(secrets.iter().map(|s| s.expose().as_bytes()), preset)
    }

    /// Keys `M` with each of `keys`. An empty key is refused: anyone could
    /// compute a MAC under it, so it would accept forged requests.
    pub(crate) fn new<'k>(
        keys: impl IntoIterator<Item = &'k [u8]>,
        preset: &'static str,
    ) -> Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::Invalid {
            preset,
            key: "secrets",
            reason: reason.into(),
        };
        let keyed = keys
            .into_iter()
            .map(|key| {
                if key.is_empty() {
                    return Err(invalid("a secret is empty"));
                }
                <M as KeyInit>::new_from_slice(key)
                    .map_err(|_| invalid("a secret has a length the MAC cannot use"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keyed.is_empty() {
            return Err(BuildError::Missing {
                preset,
                key: "secrets",
            });
        }
        Ok(Self { keyed })
    }

    /// Length in bytes of this MAC's output.
    pub(crate) fn output_len() -> usize {
        M::output_size()
    }

    /// Whether the MAC of the concatenated `parts` under any key equals any of
    /// `candidates` (several secrets during a rotation; several signatures
    /// when the provider signs with each active secret). Each comparison is
    /// constant-time; which key matched is not secret.
    pub(crate) fn matches_any<S: AsRef<[u8]>>(&self, parts: &[&[u8]], candidates: &[S]) -> bool {
        self.matching_key(parts, candidates).is_some()
    }

    /// Which key (by position) makes one of `candidates`, if any.
    pub(crate) fn matching_key<S: AsRef<[u8]>>(
        &self,
        parts: &[&[u8]],
        candidates: &[S],
    ) -> Option<usize> {
        (0..self.keyed.len()).find(|&i| {
            let tag = self.tag(i, parts);
            candidates.iter().any(|c| ct_eq(&tag, c.as_ref()))
        })
    }

    /// The MAC of the concatenated `parts` under the last key (the newest
    /// secret during a rotation): what the provider sends now.
    pub(crate) fn sign(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.tag(self.keyed.len() - 1, parts)
    }

    /// The MAC of the concatenated `parts` under key `index` (see
    /// [`MacKeys::matching_key`]).
    pub(crate) fn tag(&self, index: usize, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = self.keyed[index].clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }
}

impl<M> std::fmt::Debug for MacKeys<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacKeys")
            .field("keys", &self.keyed.len())
            .finish()
    }
}

/// The `v0` scheme Slack and Zoom share: `<sig_header>: v0=<hex>`, the
/// HMAC-SHA256 of `"v0:" + <ts_header> + ":" + body`. Returns which key
/// signed and the signed timestamp (the caller checks its window).
pub(crate) fn v0_signer(
    keys: &MacKeys<hmac::Hmac<sha2::Sha256>>,
    req: &Unverified<'_>,
    sig_header: &'static str,
    ts_header: &'static str,
) -> Result<(usize, i64), VerifyError> {
    let signature = required_header(req.headers, sig_header)?;
    let ts_text = required_header(req.headers, ts_header)?;
    let hex = signature
        .strip_prefix("v0=")
        .ok_or(malformed(sig_header, "expected v0=<hex>"))?;
    let mac = decode_signature(hex, SignatureEncoding::Hex, 32, sig_header)?;
    let ts = parse_unix_seconds(ts_text, ts_header)?;
    let signed: [&[u8]; 4] = [b"v0:", ts_text.as_bytes(), b":", req.body];
    let key = keys
        .matching_key(&signed, &[mac])
        .ok_or(VerifyError::Mismatch)?;
    Ok((key, ts))
}

/// What [`v0_signer`] checks, made with the newest key at `now_unix`.
pub(crate) fn v0_sign(
    keys: &MacKeys<hmac::Hmac<sha2::Sha256>>,
    body: &[u8],
    now_unix: i64,
    sig_header: &'static str,
    ts_header: &'static str,
) -> Signed {
    let ts = now_unix.to_string();
    let mac = keys.sign(&[b"v0:", ts.as_bytes(), b":", body]);
    vec![
        (sig_header.into(), format!("v0={}", hex::encode(mac))),
        (ts_header.into(), ts),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// Helpers for the presets' unit tests: headers, signing and a call at a time.
#[cfg(test)]
pub(crate) mod test_support {
    use hmac::{Hmac, Mac};
    use http::{HeaderMap, HeaderName, HeaderValue, Method};
    use sha2::Sha256;

    use super::{Unverified, Verified, Verifier, VerifierParams, VerifyError};
    use crate::secret::Secret;

    /// A header map from `(name, value)` pairs, repeated names appended.
    pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// Params with the given secrets and nothing else.
    pub(crate) fn params(secrets: &[&str]) -> VerifierParams {
        VerifierParams {
            secrets: secrets.iter().map(|s| Secret::new(*s)).collect(),
            ..VerifierParams::default()
        }
    }

    /// HMAC-SHA256 of the concatenated `parts`.
    pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().to_vec()
    }

    /// Runs `verifier` on a POST with `headers` and `body` at `now_unix`.
    pub(crate) fn check(
        verifier: &dyn Verifier,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Verified, VerifyError> {
        check_url(
            verifier,
            "https://example.com/hook",
            headers,
            body,
            now_unix,
        )
    }

    /// As [`check`] with the URL the provider called (URL-signing schemes).
    pub(crate) fn check_url(
        verifier: &dyn Verifier,
        url: &str,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Verified, VerifyError> {
        let method = Method::POST;
        let req = Unverified {
            method: &method,
            url,
            headers,
            body,
        };
        verifier.verify(&req, now_unix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_symmetric_and_overflow_safe() {
        assert!(check_window(1000, 1300, 300).is_ok());
        assert!(check_window(1600, 1300, 300).is_ok());
        assert!(check_window(999, 1300, 300).is_err());
        assert!(check_window(1601, 1300, 300).is_err());
        assert!(check_window(i64::MIN, i64::MAX, 300).is_err());
    }

    #[test]
    fn millisecond_window_is_symmetric_and_overflow_safe() {
        assert!(check_window_ms(1_000_000, 1300, 300).is_ok());
        assert!(check_window_ms(1_600_000, 1300, 300).is_ok());
        assert!(check_window_ms(999_999, 1300, 300).is_err());
        assert!(check_window_ms(1_600_001, 1300, 300).is_err());
        assert!(check_window_ms(i64::MIN, i64::MAX, u64::MAX).is_ok());
        assert!(check_window_ms(i64::MAX, i64::MIN, 300).is_err());
    }

    #[test]
    fn timestamps_refuse_signs_and_overflow() {
        assert!(parse_unix_seconds("1767225600", "t").is_ok());
        for bad in ["", "-1", "+1", " 1", "1e9", "99999999999999999999"] {
            assert!(parse_unix_seconds(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_headers_are_malformed() {
        let mut h = HeaderMap::new();
        h.append("x-sig", "a".parse().unwrap());
        h.append("x-sig", "b".parse().unwrap());
        assert!(matches!(
            single_header(&h, "x-sig"),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }
}
