//! Test harness for Hookyard's end-to-end tests.
//!
//! - [`Router`] runs the real `hookyard` binary on port 0 in a temporary
//!   directory (for signal, crash and CLI tests); [`InProcess`] runs
//!   `hookyard::app::run` inside the test (faster, for everything else).
//! - [`sign`] builds requests signed the way each provider signs them.
//! - [`services`] finds the machine's PostgreSQL and applies the
//!   `HOOKYARD_TEST_SERVICES=require` policy: skip loudly, or fail.

pub mod admin;
pub mod plugins;
pub mod process;
pub mod receiver;
pub mod services;
pub mod sign;
pub mod sign_catalog;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use process::Router;

/// The secrets the harness configures; tests sign with the same values.
pub mod secrets {
    /// GitHub source secret.
    pub const GITHUB: &str = "test-github-secret";
    /// Stripe source secret (used verbatim, `whsec_` included).
    pub const STRIPE: &str = "whsec_test_stripe_secret";
    /// Slack signing secret.
    pub const SLACK: &str = "test-slack-secret";
    /// Shopify client secret.
    pub const SHOPIFY: &str = "test-shopify-secret";
    /// Standard Webhooks secret: `whsec_` + base64("test-standard-webhooks-key").
    pub const STANDARD: &str = "whsec_dGVzdC1zdGFuZGFyZC13ZWJob29rcy1rZXk=";
    /// Generic HMAC secret.
    pub const ACME: &str = "test-acme-secret";
}

/// A router.toml with one source per preset, listening on port 0, storing
/// in `store_url`. `extra` is appended verbatim (more sources, TLS, ...).
pub fn config_toml(store_url: &str, extra_server: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
shutdown_timeout_s = 10
{extra_server}

[store]
url = "{store_url}"

[sources.github]
verify = "github"
secrets = ["old-rotated-secret", "{github}"]

[sources.stripe]
verify = "stripe"
secrets = ["{stripe}"]

[sources.slack]
verify = "slack"
secrets = ["{slack}"]

[sources.shopify]
verify = "shopify"
secrets = ["{shopify}"]

[sources.standard]
verify = "standard-webhooks"
secrets = ["{standard}"]

[sources.svix]
verify = "svix"
secrets = ["{standard}"]

[sources.acme]
verify = "hmac"
secrets = ["{acme}"]
header = "X-Acme-Signature"
algorithm = "sha512"
encoding = "base64"
prefix = "v1="
id_header = "X-Acme-Delivery"

[sources.internal]
verify = "none"
"#,
        github = secrets::GITHUB,
        stripe = secrets::STRIPE,
        slack = secrets::SLACK,
        shopify = secrets::SHOPIFY,
        standard = secrets::STANDARD,
        acme = secrets::ACME,
    )
}

/// A SQLite URL for a database file inside `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("hookyard.db").display())
}

/// The router running inside the test process, on a real socket.
#[derive(Debug)]
pub struct InProcess {
    /// `http://127.0.0.1:PORT` (or the address it was bound to).
    pub url: String,
    /// Where its database and config live.
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _tmp: Option<Arc<tempfile::TempDir>>,
}

impl InProcess {
    /// Starts a router on SQLite in a fresh temporary directory.
    pub async fn start_sqlite() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let text = config_toml(&sqlite_url(tmp.path()), "");
        let mut this = Self::start_with(tmp.path(), &text).await;
        this._tmp = Some(Arc::new(tmp));
        this
    }

    /// Starts a router on the given config text (`dir` holds relative files).
    pub async fn start_with(dir: &Path, text: &str) -> Self {
        Self::start_bound(dir, text, "127.0.0.1:0").await
    }

    /// [`InProcess::start_with`] on another local address, e.g. `[::1]:0`.
    pub async fn start_bound(dir: &Path, text: &str, bind: &str) -> Self {
        let path = dir.join("router.toml");
        std::fs::write(&path, text).expect("write config");
        let config = hookyard::config::load(&path).expect("valid test config");
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hookyard::app::run(config, listener, async {
            let _ = stopped.await;
        }));
        Self {
            url: format!("http://{addr}"),
            dir: dir.to_path_buf(),
            stop: Some(stop),
            task,
            _tmp: None,
        }
    }

    /// `url` + `/webhooks/{source}`.
    pub fn webhook(&self, source: &str) -> String {
        format!("{}/webhooks/{source}", self.url)
    }

    /// Graceful shutdown; returns what `app::run` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}

/// An HTTP client for tests (no proxy, short timeouts).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Opens the router's store read-side (a second connection to its database).
pub async fn open_store(url: &str) -> Arc<dyn hookyard::store::Store> {
    let config = hookyard::store::StoreConfig {
        url: url.to_string(),
        sqlite_synchronous: Default::default(),
        group_commit: Default::default(),
        retention: Default::default(),
    };
    hookyard::store::open(&config).await.expect("open store")
}

/// POSTs `body` with `headers` to `url` with the test [`client`].
pub async fn post(url: &str, headers: &sign::Headers, body: &[u8]) -> reqwest::Response {
    sign::with_headers(client().post(url), headers)
        .body(body.to_vec())
        .send()
        .await
        .expect("send")
}

/// Waits (up to 60 s) until a stored event has left `received`, i.e. its
/// dispatch finished, and returns it.
pub async fn dispatched(
    store: &Arc<dyn hookyard::store::Store>,
    id: &hookyard::store::EventId,
) -> hookyard::store::StoredEvent {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let event = store
            .get_event(id)
            .await
            .expect("read event")
            .expect("stored");
        if event.status != "received" {
            return event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} still undispatched"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits (up to `limit`) until no delivery is pending any more, and returns
/// the backlog then. Panics with the count left when time runs out.
pub async fn deliveries_settled(
    store: &Arc<dyn hookyard::store::Store>,
    limit: std::time::Duration,
) -> hookyard::store::Backlog {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let backlog = store.backlog().await.expect("backlog");
        if backlog.undispatched == 0 && backlog.pending_deliveries == 0 {
            return backlog;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} undispatched and {} pending deliveries after {limit:?}",
            backlog.undispatched,
            backlog.pending_deliveries
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
