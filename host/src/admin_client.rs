//! The CLI's side of the admin API: where it is (`--admin-url`, else
//! `http://` + `[admin] listen`), the token (`HOOKYARD_ADMIN_TOKEN`), and
//! API errors turned into their message.

use anyhow::Context;
use serde_json::Value;

use crate::config::Config;

/// A blocking client for one admin API.
#[derive(Debug)]
pub(crate) struct AdminClient {
    base: String,
    token: Option<String>,
    runtime: tokio::runtime::Runtime,
}

impl AdminClient {
    /// The API at `url`, else the one `config` listens on.
    pub(crate) fn new(config: &Config, url: Option<&str>) -> anyhow::Result<Self> {
        let base = match (url, &config.admin) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(admin)) => format!("http://{}", admin.listen),
            (None, None) => anyhow::bail!(
                "{} has no [admin] section: give --admin-url (or HOOKYARD_ADMIN_URL)",
                config.file.display()
            ),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Self {
            base,
            token: std::env::var("HOOKYARD_ADMIN_TOKEN").ok(),
            runtime,
        })
    }

    /// `GET path?query`.
    pub(crate) fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, query, None)
    }

    /// `POST path` with a JSON body (or none).
    pub(crate) fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, &[], body)
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let base = &self.base;
        self.runtime.block_on(async {
            let mut request = reqwest::Client::new()
                .request(method, format!("{base}{path}"))
                .query(query);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = request.send().await.with_context(|| {
                format!("reaching the admin API at {base} (is the router running?)")
            })?;
            let status = answer.status();
            let body: Value = answer.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(body);
            }
            let message = body["error"]["message"]
                .as_str()
                .unwrap_or("no error message");
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED {
                " (set HOOKYARD_ADMIN_TOKEN to the router's admin.token)"
            } else {
                ""
            };
            anyhow::bail!("the admin API answered {status}: {message}{hint}")
        })
    }
}
