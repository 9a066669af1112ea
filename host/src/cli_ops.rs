//! `hookyard replay` and `hookyard dlq`: operations on the stored events
//! and deliveries, through the same [`Store`] functions the router (and
//! the admin API) use. They open the configured store directly, so they
//! work beside a running router (SQLite's WAL admits one more writer
//! process; Postgres any number) and without one: what they queue is
//! picked up by the router's next sweep, within a second, or at its start.
//! With `--admin-url` (or `HOOKYARD_ADMIN_URL`) they go through the
//! running router's admin API instead, for a router on another machine.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use crate::admin_client::AdminClient;
use crate::clock::now_ms;
use crate::config::Config;
use crate::store::{self, DeadQuery, DeadSelector, EventId, ReplaySelector, Store};

/// `hookyard replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// One event to replay (`evt_...`). Without it, every event matching
    /// the filters is replayed (at least one filter is required).
    event_id: Option<String>,
    /// Only events of this source.
    #[arg(long)]
    source: Option<String>,
    /// Only events received at or after this time: 2026-11-29T10:00:00Z,
    /// 2026-11-29 (a UTC day), or a span back from now (90m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only events received before this time (same formats as --since).
    #[arg(long)]
    until: Option<String>,
    /// Only events whose dispatch ended so.
    #[arg(long, value_enum)]
    status: Option<ReplayStatus>,
    /// Go through the running router's admin API at this URL instead of
    /// opening the store (token from HOOKYARD_ADMIN_TOKEN).
    #[arg(long, env = "HOOKYARD_ADMIN_URL")]
    admin_url: Option<String>,
}

/// How an event's dispatch ended, as a replay filter.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReplayStatus {
    /// Deliveries were created.
    Processed,
    /// The plugin dropped it.
    Dropped,
    /// The plugin failed or broke a limit.
    Failed,
}

/// `hookyard dlq ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead deliveries, most recently dead first.
    List {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Go through the running router's admin API at this URL instead of
        /// opening the store (token from HOOKYARD_ADMIN_TOKEN).
        #[arg(long, env = "HOOKYARD_ADMIN_URL")]
        admin_url: Option<String>,
    },
    /// Send dead deliveries again, with the same idempotency key and a
    /// fresh round of the sink's retry attempts.
    Retry {
        /// The delivery (`dlv_...`); or --all.
        delivery_id: Option<String>,
        /// Every dead delivery (of --sink, if given).
        #[arg(long, conflicts_with = "delivery_id")]
        all: bool,
        /// With --all: only this sink's.
        #[arg(long, requires = "all")]
        sink: Option<String>,
        /// Go through the running router's admin API at this URL instead of
        /// opening the store (token from HOOKYARD_ADMIN_TOKEN).
        #[arg(long, env = "HOOKYARD_ADMIN_URL")]
        admin_url: Option<String>,
    },
}

/// Runs `hookyard replay`.
pub(crate) fn replay(config: Config, args: ReplayArgs) -> ExitCode {
    if let Some(url) = args.admin_url.clone() {
        return via_api(&config, &url, |api| replay_via_api(api, args));
    }
    run(config, move |store| async move {
        let now = now_ms();
        let which = match args.event_id {
            Some(id) => {
                if args.source.is_some()
                    || args.since.is_some()
                    || args.until.is_some()
                    || args.status.is_some()
                {
                    anyhow::bail!("give an event id or filters, not both");
                }
                ReplaySelector::One(EventId::from_string(id))
            }
            None => {
                if args.source.is_none()
                    && args.since.is_none()
                    && args.until.is_none()
                    && args.status.is_none()
                {
                    anyhow::bail!(
                        "give an event id, or at least one of --source, --since, --until, --status \
                         (a replay of everything must be asked for by a filter)"
                    );
                }
                let time = |t: Option<String>| {
                    t.map(|t| crate::cli_time::parse_time(&t, now))
                        .transpose()
                        .map_err(anyhow::Error::msg)
                };
                ReplaySelector::Filter {
                    source: args.source,
                    since_ms: time(args.since)?,
                    until_ms: time(args.until)?,
                    status: args.status.map(|s| format!("{s:?}").to_lowercase()),
                }
            }
        };
        let one = match &which {
            ReplaySelector::One(id) => Some(id.clone()),
            ReplaySelector::Filter { .. } => None,
        };
        let queued = store.request_replay(which, now).await?;
        match one {
            Some(id) if queued == 0 => {
                let why = crate::ops::why_not_replayed(&*store, &id).await?;
                anyhow::bail!("event {id} was not replayed: {}", why.message());
            }
            _ => {
                println!(
                    "queued {queued} event{} for replay: the router dispatches {} with the current \
                     plugin version within a second (or at its next start)",
                    if queued == 1 { "" } else { "s" },
                    if queued == 1 { "it" } else { "them" }
                );
                Ok(())
            }
        }
    })
}

