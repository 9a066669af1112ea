//! Receive: `POST /webhooks/{source}`. Reads the raw body under a size
//! limit, verifies it, stores it (group commit), and acknowledges only after
//! the commit. The 2xx is the durability promise.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::routing::post;
use axum::Router;

use crate::cidr::CidrList;
use crate::config::SourceConfig;
use crate::live::Live;
use crate::store::Store;

mod client_ip;
mod error;
mod extract;
mod handler;
mod log;

pub use client_ip::PeerAddr;
pub use error::IngestError;

/// What the receive path needs, shared by every request.
#[derive(Clone, Debug)]
pub struct IngestState {
    /// Configured sources by name; a configuration reload replaces them
    /// (a request keeps the set it started with).
    pub sources: Arc<Live<BTreeMap<String, SourceConfig>>>,
    /// Where events go.
    pub store: Arc<dyn Store>,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// `"https"` when serving TLS: part of the URL that URL-signing schemes sign.
    pub scheme: &'static str,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<CidrList>,
    /// Where newly stored events are handed over for dispatch (`None`:
    /// store only, as in ingest-only tests and benchmarks).
    pub dispatch: Option<crate::dispatch::DispatchHandle>,
    /// Where request counts and latencies go.
    pub metrics: Arc<crate::admin::Metrics>,
    /// The undelivered backlog (`None`: never refuse for it).
    pub backlog: Option<Arc<crate::backlog::BacklogWatch>>,
}

/// The ingest routes with their per-request log line. Serve them with
/// `into_make_service_with_connect_info::<PeerAddr>()`: the handler needs
/// the peer address for `allow_ips`.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/webhooks/{source}", post(handler::receive))
        // Every answer of this listener is the same JSON error shape, also
        // for paths and methods that do not exist.
        .fallback(|| async { IngestError::NotFound })
        .method_not_allowed_fallback(|| async { IngestError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            log::log_request,
        ))
        // Shared behind one Arc: axum clones the state for every request,
        // and one reference count is cheaper than one per field.
        .with_state(Arc::new(state))
}
