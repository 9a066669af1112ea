//! `verify = "twilio"`: `X-Twilio-Signature`, the base64 HMAC-SHA1 (keyed by
//! the auth token) of the public URL followed by every form parameter,
//! sorted by name, as `name + value` with no separators.
//!
//! Three details follow Twilio's SDKs. A JSON body is signed differently: the
//! URL carries `bodySHA256=<hex>`, only the URL is signed, and the body must
//! hash to that value. Twilio is inconsistent about the default port, so the
//! URL is tried as given and with the default port added or removed (only
//! `:443` for https and `:80` for http: another port is another endpoint).
//! With Webhook Rules, `X-Twilio-Webhooks-Signature-Settings:
//! key=…,algorithm=HMAC_SHA256` says the same string is signed with
//! HMAC-SHA256 keyed by the SharedKey secret (configured in `secrets`).
//! No timestamp is signed; `I-Twilio-Idempotency-Token` is the idempotency
//! key.

use std::sync::Arc;

use hmac::Hmac;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{
    ct_eq, decode_signature, id_header, malformed, no_tolerance, required_header, single_header,
    BuildError, MacKeys, SignatureEncoding, Unverified, Verified, Verifier, VerifierParams,
    VerifyError,
};

const PRESET: &str = "twilio";
const SIGNATURE_HEADER: &str = "X-Twilio-Signature";
const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
const ID_HEADER: &str = "I-Twilio-Idempotency-Token";
const BODY_HASH_PARAM: &str = "bodySHA256";

/// The Twilio verifier: the same secrets keyed for both digests, since the
/// request's settings header chooses the digest.
#[derive(Debug)]
struct Twilio {
    sha1: MacKeys<Hmac<Sha1>>,
    sha256: MacKeys<Hmac<Sha256>>,
}

/// Builds the `twilio` verifier: `secrets` required (auth token, and/or
/// SharedKey secrets); no window.
pub(super) fn build(params: &VerifierParams) -> Result<Arc<dyn Verifier>, BuildError> {
    no_tolerance(params, PRESET)?;
    let sha1 = MacKeys::from_params(params, PRESET)?;
    let sha256 = MacKeys::from_params(params, PRESET)?;
    Ok(Arc::new(Twilio { sha1, sha256 }))
}

impl Verifier for Twilio {
    fn signs_url(&self) -> bool {
        true
    }

    fn verify(&self, req: &Unverified<'_>, _now_unix: i64) -> Result<Verified, VerifyError> {
        let signature = required_header(req.headers, SIGNATURE_HEADER)?;
        let sha256 = match single_header(req.headers, SETTINGS_HEADER)? {
            None => false,
            Some(settings) => uses_sha256(settings)?,
        };
        let len = if sha256 { 32 } else { 20 };
        let mac = decode_signature(signature, SignatureEncoding::Base64, len, SIGNATURE_HEADER)?;

        let params = match body_hash_param(req.url)? {
            // JSON body: only the URL is signed; the body is bound by its hash.
            Some(expected) => {
                let actual = Sha256::digest(req.body);
                if !ct_eq(&actual, &expected) {
                    return Err(VerifyError::Mismatch);
                }
                Vec::new()
            }
            None => sorted_form_params(req.body),
        };
        let matched = url_variants(req.url).iter().any(|url| {
            let signed: [&[u8]; 2] = [url.as_bytes(), &params];
            if sha256 {
                self.sha256.matches_any(&signed, &[&mac])
            } else {
                self.sha1.matches_any(&signed, &[&mac])
            }
        });
        if !matched {
            return Err(VerifyError::Mismatch);
        }
        Ok(Verified {
            scheme: PRESET,
            provider_id: id_header(req.headers, &[ID_HEADER])?,
        })
    }
}

/// Whether `key=…,algorithm=…` selects HMAC-SHA256 (else HMAC-SHA1).
fn uses_sha256(settings: &str) -> Result<bool, VerifyError> {
    let mut algorithm = None;
    for element in settings.split(',') {
        let (key, value) = element
            .trim()
            .split_once('=')
            .ok_or(malformed(SETTINGS_HEADER, "element without `=`"))?;
        if key == "algorithm" {
            if algorithm.is_some() {
                return Err(malformed(SETTINGS_HEADER, "repeated algorithm"));
            }
            algorithm = Some(value);
        }
    }
    match algorithm {
        Some("HMAC_SHA256") => Ok(true),
        Some("HMAC_SHA1") | None => Ok(false),
        Some(_) => Err(malformed(SETTINGS_HEADER, "unknown algorithm")),
    }
}

/// The decoded `bodySHA256` query parameter, if the URL has one.
fn body_hash_param(url: &str) -> Result<Option<Vec<u8>>, VerifyError> {
    let query = url.split('#').next().unwrap_or("").split_once('?');
    let Some((_, query)) = query else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        if let Some(value) = pair
            .strip_prefix(BODY_HASH_PARAM)
            .and_then(|r| r.strip_prefix('='))
        {
            if found.is_some() {
                return Err(malformed(
                    SIGNATURE_HEADER,
                    "bodySHA256 is repeated in the URL",
                ));
            }
            found = Some(value);
        }
    }
    found
        .map(|hex| {
            decode_signature(hex, SignatureEncoding::Hex, 32, SIGNATURE_HEADER).map_err(|_| {
                malformed(
                    SIGNATURE_HEADER,
                    "bodySHA256 in the URL is not 64 hex digits",
                )
            })
        })
        .transpose()
}

