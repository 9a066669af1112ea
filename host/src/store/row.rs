//! The `events` row as both backends read and write it: headers as JSON
//! text, decoded into [`StoredEvent`]. One definition, so SQLite and Postgres
//! can never drift apart on the stored format.

use super::{EventId, HeaderValueRepr, NewEvent, StoreError, StoredEvent};

/// The `events` columns [`EventRow`] reads, in its field order, for
/// `concat!` into each backend's queries.
macro_rules! event_columns {
    () => {
        "id, source, idem_key, method, path, headers, body, received_at_ms, verification, \
         status, body_purged_at_ms, dispatch_attempts, status_reason"
    };
}
pub(super) use event_columns;

/// JSON text of the header list, as the `headers` column stores it.
pub(super) fn encode_headers(backend: &'static str, row: &NewEvent) -> Result<String, StoreError> {
    serde_json::to_string(&row.headers).map_err(|e| StoreError::Corrupt {
        backend,
        id: row.id.to_string(),
        reason: format!("headers not encodable as JSON: {e}"),
    })
}

/// One `events` row as read (the same columns on both backends).
#[derive(sqlx::FromRow)]
pub(super) struct EventRow {
    pub(super) id: String,
    pub(super) source: String,
    pub(super) idem_key: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: String,
    pub(super) body: Vec<u8>,
    pub(super) received_at_ms: i64,
    pub(super) verification: String,
    pub(super) status: String,
    pub(super) body_purged_at_ms: Option<i64>,
    pub(super) dispatch_attempts: i64,
    pub(super) status_reason: Option<String>,
}

impl EventRow {
    /// The stored event; `backend` names the store in a decoding error.
    pub(super) fn decode(self, backend: &'static str) -> Result<StoredEvent, StoreError> {
        let headers: Vec<(String, HeaderValueRepr)> =
            serde_json::from_str(&self.headers).map_err(|e| StoreError::Corrupt {
                backend,
                id: self.id.clone(),
                reason: format!("headers are not the expected JSON: {e}"),
            })?;
        Ok(StoredEvent {
            id: EventId::from_string(self.id),
            source: self.source,
            idem_key: self.idem_key,
            method: self.method,
            path: self.path,
            headers,
            body: self.body,
            received_at_ms: self.received_at_ms,
            verification: self.verification,
            status: self.status,
            body_purged_at_ms: self.body_purged_at_ms,
            dispatch_attempts: u32::try_from(self.dispatch_attempts).unwrap_or(u32::MAX),
            status_reason: self.status_reason,
        })
    }
}
