//! The `events` row as both backends read and write it: headers as JSON
//! text, decoded into [`StoredEvent`]. One definition, so SQLite and Postgres
//! can never drift apart on the stored format.

use super::{EventId, HeaderValueRepr, NewEvent, StoreError, StoredEvent};

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
    id: String,
    source: String,
    idem_key: String,
    method: String,
    path: String,
    headers: String,
    body: Vec<u8>,
    received_at_ms: i64,
    verification: String,
    status: String,
    body_purged_at_ms: Option<i64>,
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
        })
    }
}
