//! One event to dispatch, whether handed over by ingest right after its
//! commit or claimed from the store by a sweep.

use bytes::Bytes;

use crate::plugin::PluginEvent;
use crate::store::{EventId, HeaderValueRepr, NewEvent, StoredEvent};

/// What dispatch needs of an event.
#[derive(Debug, Clone)]
pub struct DispatchJob {
    /// The stored event's id.
    pub id: EventId,
    /// Its source.
    pub source: String,
    /// Receive time, unix milliseconds.
    pub received_at_ms: i64,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// Stored headers (credentials already redacted).
    pub headers: Vec<(String, HeaderValueRepr)>,
    /// The raw body.
    pub body: Bytes,
    /// Dispatch attempts that already ended (retries of the plugin).
    pub attempts: u32,
}

impl DispatchJob {
    /// The job for an event ingest is about to store (cheap: the body is shared).
    pub fn from_new(event: &NewEvent) -> Self {
        Self {
            id: event.id.clone(),
            source: event.source.clone(),
            received_at_ms: event.received_at_ms,
            method: event.method.clone(),
            path: event.path.clone(),
            headers: event.headers.clone(),
            body: event.body.clone(),
            attempts: 0,
        }
    }

    /// The job for an event claimed from the store.
    pub fn from_stored(event: StoredEvent) -> Self {
        Self {
            id: event.id,
            source: event.source,
            received_at_ms: event.received_at_ms,
            method: event.method,
            path: event.path,
            headers: event.headers,
            body: Bytes::from(event.body),
            attempts: event.dispatch_attempts,
        }
    }

    /// The WIT record a plugin receives. Header values that are not UTF-8
    /// are decoded lossily, as `wit/router.wit` documents.
    pub fn plugin_event(&self) -> PluginEvent {
        PluginEvent {
            id: self.id.to_string(),
            source: self.source.clone(),
            received_at: u64::try_from(self.received_at_ms).unwrap_or(0),
            method: self.method.clone(),
            path: self.path.clone(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        HeaderValueRepr::Text(text) => text.clone(),
                        HeaderValueRepr::Bytes(bytes) => {
                            String::from_utf8_lossy(bytes).into_owned()
                        }
                    };
                    (name.clone(), value)
                })
                .collect(),
            body: self.body.to_vec(),
        }
    }

    /// The content type the provider sent, for raw deliveries.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.iter().find_map(|(name, value)| match value {
            HeaderValueRepr::Text(text) if name == "content-type" => Some(text.as_str()),
            _ => None,
        })
    }
}
