//! The operators' listener (`[admin] listen`): health, Prometheus metrics
//! and the JSON API ([`api`]). Every route but health requires the bearer
//! token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::backlog::BacklogWatch;
use crate::config_reload::ConfigReloader;
use crate::dispatch::DispatchHandle;
use crate::plugin::registry::Plugins;
use crate::secret::Secret;
use crate::store::Store;

mod api;
mod config_api;
mod extract;
mod health;
pub mod metrics;

pub use metrics::Metrics;

/// What the admin routes read.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// `[admin] token`; `None` leaves the routes open (loopback only).
    pub token: Option<Arc<Secret>>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The metric families.
    pub metrics: Arc<Metrics>,
    /// The last backlog count.
    pub backlog: Arc<BacklogWatch>,
    /// The dispatch hand-off (its overflow count).
    pub dispatch: Option<DispatchHandle>,
    /// The running configuration and plugins, and the way to reload them.
    pub live: Arc<ConfigReloader>,
}

impl AdminState {
    /// The plugins serving now.
    pub fn plugins(&self) -> Arc<Plugins> {
        Arc::clone(&self.live.routes.get().plugins)
    }

    /// The configuration running now (sources and sinks are shown without
    /// secrets).
    pub fn config(&self) -> Arc<crate::config::Config> {
        self.live.config.get()
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(scrape))
        .merge(api::routes())
        .merge(config_api::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(protected)
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no_such_route",
                "no such admin route; GET /api/openapi.json lists them",
            )
        })
        .with_state(state)
}

/// `GET /metrics`: every family in the OpenMetrics text format.
async fn scrape(State(state): State<AdminState>) -> Response {
    let plugins = state.plugins();
    let text = state.metrics.encode(&metrics::Snapshot {
        backlog: state.backlog.last(),
        plugins: Some(plugins.as_ref()),
        dispatch_overflow: state
            .dispatch
            .as_ref()
            .map_or(0, DispatchHandle::overflowed),
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Refuses a request without `Authorization: Bearer <token>` (compared in
/// constant time), 401 with a `WWW-Authenticate` challenge.
async fn require_token(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this admin route needs `Authorization: Bearer <admin.token>`",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// The admin API's error shape (the same as ingest's).
pub(crate) fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message } })),
    )
        .into_response()
}
