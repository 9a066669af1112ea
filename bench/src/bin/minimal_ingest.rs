//! `minimal-ingest`: the "hand-written axum + group-commit baseline" that
//! issue #2 calibrates its ingest target against (about 45% of the bare
//! endpoint on this machine, by the issue's account), written the plain way
//! so the benchmark can measure it in the same run as the router instead of
//! taking the figure on trust.
//!
//! It does what a first careful version of a webhook receiver does, and
//! nothing more: `POST /webhooks/{source}` reads the body (up to 1 MiB),
//! checks GitHub's `X-Hub-Signature-256` (HMAC-SHA256, constant time),
//! takes `X-GitHub-Delivery` as the idempotency key, and inserts the row on
//! one writer thread that commits whatever is queued in one transaction
//! (SQLite WAL, `synchronous = FULL`: the fsync is inside COMMIT), then
//! answers `{"id": ..., "duplicate": ...}`. No logging, no metrics, no
//! header storage, no dispatch: what the router does beyond this is the
//! difference the benchmark shows.
//!
//! Usage: `minimal-ingest DB_PATH [ADDR]` (ADDR defaults to `127.0.0.1:0`);
//! the secret comes from `BENCH_SECRET` (default `bench-github-secret`).
//! Prints `listening on http://ADDR` on stdout once bound.

#[path = "../serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;

const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most rows per transaction.
const MAX_BATCH: usize = 256;

/// One insert waiting for the writer, and where its answer goes.
struct Insert {
    id: String,
    source: String,
    key: String,
    body: Bytes,
    received_at_ms: i64,
    answer: oneshot::Sender<Result<(String, bool), String>>,
}

#[derive(Clone)]
struct AppState {
    secret: std::sync::Arc<Vec<u8>>,
    writer: mpsc::SyncSender<Insert>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = args
        .next()
        .context("usage: minimal-ingest DB_PATH [ADDR]")?;
    let addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
        .context("parsing the listen address (expected IP:PORT)")?;
    let secret = std::env::var("BENCH_SECRET").unwrap_or_else(|_| "bench-github-secret".into());
    let conn = open(&db)?;
    let (writer, queue) = mpsc::sync_channel(4096);
    std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || write_batches(conn, &queue))
        .context("starting the writer thread")?;
    let state = AppState {
        secret: std::sync::Arc::new(secret.into_bytes()),
        writer,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(addr, state))
}

fn open(path: &str) -> anyhow::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path).with_context(|| format!("opening {path}"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS events (
             id TEXT NOT NULL PRIMARY KEY,
             source TEXT NOT NULL,
             idem_key TEXT NOT NULL,
             body BLOB NOT NULL,
             received_at_ms INTEGER NOT NULL,
             UNIQUE (source, idem_key)
         );",
    )
    .context("setting up the database")?;
    Ok(conn)
}

async fn serve(addr: SocketAddr, state: AppState) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/webhooks/{source}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    serve::until_terminated(addr, app).await
}

async fn receive(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(signature) = header("x-hub-signature-256")
        .and_then(|s| s.strip_prefix("sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return (StatusCode::UNAUTHORIZED, "missing or malformed signature").into_response();
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&state.secret).expect("HMAC takes any key");
    mac.update(&body);
    if mac.verify_slice(&signature).is_err() {
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    let Some(key) = header("x-github-delivery") else {
        return (StatusCode::BAD_REQUEST, "missing X-GitHub-Delivery").into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (answer, answered) = oneshot::channel();
    let insert = Insert {
        id: format!("evt_{:x}{:08x}", now.as_nanos(), next_seq()),
        source,
        key: key.to_string(),
        body,
        received_at_ms: now.as_millis() as i64,
        answer,
    };
    if state.writer.try_send(insert).is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "overloaded").into_response();
    }
    match answered.await {
        Ok(Ok((id, duplicate))) => (
            [(CONTENT_TYPE, "application/json")],
            format!(r#"{{"id":"{id}","duplicate":{duplicate}}}"#),
        )
            .into_response(),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "writer gone").into_response(),
    }
}

/// A per-process counter for the id suffix (uniqueness within the run is
/// all the baseline needs).
fn next_seq() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The writer: waits for one insert, takes what else is queued, commits it
/// all in one transaction, answers everyone.
fn write_batches(mut conn: rusqlite::Connection, queue: &mpsc::Receiver<Insert>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match write(&mut conn, &batch) {
            Ok(answers) => {
                for (insert, answer) in batch.into_iter().zip(answers) {
                    let _ = insert.answer.send(Ok(answer));
                }
            }
            Err(error) => {
                for insert in batch {
                    let _ = insert.answer.send(Err(error.to_string()));
                }
            }
        }
    }
}

fn write(
    conn: &mut rusqlite::Connection,
    batch: &[Insert],
) -> rusqlite::Result<Vec<(String, bool)>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(batch.len());
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (id, source, idem_key, body, received_at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (source, idem_key) DO NOTHING",
        )?;
        let mut existing =
            tx.prepare_cached("SELECT id FROM events WHERE source = ?1 AND idem_key = ?2")?;
        for row in batch {
            let changed = insert.execute(rusqlite::params![
                row.id,
                row.source,
                row.key,
                &row.body[..],
                row.received_at_ms
            ])?;
            if changed == 1 {
                answers.push((row.id.clone(), false));
            } else {
                let id: String =
                    existing.query_row(rusqlite::params![row.source, row.key], |r| r.get(0))?;
                answers.push((id, true));
            }
        }
    }
    tx.commit()?;
    Ok(answers)
}
