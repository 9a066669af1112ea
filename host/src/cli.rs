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
    /// Run the router: receive webhooks on `server.listen` until SIGTERM or Ctrl-C.
    Serve,
    /// Validate the configuration (and build every verifier) without starting.
    Check,
}

/// Exit code for an invalid configuration.
const EXIT_CONFIG: u8 = 2;

/// Parses the command line and runs it. Exit codes: 0 ok, 1 runtime failure,
/// 2 invalid configuration.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::new(e));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command {
        Command::Check => {
            println!(
                "{}: ok ({} source{})",
                cli.config.display(),
                config.sources.len(),
                if config.sources.len() == 1 { "" } else { "s" }
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
