//! The JSON API under `/api`: one event with everything that happened to
//! it, replays, dead letters and their retry, plugins and their reload,
//! and the configured sources and sinks (never their secrets).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ApiJson, ApiQuery};
use super::{error, AdminState};
use crate::clock::now_ms;
use crate::config::{SinkKind, SourceRoute};
use crate::ops::Refusal;
use crate::plugin::registry::Reloaded;
use crate::store::{
    DeadQuery, DeadSelector, DeliveryRecord, EventId, EventQuery, ReplaySelector, StoreError,
};

/// Events or dead letters listed at most per request.
const MAX_LIST: usize = 1000;

/// The `/api` routes (the token check is the caller's layer).
pub(super) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/events", get(events))
        .route("/api/events/{id}", get(event))
        .route("/api/events/{id}/replay", post(replay_one))
        .route("/api/replay", post(replay_filter))
        .route("/api/deliveries", get(deliveries))
        .route("/api/deliveries/retry", post(retry_all))
        .route("/api/deliveries/{id}/retry", post(retry_one))
        .route("/api/plugins", get(plugins))
        .route("/api/plugins/{name}/reload", post(reload_plugin))
        .route("/api/sources", get(sources))
        .route("/api/sinks", get(sinks))
}

/// `GET /api/openapi.json`: the OpenAPI 3.1 document of this listener
/// (kept beside this file; a test calls every route it lists).
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// A store failure: an opaque 503 for the client, the chain in the log.
fn store_failed(e: &StoreError) -> Response {
    tracing::error!(
        error = e as &dyn std::error::Error,
        "Admin API request failed in the store."
    );
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store could not answer",
    )
}

/// 202: `n` events or deliveries were queued.
fn queued(n: u64) -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "queued": n }))).into_response()
}

/// The answer to a replay or retry of one id: 202 when it was queued,
/// else 404 or 409 with the reason `why_not` finds.
async fn one_queued<F>(done: Result<u64, StoreError>, why_not: impl FnOnce() -> F) -> Response
where
    F: std::future::Future<Output = Result<Refusal, StoreError>>,
{
    match done {
        Ok(0) => match why_not().await {
            Ok(refusal) => refused(&refusal),
            Err(e) => store_failed(&e),
        },
        Ok(n) => queued(n),
        Err(e) => store_failed(&e),
    }
}

fn refused(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::NotFound(why) => error(StatusCode::NOT_FOUND, "not_found", why),
        Refusal::Conflict(why) => error(StatusCode::CONFLICT, "conflict", why),
    }
}