/// The form parameters as Twilio signs them: decoded, sorted by name and
/// then by value (for repeated names), concatenated as `name + value`.
/// A body that is not a form decodes to whatever pairs it has; the MAC
/// decides whether they are the signed ones.
fn sorted_form_params(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = body
        .split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            (form_decode(name), form_decode(value))
        })
        .collect();
    // UTF-8 byte order is code point order, which is how the SDKs sort.
    pairs.sort();
    pairs
        .into_iter()
        .flat_map(|(n, v)| [n, v])
        .flatten()
        .collect()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; an invalid escape is kept as is, as Python's `unquote_plus` does.
fn form_decode(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                text.get(i + 1).and_then(|b| hex(*b)),
                text.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// The URL as given, plus the same URL with its default port toggled: added
/// when absent, removed when it is `:443` (https) or `:80` (http).
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return variants;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port follows the last `:` after any userinfo and IPv6 literal.
    let host_start = authority.rfind(['@', ']']).map_or(0, |i| i + 1);
    let toggled = match authority[host_start..].rfind(':') {
        Some(i) if &authority[host_start + i + 1..] == default_port => {
            authority[..host_start + i].to_owned()
        }
        Some(_) => return variants,
        None => format!("{authority}:{default_port}"),
    };
    variants.push(format!("{scheme}://{toggled}{tail}"));
    variants
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use hmac::Mac;

    use super::super::test_support::{check_url, headers, hmac_sha256, params};
    use super::*;

    const TOKEN: &str = "12345";
    // Twilio's documented example.
    const DOCS_URL: &str = "https://example.com/myapp.php?foo=1&bar=2";
    const DOCS_BODY: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212";
    const DOCS_SIG: &str = "L/OH5YylLD5NRKLltdqwSvS0BnU=";

    fn sha1_b64(parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
        for p in parts {
            mac.update(p);
        }
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn run(url: &str, pairs: &[(&str, &str)], body: &[u8]) -> Result<Verified, VerifyError> {
        check_url(
            &*build(&params(&[TOKEN])).unwrap(),
            url,
            &headers(pairs),
            body,
            0,
        )
    }

    #[test]
    fn docs_example_and_idempotency_token() {
        let pairs = [
            ("X-Twilio-Signature", DOCS_SIG),
            ("I-Twilio-Idempotency-Token", "0f3c1c3e-2b8a"),
        ];
        let got = run(DOCS_URL, &pairs, DOCS_BODY).unwrap();
        assert_eq!(
            got,
            Verified {
                scheme: "twilio",
                provider_id: Some("0f3c1c3e-2b8a".into())
            }
        );
        let got = run(DOCS_URL, &pairs[..1], DOCS_BODY).unwrap();
        assert_eq!(got.provider_id, None);
        assert_eq!(
            run(DOCS_URL, &pairs, b"CallSid=CA1234567890ABCDE&Digits=9"),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn default_port_is_tolerated_both_ways_but_no_other_port() {
        let with_port = "https://example.com:443/myapp.php?foo=1&bar=2";
        let pairs = [("X-Twilio-Signature", DOCS_SIG)];
        assert!(run(with_port, &pairs, DOCS_BODY).is_ok());
        let sig = sha1_b64(&[with_port.as_bytes(), &sorted_form_params(DOCS_BODY)]);
        assert!(run(DOCS_URL, &[("X-Twilio-Signature", &sig)], DOCS_BODY).is_ok());
        let other = "https://example.com:8443/myapp.php?foo=1&bar=2";
        assert_eq!(run(other, &pairs, DOCS_BODY), Err(VerifyError::Mismatch));
        assert_eq!(
            url_variants("http://[::1]/x"),
            ["http://[::1]/x", "http://[::1]:80/x"]
        );
        assert_eq!(
            url_variants("https://u:p@h:443?q"),
            ["https://u:p@h:443?q", "https://u:p@h?q"]
        );
    }

    #[test]
    fn json_body_is_bound_by_body_sha256() {
        let body = br#"{"CallSid":"CA123"}"#;
        let url = format!(
            "https://example.com/hook?{BODY_HASH_PARAM}={}",
            hex::encode(Sha256::digest(body))
        );
        let sig = sha1_b64(&[url.as_bytes()]);
        let pairs = [("X-Twilio-Signature", sig.as_str())];
        assert!(run(&url, &pairs, body).is_ok());
        assert_eq!(
            run(&url, &pairs, br#"{"CallSid":"CA124"}"#),
            Err(VerifyError::Mismatch)
        );
        let twice = format!("{url}&{BODY_HASH_PARAM}=00");
        assert!(matches!(
            run(&twice, &pairs, body),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn shared_key_settings_select_sha256() {
        let signed = [DOCS_URL.as_bytes(), &sorted_form_params(DOCS_BODY)];
        let sig = STANDARD.encode(hmac_sha256(TOKEN.as_bytes(), &signed));
        let settings = "key=webhooks_sharedkey_KS01,algorithm=HMAC_SHA256";
        let pairs = [
            ("X-Twilio-Signature", sig.as_str()),
            (SETTINGS_HEADER, settings),
        ];
        assert!(run(DOCS_URL, &pairs, DOCS_BODY).is_ok());
        // Without the settings header a SHA-256 length is malformed for SHA-1.
        assert!(matches!(
            run(DOCS_URL, &pairs[..1], DOCS_BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
        let unknown = [(SETTINGS_HEADER, "algorithm=MD5"), pairs[0]];
        assert!(matches!(
            run(DOCS_URL, &unknown, DOCS_BODY),
            Err(VerifyError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn form_params_sort_by_name_then_value_and_decode() {
        assert_eq!(
            sorted_form_params(b"b=2&a=y&a=x&c=%41+%zz&&d"),
            b"axayb2cA %zzd".to_vec()
        );
    }
}
