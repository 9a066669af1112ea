//! The receive handler: source -> raw body -> verify -> store -> ack.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, Method, Uri};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::extract::{raw_body, stored_headers};
use super::log::Outcome;
use super::{IngestError, IngestState};
use crate::store::{EventId, NewEvent};
use crate::verify::Unverified;

/// The acknowledgement body.
#[derive(Debug, Serialize)]
struct Ack {
    id: EventId,
    duplicate: bool,
}

/// `POST /webhooks/{source}`.
pub(super) async fn receive(
    State(state): State<IngestState>,
    Path(source): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngestError> {
    // Unknown sources are refused before the body is read.
    let source_config = state
        .sources
        .get(&source)
        .ok_or_else(|| IngestError::UnknownSource(source.clone()))?;
    let body = raw_body(&headers, body, state.max_body_bytes).await?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.to_string());
    // HTTP/1.1 names the host in `Host`; HTTP/2 in the `:authority` pseudo-header.
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    let url = format!("{}://{host}{path}", state.scheme);
    let request = Unverified {
        method: &method,
        url: &url,
        headers: &headers,
        body: &body,
    };
    // Verification is pure CPU on a body of at most max_body_bytes: cheap
    // enough to run inline rather than pay a hop to a blocking thread.
    let verified = source_config
        .verifier
        .verify(&request, now.as_secs() as i64)?;

    let idem_key = match verified.provider_id {
        Some(id) => id,
        None => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
    };
    let event = NewEvent {
        id: EventId::generate(),
        source,
        idem_key,
        method: method.to_string(),
        path,
        headers: stored_headers(&headers),
        body,
        received_at_ms: now.as_millis() as i64,
        verification: verified.scheme.to_string(),
    };
    let inserted = state.store.insert_event(event).await?;

    let outcome = Outcome {
        event_id: inserted.id.clone(),
        duplicate: inserted.duplicate,
    };
    let mut response = Json(Ack {
        id: inserted.id,
        duplicate: inserted.duplicate,
    })
    .into_response();
    response.extensions_mut().insert(outcome);
    Ok(response)
}
