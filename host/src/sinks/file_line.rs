//! The file sink's line: one delivery as one JSON object on one line, in
//! the field order `file.rs` documents, with a JSON payload spliced in as
//! its exact bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::{utc_date, Outbound};

/// The JSON fields of a line other than the payload, in documented order.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    event_id: &'a str,
    source: &'a str,
    attempt: u32,
    at: &'a str,
    headers: Headers<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_suffix: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
}

/// Headers as a JSON object; a repeated name's values are joined by `, `.
struct Headers<'a>(&'a [(String, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut merged: Vec<(&str, String)> = Vec::new();
        for (name, value) in self.0 {
            match merged.iter_mut().find(|(n, _)| *n == name.as_str()) {
                Some((_, joined)) => {
                    joined.push_str(", ");
                    joined.push_str(value);
                }
                None => merged.push((name, value.clone())),
            }
        }
        let mut map = serializer.serialize_map(Some(merged.len()))?;
        for (name, value) in &merged {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// Appends `outbound`'s line (newline included) to `out`.
pub(super) fn write_line(out: &mut Vec<u8>, outbound: &Outbound, at: &str) {
    // A payload that is JSON is spliced in as is rather than re-serialised
    // from a parsed value, which would round big numbers through f64.
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&outbound.payload).is_ok();
    let line = Line {
        id: &outbound.id,
        event_id: &outbound.event_id,
        source: &outbound.source,
        attempt: outbound.attempt,
        at,
        headers: Headers(&outbound.headers),
        subject_suffix: outbound.subject_suffix.as_deref(),
        key: outbound.key.as_deref(),
        payload_base64: (!is_json).then(|| STANDARD.encode(&outbound.payload)),
    };
    let start = out.len();
    serde_json::to_writer(&mut *out, &line).expect("a line of strings and numbers serialises");
    if is_json {
        // Reopen the object: `…}` becomes `…,"payload":<bytes>}`.
        debug_assert_eq!(out.last(), Some(&b'}'));
        out.pop();
        out.extend_from_slice(b",\"payload\":");
        // Raw CR and LF can only be whitespace in valid JSON (strings must
        // escape them), so spaces keep the value and the one-line format.
        out.extend(outbound.payload.iter().map(|&b| match b {
            b'\n' | b'\r' => b' ',
            b => b,
        }));
        out.push(b'}');
    }
    debug_assert!(!out[start..].contains(&b'\n'));
    out.push(b'\n');
}

/// `ms` (unix milliseconds) as RFC 3339 UTC with milliseconds.
pub(super) fn rfc3339_ms(ms: i64) -> String {
    let in_day = ms.rem_euclid(86_400_000);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{}T{h:02}:{m:02}:{s:02}.{milli:03}Z", utc_date(ms))
}