/// Bytes as JSON: text when UTF-8, else base64, saying which.
fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "encoding": "utf-8", "data": text }),
        Err(_) => json!({
            "encoding": "base64",
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    source: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/events?source=&status=&since=&until=&limit=&cursor=`: newest
/// first; `next_cursor` (when the page is full) continues the listing.
async fn events(State(state): State<AdminState>, ApiQuery(q): ApiQuery<EventsQuery>) -> Response {
    let now = now_ms();
    let (since_ms, until_ms) = match (
        time("since", q.since.as_ref(), now),
        time("until", q.until.as_ref(), now),
    ) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(why), _) | (_, Err(why)) => {
            return error(StatusCode::BAD_REQUEST, "invalid_query", &why)
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_LIST);
    let query = EventQuery {
        source: q.source,
        status: q.status,
        since_ms,
        until_ms,
        before_id: q.cursor,
        limit,
    };
    match state.store.list_events(query).await {
        Ok(events) => {
            let next_cursor = (events.len() == limit)
                .then(|| events.last().map(|e| e.id.clone()))
                .flatten();
            Json(json!({ "events": events, "next_cursor": next_cursor })).into_response()
        }
        Err(e) => store_failed(&e),
    }
}

/// A time filter: RFC 3339, a UTC day, or a span back from now (`2h`).
fn time(field: &str, text: Option<&String>, now: i64) -> Result<Option<i64>, String> {
    text.map(|t| crate::cli_time::parse_time(t, now).map_err(|why| format!("{field}: {why}")))
        .transpose()
}

/// `GET /api/events/{id}`: the raw request (stored headers are already
/// redacted), its plugin runs, and its deliveries with their failed attempts.
async fn event(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = EventId::from_string(id);
    let store = &state.store;
    let found = match store.get_event(&id).await {
        Ok(Some(event)) => event,
        Ok(None) => return error(StatusCode::NOT_FOUND, "not_found", "no such event"),
        Err(e) => return store_failed(&e),
    };
    let (runs, deliveries) = match (store.plugin_runs(&id).await, store.deliveries(&id).await) {
        (Ok(runs), Ok(deliveries)) => (runs, deliveries),
        (Err(e), _) | (_, Err(e)) => return store_failed(&e),
    };
    let mut shown = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let attempts = match store.delivery_attempts(&d.id).await {
            Ok(attempts) => attempts,
            Err(e) => return store_failed(&e),
        };
        shown.push(delivery_json(d, &attempts));
    }
    Json(json!({
        "id": found.id,
        "source": found.source,
        "idempotency_key": found.idem_key,
        "status": found.status,
        "status_reason": found.status_reason,
        "received_at_ms": found.received_at_ms,
        "verification": found.verification,
        "dispatch_attempts": found.dispatch_attempts,
        "request": {
            "method": found.method,
            "path": found.path,
            "headers": found.headers,
            "body": if found.body_purged_at_ms.is_some() { Value::Null } else { bytes_json(&found.body) },
            "body_purged_at_ms": found.body_purged_at_ms,
        },
        "plugin_runs": runs,
        "deliveries": shown,
    }))
    .into_response()
}

fn delivery_json(d: DeliveryRecord, attempts: &[crate::store::AttemptRecord]) -> Value {
    let headers: Value = serde_json::from_str(&d.headers).unwrap_or(Value::Null);
    json!({
        "id": d.id,
        "sink": d.sink,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "created_at_ms": d.created_at_ms,
        "next_attempt_at_ms": d.next_attempt_at_ms,
        "finished_at_ms": d.finished_at_ms,
        "headers": headers,
        "subject_suffix": d.subject_suffix,
        "key": d.msg_key,
        "payload": bytes_json(&d.payload),
        "failed_attempts": attempts,
    })
}

/// `POST /api/events/{id}/replay`: 202 when queued, 404 or 409 with the reason.
async fn replay_one(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let id = EventId::from_string(id);
    let done = state
        .store
        .request_replay(ReplaySelector::One(id.clone()), now_ms())
        .await;
    one_queued(done, || crate::ops::why_not_replayed(&*state.store, &id)).await
}

/// The filter of a bulk replay; at least one field is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayFilter {
    source: Option<String>,
    /// RFC 3339, a UTC day, or a span back from now (`2h`).
    since: Option<String>,
    until: Option<String>,
    status: Option<String>,
}

/// `POST /api/replay` with a JSON filter: 202 with how many were queued.
async fn replay_filter(
    State(state): State<AdminState>,
    ApiJson(filter): ApiJson<ReplayFilter>,
) -> Response {
    if filter.source.is_none()
        && filter.since.is_none()
        && filter.until.is_none()
        && filter.status.is_none()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "give at least one of source, since, until, status (a replay of everything must be asked for by a filter)",
        );
    }
    if let Some(status) = &filter.status {
        if !["processed", "dropped", "failed"].contains(&status.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "status is one of processed, dropped, failed",
            );
        }
    }
    let now = now_ms();
    let (since_ms, until_ms) = match (
        time("since", filter.since.as_ref(), now),
        time("until", filter.until.as_ref(), now),
    ) {
        (Ok(since), Ok(until)) => (since, until),
        (Err(why), _) | (_, Err(why)) => {
            return error(StatusCode::BAD_REQUEST, "invalid_body", &why)
        }
    };
    let which = ReplaySelector::Filter {
        source: filter.source,
        since_ms,
        until_ms,
        status: filter.status,
    };
    match state.store.request_replay(which, now).await {
        Ok(n) => queued(n),
        Err(e) => store_failed(&e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    status: Option<String>,
    sink: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/deliveries?status=dead&sink=&limit=`: dead letters, most
/// recently dead first.
async fn deliveries(
    State(state): State<AdminState>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> Response {
    if query.status.as_deref().is_some_and(|s| s != "dead") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "status=dead is the listing this API serves (an event's page shows its other deliveries)",
        );
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIST);
    match state
        .store
        .dead_deliveries(DeadQuery {
            sink: query.sink,
            limit,
        })
        .await
    {
        Ok(dead) => Json(json!({ "deliveries": dead })).into_response(),
        Err(e) => store_failed(&e),
    }
}

/// `POST /api/deliveries/{id}/retry`: a dead letter sent again, same key.
async fn retry_one(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let done = state
        .store
        .retry_dead(DeadSelector::One(id.clone()), now_ms())
        .await;
    one_queued(done, || crate::ops::why_not_retried(&*state.store, &id)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryAll {
    sink: Option<String>,
}

/// `POST /api/deliveries/retry` with `{"sink": ...}` (optional; `{}` for
/// every sink): every dead letter sent again, each with its key.
async fn retry_all(
    State(state): State<AdminState>,
    ApiJson(RetryAll { sink }): ApiJson<RetryAll>,
) -> Response {
    match state
        .store
        .retry_dead(DeadSelector::All { sink }, now_ms())
        .await
    {
        Ok(n) => queued(n),
        Err(e) => store_failed(&e),
    }
}

/// `GET /api/plugins`: each plugin's serving version and reload record.
async fn plugins(State(state): State<AdminState>) -> Response {
    let list: Vec<Value> = state
        .plugins()
        .iter()
        .map(|(name, slot)| {
            let current = slot.current();
            json!({
                "name": name,
                "file": slot.config.wasm,
                "version": current.version,
                "loaded_at_ms": current.loaded_at_ms,
                "reloads": slot.reloads.load(std::sync::atomic::Ordering::Relaxed),
                "reload_failures": slot.reload_failures.load(std::sync::atomic::Ordering::Relaxed),
                "last_reload_error": slot.last_error(),
                "sinks": slot.config.sinks,
            })
        })
        .collect();
    Json(json!({ "plugins": list })).into_response()
}

/// `POST /api/plugins/{name}/reload`: reads and compiles the file again;
/// 200 saying whether the version changed, 422 with the reason when the
/// file was refused (the serving version stays).
async fn reload_plugin(State(state): State<AdminState>, Path(name): Path<String>) -> Response {
    let plugins = state.plugins();
    if plugins.get(&name).is_none() {
        return error(StatusCode::NOT_FOUND, "not_found", "no such plugin");
    }
    // The file watcher's reload: compiled off the async threads, logged.
    match crate::plugin::reload::reload_logged(&plugins, &name).await {
        Some(Ok(Reloaded::Swapped { from, to })) => {
            Json(json!({ "outcome": "swapped", "from": from, "to": to })).into_response()
        }
        Some(Ok(Reloaded::Unchanged)) => Json(json!({ "outcome": "unchanged" })).into_response(),
        Some(Err(why)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_failed",
            &format!("{why:#}"),
        ),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the reload task failed",
        ),
    }
}

/// `GET /api/sources`: names, presets and routes; no secrets.
async fn sources(State(state): State<AdminState>) -> Response {
    let list: Vec<Value> = state
        .config()
        .sources
        .values()
        .map(|s| {
            let route = match &s.route {
                SourceRoute::Plugin(plugin) => json!({ "plugin": plugin }),
                SourceRoute::Sinks(sinks) => json!({ "sinks": sinks }),
                SourceRoute::StoreOnly => json!("store_only"),
            };
            json!({
                "name": s.name,
                "preset": s.preset,
                "url_path": format!("/webhooks/{}", s.name),
                "route": route,
                "public_url": s.public_url,
                "ip_allow_list": s.allow_ips.is_some(),
            })
        })
        .collect();
    Json(json!({ "sources": list })).into_response()
}

/// `GET /api/sinks`: type, target (without credentials or query), limits,
/// retry policy and pending and dead counts; header values and signing
/// keys are never shown. Sinks no longer configured that still hold
/// deliveries are listed apart, with their counts.
async fn sinks(State(state): State<AdminState>) -> Response {
    let mut counts = match state.store.sink_backlog().await {
        Ok(counts) => counts,
        Err(e) => return store_failed(&e),
    };
    let config = state.config();
    let list: Vec<Value> = config
        .sinks
        .values()
        .map(|s| {
            let target = match &s.kind {
                SinkKind::Http(http) => json!({
                    "url": reqwest::Url::parse(&http.url).map(|u| crate::sinks::http::shown_url(&u)).unwrap_or_default(),
                    "method": http.method.as_str(),
                    "header_names": http.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                    "signed": http.sign_secret.is_some(),
                }),
                SinkKind::File(file) => json!({ "path": file.path, "fsync": format!("{:?}", file.fsync).to_lowercase() }),
                SinkKind::Nats(nats) => json!({ "url": crate::store::redact_url(&nats.url), "subject": nats.subject }),
                SinkKind::Redis(redis) => json!({ "url": crate::store::redact_url(&redis.url), "stream": redis.stream }),
                SinkKind::Amqp(amqp) => json!({
                    "url": crate::store::redact_url(&amqp.url),
                    "exchange": amqp.exchange,
                    "routing_key": amqp.routing_key,
                }),
            };
            let backlog = counts.remove(&s.name).unwrap_or_default();
            json!({
                "name": s.name,
                "type": s.kind.type_name(),
                "pending": backlog.pending,
                "dead": backlog.dead,
                "target": target,
                "max_concurrency": s.max_concurrency,
                "rate_per_s": s.rate_per_s,
                "retry": {
                    "attempts": s.retry.attempts,
                    "base_ms": s.retry.base.as_millis() as u64,
                    "cap_ms": s.retry.cap.as_millis() as u64,
                },
            })
        })
        .collect();
    let unconfigured: Vec<Value> = counts
        .into_iter()
        .map(|(name, backlog)| json!({ "name": name, "pending": backlog.pending, "dead": backlog.dead }))
        .collect();
    Json(json!({ "sinks": list, "not_configured": unconfigured })).into_response()
}
