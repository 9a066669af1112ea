//! Actions as printable data: what `hookyard plugin run` and the tests
//! show, with payloads as text when they are UTF-8.

use serde::Serialize;

use super::bindings::hookyard::router::types;

/// What a run produced, as `hookyard plugin run` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PluginOutput {
    /// Deliver to a sink.
    Deliver {
        /// Sink name.
        sink: String,
        /// Payload, as text when UTF-8 (else `payload_base64`).
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// Payload bytes that are not UTF-8.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_base64: Option<String>,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Subject or routing-key suffix.
        #[serde(skip_serializing_if = "Option::is_none")]
        subject_suffix: Option<String>,
        /// Key.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Discard, with the reason.
    Drop {
        /// Why.
        reason: String,
    },
}

/// `action` as printable data.
pub(super) fn output(action: types::Action) -> PluginOutput {
    match action {
        types::Action::Deliver(d) => {
            let (payload, payload_base64) = match String::from_utf8(d.payload) {
                Ok(text) => (Some(text), None),
                Err(bytes) => {
                    use base64::Engine as _;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes());
                    (None, Some(b64))
                }
            };
            PluginOutput::Deliver {
                sink: d.sink,
                payload,
                payload_base64,
                headers: d.headers,
                subject_suffix: d.subject_suffix,
                key: d.key,
            }
        }
        types::Action::Drop(reason) => PluginOutput::Drop { reason },
    }
}
