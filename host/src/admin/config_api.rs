//! `POST /api/config/reload`: the same reload as SIGHUP, answering what it
//! applied, or why it refused the file (the running configuration stays).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::{error, AdminState};

/// The route (the token check is the caller's layer).
pub(super) fn routes() -> Router<AdminState> {
    Router::new().route("/api/config/reload", post(reload))
}

/// 200 with the sources, plugins and sinks added, changed and removed, and
/// the sections that wait for a restart; 422 `config_refused` with the
/// reason otherwise.
async fn reload(State(state): State<AdminState>) -> Response {
    match state.live.reload().await {
        Ok(report) => Json(json!({ "outcome": "applied", "applied": report })).into_response(),
        Err(why) => error(StatusCode::UNPROCESSABLE_ENTITY, "config_refused", &why),
    }
}
