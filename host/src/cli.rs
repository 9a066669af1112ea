//! The `hookyard` command line. `main.rs` only calls [`main`]; the CLI lives
//! in the library so the end-to-end tests build and run the very same code.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::{self, LogFormat};

/// Hookyard: a webhook router that verifies, stores durably and exactly once,
/// and acknowledges fast.
#[derive(Debug, Parser)]
#[command(name = "hookyard", bin_name = "hookyard", version)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        default_value = "router.toml",
        env = "HOOKYARD_CONFIG"
    )]
    config: PathBuf,
    /// Log line format (logs go to stderr).
    #[arg(long, global = true, value_enum, default_value = "pretty")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the router: receive webhooks on `server.listen` until SIGTERM or Ctrl-C; SIGHUP reloads router.toml.
    Serve,
    /// Validate the configuration (build every verifier, compile every plugin) without starting.
    Check,
    /// Work with plugins without a router.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Dispatch stored events again with the current plugin version: each
    /// gets a new plugin run and new deliveries (new idempotency keys).
    Replay(crate::cli_ops::ReplayArgs),
    /// Dead deliveries: list them, or send them again (same idempotency key).
    Dlq {
        #[command(subcommand)]
        command: crate::cli_ops::DlqCommand,
    },
    /// Sign a body as the source's provider would (configured secret) and
    /// post it to the running router: a "send test event" button.
    Send(crate::cli_send::SendArgs),
    /// The running router's events, through its admin API.
    Events {
        #[command(subcommand)]
        command: crate::cli_events::EventsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run a plugin on one event and print its actions (or its error) as JSON.
    Run {
        /// The plugin component (`.wasm`).
        wasm: PathBuf,
        /// The event: a JSON file with `body` (or `body_base64`) and optional
        /// `headers`, `source`, `id`, `method`, `path`, `received_at_ms`; any
        /// other file is the raw body.
        #[arg(long)]
        event: PathBuf,
        /// Take the event file as the raw body even if it looks like an event file.
        #[arg(long)]
        raw: bool,
        /// The source the event comes from.
        #[arg(long, default_value = "cli")]
        source: String,
        /// A value of the plugin's `config` table, KEY=VALUE (repeatable).
        /// (`--config` already names router.toml.)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
        set: Vec<(String, String)>,
    },
}

/// Parses `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{text}`"))
}

/// Exit code for an invalid configuration.
const EXIT_CONFIG: u8 = 2;

/// Parses the command line and runs it. Exit codes: 0 ok, 1 runtime failure,
/// 2 invalid configuration.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Plugin { command } = cli.command {
        return plugin_command(command);
    }
    let config = match config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Check => {
            // The plugins too: a file that is missing or not a component of
            // the plugin world would stop the router at start.
            let plugins = crate::plugin::Runtime::new().and_then(|runtime| {
                crate::plugin::registry::Plugins::load(runtime, &config.plugins)
            });
            if let Err(e) = plugins {
                eprintln!("error: {}: {e:#}", cli.config.display());
                return ExitCode::from(EXIT_CONFIG);
            }
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let loaded = match config.plugins.len() {
                0 => String::new(),
                n => format!(", {n} plugin{} compiled", plural(n)),
            };
            println!(
                "{}: ok ({} source{}{loaded})",
                cli.config.display(),
                config.sources.len(),
                plural(config.sources.len()),
            );
            ExitCode::SUCCESS
        }
        Command::Serve => {
            let _guard = telemetry::init(cli.log_format);
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "Router failed.");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Replay(args) => crate::cli_ops::replay(config, args),
        Command::Dlq { command } => crate::cli_ops::dlq(config, command),
        Command::Events { command } => crate::cli_events::events(&config, command),
        Command::Send(args) => crate::cli_send::send(&config, args),
        Command::Plugin { .. } => unreachable!("handled before loading the config"),
    }
}

/// `hookyard plugin ...`: needs no router.toml. Exit 0 when the plugin
/// handled the event, 1 when it refused or failed (the JSON says why).
fn plugin_command(command: PluginCommand) -> ExitCode {
    let PluginCommand::Run {
        wasm,
        event,
        raw,
        source,
        set,
    } = command;
    let outcome = crate::plugin::offline::read_event(&event, &source, raw)
        .and_then(|event| crate::plugin::offline::run(&wasm, &event, &set.into_iter().collect()));
    match outcome {
        Ok((json, handled)) => {
            println!("{json:#}");
            if handled {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: config::Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(%addr, config = %config.file.display(), "Listening.");
        // Tests and scripts read the bound address (port 0 picks one) here.
        println!("hookyard listening on {scheme}://{addr}");
        crate::app::run(config, listener, crate::shutdown::signal()).await
    })
}
