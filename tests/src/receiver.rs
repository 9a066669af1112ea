//! A real HTTP receiver for delivery tests: it records every request it
//! gets (headers, body, idempotency key) and answers by a script: fail the
//! first attempts of each key, answer slowly, or refuse.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How the receiver answers.
#[derive(Debug, Clone)]
pub struct Script {
    /// Answer `503` with `Retry-After: 0` to the first this-many requests of each key.
    pub fail_first: u32,
    /// Wait this long before answering each request.
    pub delay: Duration,
    /// The status of every other answer.
    pub status: u16,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            fail_first: 0,
            delay: Duration::ZERO,
            status: 200,
        }
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its `Idempotency-Key` header (empty if missing).
    pub key: String,
    /// Every header, lowercased names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// The status it was answered with.
    pub status: u16,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Log {
    requests: Vec<Received>,
    tries: HashMap<String, u32>,
}

#[derive(Debug)]
struct Shared {
    script: Script,
    log: Mutex<Log>,
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A local port that nothing listens on (bound, then released): a sink
/// pointed at it fails with "connection refused" until a receiver starts on it.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

impl Receiver {
    /// Starts on a fresh port.
    pub async fn start(script: Script) -> Self {
        Self::start_on(0, script).await
    }

    /// Starts on `port` (0: any).
    pub async fn start_on(port: u16, script: Script) -> Self {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            script,
            log: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::any(answer))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            stop: Some(stop),
            task,
        }
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.log.lock().expect("log").requests.clone()
    }

    /// Requests that have arrived, answered or not yet (a slow script).
    pub fn arrived(&self) -> u32 {
        self.shared.log.lock().expect("log").tries.values().sum()
    }

    /// Requests answered 2xx, counted per idempotency key.
    pub fn delivered(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.received() {
            if (200..300).contains(&r.status) {
                *counts.entry(r.key).or_default() += 1;
            }
        }
        counts
    }

    /// Waits until `n` distinct keys were answered 2xx (panics after `limit`).
    pub async fn wait_for(&self, n: usize, limit: Duration) -> HashMap<String, usize> {
        let deadline = Instant::now() + limit;
        loop {
            let delivered = self.delivered();
            if delivered.len() >= n {
                return delivered;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} deliveries arrived within {limit:?}",
                delivered.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops listening (the port then refuses connections).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let tries = {
        let mut log = shared.log.lock().expect("log");
        let tries = log.tries.entry(key.clone()).or_default();
        *tries += 1;
        *tries
    };
    if !shared.script.delay.is_zero() {
        tokio::time::sleep(shared.script.delay).await;
    }
    let status = if tries <= shared.script.fail_first {
        503
    } else {
        shared.script.status
    };
    let received = Received {
        key,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
        status,
        at: Instant::now(),
    };
    shared.log.lock().expect("log").requests.push(received);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == 503 {
        (code, [("retry-after", "0")], "try again").into_response()
    } else {
        (code, "ok").into_response()
    }
}