/// Runs `hookyard dlq ...`.
pub(crate) fn dlq(config: Config, command: DlqCommand) -> ExitCode {
    let url = match &command {
        DlqCommand::List { admin_url, .. } | DlqCommand::Retry { admin_url, .. } => {
            admin_url.clone()
        }
    };
    if let Some(url) = url {
        return via_api(&config, &url, |api| dlq_via_api(api, command));
    }
    run(config, move |store| async move {
        match command {
            DlqCommand::List {
                sink, limit, json, ..
            } => {
                let dead = store.dead_deliveries(DeadQuery { sink, limit }).await?;
                print_dead(&dead, json)?;
                Ok(())
            }
            DlqCommand::Retry {
                delivery_id,
                all,
                sink,
                ..
            } => {
                let which = match (delivery_id, all) {
                    (Some(id), false) => DeadSelector::One(id),
                    (None, true) => DeadSelector::All { sink },
                    _ => anyhow::bail!("give a delivery id (dlv_...) or --all"),
                };
                let one = match &which {
                    DeadSelector::One(id) => Some(id.clone()),
                    DeadSelector::All { .. } => None,
                };
                let sent = store.retry_dead(which, now_ms()).await?;
                if let (Some(id), 0) = (&one, sent) {
                    let why = crate::ops::why_not_retried(&*store, id).await?;
                    anyhow::bail!("delivery {id} was not retried: {}", why.message());
                }
                println!(
                    "queued {sent} dead deliver{} to be sent again",
                    if sent == 1 { "y" } else { "ies" }
                );
                Ok(())
            }
        }
    })
}

/// Prints dead letters as a table, or one JSON object per line.
fn print_dead(dead: &[crate::store::DeadDelivery], json: bool) -> anyhow::Result<()> {
    if json {
        for d in dead {
            println!("{}", serde_json::to_string(d)?);
        }
    } else if dead.is_empty() {
        println!("no dead deliveries");
    } else {
        println!(
            "{:<30} {:<12} {:<30} {:>8}  LAST ERROR",
            "DELIVERY", "SINK", "EVENT", "ATTEMPTS"
        );
        for d in dead {
            let error: String = d
                .last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(100)
                .collect();
            println!(
                "{:<30} {:<12} {:<30} {:>8}  {error}",
                d.id, d.sink, d.event_id, d.attempts
            );
        }
    }
    Ok(())
}

/// Runs `work` against the admin API at `url`; errors print and exit 1.
fn via_api(
    config: &Config,
    url: &str,
    work: impl FnOnce(&AdminClient) -> anyhow::Result<()>,
) -> ExitCode {
    match AdminClient::new(config, Some(url)).and_then(|api| work(&api)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `hookyard replay` through the admin API.
fn replay_via_api(api: &AdminClient, args: ReplayArgs) -> anyhow::Result<()> {
    let answer = match args.event_id {
        Some(id) => api.post(&format!("/api/events/{id}/replay"), None)?,
        None => {
            let status = args.status.map(|s| format!("{s:?}").to_lowercase());
            api.post(
                "/api/replay",
                Some(serde_json::json!({
                    "source": args.source, "since": args.since, "until": args.until, "status": status,
                })),
            )?
        }
    };
    let queued = answer["queued"].as_u64().unwrap_or(0);
    println!(
        "queued {queued} event{} for replay",
        if queued == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `hookyard dlq` through the admin API.
fn dlq_via_api(api: &AdminClient, command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            sink, limit, json, ..
        } => {
            let mut query = vec![("status", "dead".to_string()), ("limit", limit.to_string())];
            if let Some(sink) = sink {
                query.push(("sink", sink));
            }
            let page = api.get("/api/deliveries", &query)?;
            let dead: Vec<crate::store::DeadDelivery> =
                serde_json::from_value(page["deliveries"].clone())?;
            print_dead(&dead, json)
        }
        DlqCommand::Retry {
            delivery_id,
            all,
            sink,
            ..
        } => {
            let answer = match (delivery_id, all) {
                (Some(id), false) => api.post(&format!("/api/deliveries/{id}/retry"), None)?,
                (None, true) => api.post(
                    "/api/deliveries/retry",
                    Some(serde_json::json!({ "sink": sink })),
                )?,
                _ => anyhow::bail!("give a delivery id (dlv_...) or --all"),
            };
            let sent = answer["queued"].as_u64().unwrap_or(0);
            println!(
                "queued {sent} dead deliver{} to be sent again",
                if sent == 1 { "y" } else { "ies" }
            );
            Ok(())
        }
    }
}

/// Opens the store, runs `work`, closes the store; errors print and exit 1.
fn run<F, Fut>(config: Config, work: F) -> ExitCode
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let store = store::open(&config.store)
            .await
            .context("opening the store")?;
        let outcome = work(store.clone()).await;
        store.close().await;
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
