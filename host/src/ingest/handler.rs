//! The receive handler: source -> raw body -> verify -> store -> ack.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, Uri};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::client_ip::{client_ip, PeerAddr};
use super::extract::{raw_body, stored_headers};
use super::log::{HandshakeAnswered, Outcome};
use super::{IngestError, IngestState};
use crate::config::SourceRoute;
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
    State(state): State<Arc<IngestState>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(source): Path<String>,
    // The whole request rather than the Method, Uri and HeaderMap
    // extractors: those clone their part, the header map included.
    request: Request,
) -> Result<Response, IngestError> {
    let (parts, body) = request.into_parts();
    let http::request::Parts {
        method,
        uri,
        headers,
        ..
    } = parts;
    // Unknown sources are refused before the body is read.
    let sources = state.sources.get();
    let source_config = sources
        .get(&source)
        .ok_or_else(|| IngestError::UnknownSource(source.clone()))?;
    // Before any other work, the body included.
    if let Some(allowed) = &source_config.allow_ips {
        match client_ip(peer.0.ip(), &headers, &state.trusted_proxies) {
            Some(ip) if allowed.contains(ip) => {}
            Some(ip) => return Err(IngestError::IpNotAllowed(ip.to_string())),
            None => {
                return Err(IngestError::IpNotAllowed(
                    "an unreadable X-Forwarded-For".into(),
                ))
            }
        }
    }
    // Refused before the body is read: the provider keeps it and retries.
    if state.backlog.as_ref().is_some_and(|b| b.over()) {
        return Err(IngestError::BacklogFull);
    }
    let body = raw_body(&headers, body, state.max_body_bytes).await?;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.to_string());
    let url = if source_config.verifier.signs_url() {
        signed_url(
            source_config.public_url.as_deref(),
            state.scheme,
            &headers,
            &uri,
        )
    } else {
        String::new()
    };
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
    // A provider checking the endpoint gets the router's own answer; only
    // a verified check is answered, and none is stored.
    if let Some(handshake) = source_config.verifier.handshake(&request) {
        let mut response = (
            [(http::header::CONTENT_TYPE, handshake.content_type)],
            handshake.body,
        )
            .into_response();
        response.extensions_mut().insert(HandshakeAnswered);
        return Ok(response);
    }

    let idem_key = match verified.provider_id {
        Some(id) => id,
        None => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
    };
    let received_at_ms = now.as_millis() as i64;
    let event = NewEvent {
        id: EventId::received_at(received_at_ms),
        source,
        idem_key,
        method: method.to_string(),
        path,
        headers: stored_headers(&headers),
        body,
        received_at_ms,
        verification: verified.scheme.to_string(),
        dispatch: source_config.route != SourceRoute::StoreOnly,
    };
    // Built before the insert consumes the event; the body is shared, not copied.
    let job = state
        .dispatch
        .as_ref()
        .filter(|_| event.dispatch)
        .map(|_| crate::dispatch::DispatchJob::from_new(&event));
    let inserted = state.store.insert_event(event).await?;
    if let (Some(dispatch), Some(job), false) = (&state.dispatch, job, inserted.duplicate) {
        dispatch.offer(job);
    }

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

/// The URL a URL-signing provider signed: the source's `public_url` with
/// this request's query appended when configured (a proxy in front changes
/// scheme, host or path), else the URL this request was sent to.
fn signed_url(public_url: Option<&str>, scheme: &str, headers: &HeaderMap, uri: &Uri) -> String {
    if let Some(base) = public_url {
        return match uri.query() {
            Some(query) => format!("{base}?{query}"),
            None => base.to_string(),
        };
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    // HTTP/1.1 names the host in `Host`; HTTP/2 in the `:authority` pseudo-header.
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    format!("{scheme}://{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_the_public_url_plus_the_query_else_the_request_url() {
        let uri: Uri = "/webhooks/twilio?foo=1&bar=2".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            signed_url(
                Some("https://hooks.example.com/twilio"),
                "http",
                &headers,
                &uri
            ),
            "https://hooks.example.com/twilio?foo=1&bar=2"
        );
        assert_eq!(
            signed_url(None, "http", &headers, &uri),
            "http://127.0.0.1:8080/webhooks/twilio?foo=1&bar=2"
        );
        let bare: Uri = "/webhooks/square".parse().unwrap();
        assert_eq!(
            signed_url(
                Some("https://hooks.example.com/square"),
                "http",
                &headers,
                &bare
            ),
            "https://hooks.example.com/square"
        );
    }
}
