//! `/healthz` (the process answers) and `/readyz` (the store answers and
//! every configured plugin has a version serving): open, for probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AdminState;

/// `GET /healthz`: 200 while the process serves.
pub(super) async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 when the store answers a ping; 503 naming what is
/// not ready otherwise.
pub(super) async fn readyz(State(state): State<AdminState>) -> Response {
    let store = match state.store.ping().await {
        Ok(()) => Ok(()),
        Err(error) => Err(error.to_string()),
    };
    let plugins: Vec<_> = state
        .plugins()
        .iter()
        .map(|(name, slot)| json!({ "name": name, "version": slot.current().version }))
        .collect();
    let ready = store.is_ok();
    let body = Json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": match &store { Ok(()) => json!("ok"), Err(e) => json!({ "error": e }) },
        "plugins": plugins,
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}
