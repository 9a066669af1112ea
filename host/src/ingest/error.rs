//! The one error type of the receive path and the responses it makes.
//!
//! Client faults answer with a status, a stable `code` and a short message.
//! Internal faults answer an opaque 503 and carry their error chain in a
//! response extension, which the logging middleware prints once.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::StoreError;
use crate::verify::VerifyError;

/// Why a webhook was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// No `[sources.NAME]` for the path's source.
    #[error("unknown source `{0}`")]
    UnknownSource(String),
    /// The client's address is not in the source's `allow_ips`.
    #[error("requests from {0} are not accepted for this source")]
    IpNotAllowed(String),
    /// The body exceeds `server.max_body_bytes`.
    #[error("body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read (the client went away mid-body).
    #[error("request body could not be read")]
    BodyRead(#[source] axum::Error),
    /// The signature check refused the request.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// No route for this path (only `/webhooks/{source}` exists here).
    #[error("no such endpoint; webhooks are received at POST /webhooks/{{source}}")]
    NotFound,
    /// The path exists but not for this method.
    #[error("method not allowed; webhooks are received with POST")]
    MethodNotAllowed,
    /// The store's write queue is full; the provider should retry later.
    #[error("too many requests are waiting to be stored")]
    Overloaded,
    /// More events wait for delivery than `server.max_backlog`; the
    /// provider should retry later.
    #[error("too many events are waiting to be delivered; retry later")]
    BacklogFull,
    /// The store failed; nothing was acknowledged.
    #[error("the event could not be stored")]
    Store(#[source] StoreError),
}

impl From<StoreError> for IngestError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => Self::Overloaded,
            other => Self::Store(other),
        }
    }
}

/// The error chain of an internal fault, for the logging middleware.
#[derive(Clone, Debug)]
pub(super) struct InternalFault(pub(super) Arc<IngestError>);

/// The `code` of a refused request, for the log line.
#[derive(Clone, Copy, Debug)]
pub(super) struct Refused(pub(super) &'static str);

/// Seconds a provider should wait before retrying after a 503: a full
/// write queue clears in moments, a delivery backlog takes longer.
const RETRY_AFTER_S: &str = "1";
const BACKLOG_RETRY_AFTER_S: &str = "30";

impl IngestError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::UnknownSource(_) => (StatusCode::NOT_FOUND, "unknown_source"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::IpNotAllowed(_) => (StatusCode::FORBIDDEN, "ip_not_allowed"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::BodyRead(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
            Self::Verify(VerifyError::MissingHeader(_)) => {
                (StatusCode::UNAUTHORIZED, "missing_signature")
            }
            // A signature or signed timestamp carried in the body (Mailgun,
            // Linear) is malformed in the same sense as a header.
            Self::Verify(
                VerifyError::MalformedHeader { .. } | VerifyError::MalformedBody { .. },
            ) => (StatusCode::BAD_REQUEST, "malformed_signature"),
            Self::Verify(VerifyError::Mismatch) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
            Self::Verify(VerifyError::TimestampOutOfWindow { .. }) => {
                (StatusCode::UNAUTHORIZED, "timestamp_out_of_window")
            }
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            Self::BacklogFull => (StatusCode::SERVICE_UNAVAILABLE, "backlog_full"),
            Self::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        }
    }

    /// The stable `code` of the response body (also a log and metric label).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // Verification failures say what was wrong with the request but
        // never echo a signature or a secret: VerifyError's Display names
        // only headers and reasons.
        let message = self.to_string();
        let body = Json(json!({ "error": { "code": code, "message": message } }));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(if matches!(self, Self::BacklogFull) {
                    BACKLOG_RETRY_AFTER_S
                } else {
                    RETRY_AFTER_S
                }),
            );
        }
        response.extensions_mut().insert(Refused(code));
        if matches!(self, Self::Store(_)) {
            response
                .extensions_mut()
                .insert(InternalFault(Arc::new(self)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verify_error_has_its_own_status_and_code() {
        let cases = [
            (
                IngestError::Verify(VerifyError::MissingHeader("x")),
                401,
                "missing_signature",
            ),
            (
                IngestError::Verify(VerifyError::Mismatch),
                401,
                "invalid_signature",
            ),
            (
                IngestError::Verify(VerifyError::MalformedHeader {
                    header: "x",
                    reason: "r",
                }),
                400,
                "malformed_signature",
            ),
            (
                IngestError::Verify(VerifyError::MalformedBody {
                    field: "signature.token",
                    reason: "r",
                }),
                400,
                "malformed_signature",
            ),
            (
                IngestError::Verify(VerifyError::TimestampOutOfWindow { tolerance_s: 300 }),
                401,
                "timestamp_out_of_window",
            ),
            (
                IngestError::UnknownSource("x".into()),
                404,
                "unknown_source",
            ),
            (
                IngestError::BodyTooLarge { limit: 1 },
                413,
                "body_too_large",
            ),
            (IngestError::Overloaded, 503, "overloaded"),
            (IngestError::BacklogFull, 503, "backlog_full"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.into_response().status().as_u16(), status, "{code}");
        }
    }
}
