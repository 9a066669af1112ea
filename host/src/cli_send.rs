//! `hookyard send <source> --body-file F`: a provider's "send test event"
//! button. Signs the body exactly as the source's provider would, with the
//! configured secret (the newest), and posts it to the running router.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::Config;

/// `hookyard send`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The source (a `[sources.NAME]` of router.toml).
    source: String,
    /// The raw body to send, byte for byte.
    #[arg(long)]
    body_file: PathBuf,
    /// The provider's delivery id where the scheme carries one (GitHub's
    /// X-GitHub-Delivery, Shopify's X-Shopify-Webhook-Id, Standard
    /// Webhooks' webhook-id, the hmac preset's id_header); default: a new
    /// `send_` + ULID, so each send is a new event.
    #[arg(long)]
    id: Option<String>,
    /// Where to post (default: `server.listen` of router.toml + /webhooks/SOURCE).
    #[arg(long)]
    url: Option<String>,
}

/// Runs `hookyard send`: exit 0 when the router answered 2xx.
pub(crate) fn send(config: &Config, args: SendArgs) -> ExitCode {
    match run(config, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config, args: SendArgs) -> anyhow::Result<bool> {
    let Some(source) = config.sources.get(&args.source) else {
        let known: Vec<&str> = config.sources.keys().map(String::as_str).collect();
        anyhow::bail!(
            "{} has no source `{}` (sources: {})",
            config.file.display(),
            args.source,
            known.join(", ")
        );
    };
    let body = std::fs::read(&args.body_file)
        .with_context(|| format!("reading {}", args.body_file.display()))?;
    let id = args
        .id
        .unwrap_or_else(|| format!("send_{}", ulid::Ulid::new()));
    let now = crate::clock::now_ms() / 1000;
    let Some(headers) = source.verifier.sign(&body, &id, now) else {
        anyhow::bail!(
            "hookyard send cannot sign for preset `{}`: the router holds only a public key \
             or a token's digest for it, or its scheme signs the URL or a timestamp in the \
             body; use the provider's own test button",
            source.preset
        );
    };
    let url = args.url.unwrap_or_else(|| {
        let listen = config.server.listen;
        let host = if listen.ip().is_unspecified() {
            std::net::SocketAddr::new([127, 0, 0, 1].into(), listen.port())
        } else {
            listen
        };
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}/webhooks/{}", args.source)
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let mut request = reqwest::Client::new().post(&url).body(body);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("posting to {url} (is the router running?)"))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        println!("{} {}", status.as_u16(), text.trim_end());
        Ok(status.is_success())
    })
}
