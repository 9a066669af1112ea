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
    /// An extra header, `NAME: VALUE`, repeatable. It replaces a header of
    /// the same name that signing set: GitHub's signer sends
    /// `X-GitHub-Event: ping`, so a push needs `--header 'X-GitHub-Event: push'`.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

/// Parses `NAME: VALUE` (spaces around either are trimmed; the value may be empty).
fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("`{arg}` is not `NAME: VALUE`"))?;
    let name = name.trim();
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    let value = value.trim();
    reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
    Ok((name.to_string(), value.to_string()))
}

/// The signer's headers with `extra` applied: each replaces the signer's
/// header of the same name (names compare case-insensitively) or is added.
fn with_extra(
    mut signed: Vec<(String, String)>,
    extra: Vec<(String, String)>,
) -> Vec<(String, String)> {
    for (name, value) in extra {
        signed.retain(|(have, _)| !have.eq_ignore_ascii_case(&name));
        signed.push((name, value));
    }
    signed
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
    let headers = with_extra(headers, args.headers);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.into(), value.into())
    }

    #[test]
    fn a_header_argument_is_name_colon_value() {
        assert_eq!(
            parse_header("X-GitHub-Event: push"),
            Ok(pair("X-GitHub-Event", "push"))
        );
        assert_eq!(parse_header("X-Empty:"), Ok(pair("X-Empty", "")));
        assert_eq!(
            parse_header("X-GitHub-Event push"),
            Err("`X-GitHub-Event push` is not `NAME: VALUE`".into())
        );
        assert_eq!(
            parse_header("Bad Name: x"),
            Err("`Bad Name` is not a valid header name".into())
        );
        assert_eq!(
            parse_header("X-Line: a\nb"),
            Err("the value of `X-Line` is not a valid header value".into())
        );
    }

    #[test]
    fn an_extra_header_replaces_the_signers_of_the_same_name() {
        let signed = vec![
            pair("X-Hub-Signature-256", "sha256=00"),
            pair("X-GitHub-Event", "ping"),
        ];
        let sent = with_extra(
            signed,
            vec![pair("x-github-event", "push"), pair("X-Trace", "1")],
        );
        assert_eq!(
            sent,
            vec![
                pair("X-Hub-Signature-256", "sha256=00"),
                pair("x-github-event", "push"),
                pair("X-Trace", "1"),
            ]
        );
    }
}
