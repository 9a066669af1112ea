//! One log line per webhook request: source, status, event id, duplicate
//! flag and latency (or the refusal's code, or that a handshake was
//! answered). Internal faults are logged here, once, with their chain. The
//! same facts go to the request metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::error::{InternalFault, Refused};
use crate::admin::Metrics;
use crate::store::EventId;

/// Refusal codes that mean the signature check failed.
const VERIFY_CODES: [&str; 4] = [
    "missing_signature",
    "malformed_signature",
    "invalid_signature",
    "timestamp_out_of_window",
];

/// What the handler tells the log line about an acknowledged event.
#[derive(Clone, Debug)]
pub(super) struct Outcome {
    pub(super) event_id: EventId,
    pub(super) duplicate: bool,
}

/// Marks a response as the answer to a provider's endpoint check.
#[derive(Clone, Copy, Debug)]
pub(super) struct HandshakeAnswered;

/// Middleware: times the request, logs its outcome and counts it.
pub(super) async fn log_request(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let source = request
        .uri()
        .path()
        .strip_prefix("/webhooks/")
        .unwrap_or("")
        .to_string();
    let request_id = request_id(request.headers());
    let mut response = next.run(request).await;
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let latency = started.elapsed();
    let latency_us = latency.as_micros() as u64;
    let status = response.status().as_u16();
    let code = response.extensions().get::<Refused>().map_or("ok", |r| r.0);
    // A path naming no configured source is counted without its name: any
    // client could otherwise mint label values without bound.
    let configured = !matches!(code, "unknown_source" | "not_found" | "method_not_allowed");
    metrics.request(if configured { &source } else { "" }, status, code, latency);
    if VERIFY_CODES.contains(&code) {
        metrics
            .verification_failures
            .get_or_create(&crate::admin::metrics::VerifyLabels {
                source: source.clone(),
                reason: code.to_string(),
            })
            .inc();
    }
    if let Some(fault) = response.extensions().get::<InternalFault>() {
        tracing::error!(
            %source, %request_id, status, latency_us, error = error_chain(&*fault.0),
            "Webhook not acknowledged: internal fault."
        );
    } else if let Some(outcome) = response.extensions().get::<Outcome>() {
        tracing::info!(
            %source, %request_id, status, event_id = %outcome.event_id, duplicate = outcome.duplicate,
            latency_us, "Webhook acknowledged."
        );
    } else if response.extensions().get::<HandshakeAnswered>().is_some() {
        tracing::info!(%source, %request_id, status, latency_us, "Handshake answered; nothing stored.");
    } else {
        tracing::info!(%source, %request_id, status, code, latency_us, "Webhook refused.");
    }
    response
}

/// The header a request id comes in and goes back out in.
const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is a sane token (printable ASCII,
/// at most 128 bytes: it goes into logs), else a new `req_` + ULID.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("req_{}", ulid::Ulid::new()), str::to_string)
}

/// Formats an error with its whole `source()` chain, `a: b: c`.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
