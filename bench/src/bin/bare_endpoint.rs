//! `bare-endpoint`: the baseline for the ingest benchmark. It accepts
//! `POST /webhooks/{source}`, reads the whole body (up to 1 MiB, the router's
//! default `max_body_bytes`) and answers what the router answers for a new
//! event, without verifying or storing anything. The runtime is built the way
//! the router builds its own (multi-threaded, default worker count), so the
//! difference between the two is the router's work, not the server setup.
//!
//! Usage: `bare-endpoint [ADDR]` (default `127.0.0.1:0`); prints
//! `listening on http://ADDR` on stdout once bound.

#[path = "../serve.rs"]
mod serve;

use std::net::SocketAddr;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

/// Same limit as the router's default `server.max_body_bytes`.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The router's acknowledgement for a stored event, as fixed bytes: the
/// baseline should not pay for JSON serialisation the router does pay for,
/// but it must send a body of the same shape and size class.
const ACK: &str = r#"{"id":"x","duplicate":false}"#;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .context("parsing the listen address (expected IP:PORT)")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/webhooks/{source}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    serve::until_terminated(addr, app).await
}

/// Reads the whole body (the `Bytes` extractor buffers it) and acknowledges.
async fn receive(Path(_source): Path<String>, body: Bytes) -> impl IntoResponse {
    // Keep the read from being optimised into nothing.
    std::hint::black_box(body.len());
    ([(CONTENT_TYPE, "application/json")], ACK)
}
