//! `hookyard events list|show`: the running router's events through its
//! admin API (`--admin-url`, default from `[admin] listen`; the token from
//! `HOOKYARD_ADMIN_TOKEN`), as a table for people or `--json` for scripts.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::admin_client::AdminClient;
use crate::config::Config;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The admin API (default: `http://` + `[admin] listen` of router.toml).
    #[arg(long, env = "HOOKYARD_ADMIN_URL")]
    admin_url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

/// `hookyard events ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// List events, newest first (a page; `--cursor` continues).
    List {
        /// Only this source's.
        #[arg(long)]
        source: Option<String>,
        /// Only events with this status (received, processed, dropped, failed).
        #[arg(long)]
        status: Option<String>,
        /// Received at or after: RFC 3339, a UTC day (2026-12-01), or a span back (2h).
        #[arg(long)]
        since: Option<String>,
        /// Received before (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The `next cursor` a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one event: its request, plugin runs, deliveries and attempts.
    Show {
        /// The event id (evt_...).
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Runs `hookyard events ...`; errors print and exit 1.
pub(crate) fn events(config: &Config, command: EventsCommand) -> ExitCode {
    match run(config, command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::List {
            source,
            status,
            since,
            until,
            limit,
            cursor,
            admin,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            for (key, value) in [
                ("source", source),
                ("status", status),
                ("since", since),
                ("until", until),
                ("cursor", cursor),
            ] {
                if let Some(value) = value {
                    query.push((key, value));
                }
            }
            let page =
                AdminClient::new(config, admin.admin_url.as_deref())?.get("/api/events", &query)?;
            if admin.json {
                println!("{page:#}");
                return Ok(());
            }
            let rows: Vec<[String; 5]> = page["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    [
                        text(&e["id"]),
                        text(&e["source"]),
                        text(&e["status"]),
                        crate::cli_time::format_ms(e["received_at_ms"].as_i64().unwrap_or(0)),
                        text(&e["body_bytes"]),
                    ]
                })
                .collect();
            print_table(
                &["ID", "SOURCE", "STATUS", "RECEIVED (UTC)", "BYTES"],
                &rows,
            );
            if let Some(next) = page["next_cursor"].as_str() {
                println!("next cursor: {next}");
            }
            Ok(())
        }
        EventsCommand::Show { id, admin } => {
            let event = AdminClient::new(config, admin.admin_url.as_deref())?
                .get(&format!("/api/events/{id}"), &[])?;
            if admin.json {
                println!("{event:#}");
                return Ok(());
            }
            println!(
                "{}  {}  {}",
                text(&event["id"]),
                text(&event["source"]),
                text(&event["status"])
            );
            if let Some(reason) = event["status_reason"].as_str() {
                println!("reason: {reason}");
            }
            println!(
                "received {} UTC, key {}, verified by {}",
                crate::cli_time::format_ms(event["received_at_ms"].as_i64().unwrap_or(0)),
                text(&event["idempotency_key"]),
                text(&event["verification"])
            );
            let request = &event["request"];
            println!("{} {}", text(&request["method"]), text(&request["path"]));
            for pair in request["headers"].as_array().into_iter().flatten() {
                println!("  {}: {}", text(&pair[0]), text(&pair[1]));
            }
            match request["body"]["data"].as_str() {
                Some(body) => println!("\n{body}\n"),
                None => println!("\n(body purged by retention)\n"),
            }
            let runs: Vec<[String; 4]> = event["plugin_runs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    [
                        text(&r["plugin"]),
                        text(&r["outcome"]),
                        text(&r["duration_us"]),
                        text(&r["version"]),
                    ]
                })
                .collect();
            if !runs.is_empty() {
                print_table(&["PLUGIN", "OUTCOME", "µs", "VERSION"], &runs);
            }
            let deliveries: Vec<[String; 4]> = event["deliveries"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    [
                        text(&d["id"]),
                        text(&d["sink"]),
                        text(&d["status"]),
                        text(&d["attempts"]),
                    ]
                })
                .collect();
            print_table(&["DELIVERY", "SINK", "STATUS", "ATTEMPTS"], &deliveries);
            Ok(())
        }
    }
}

/// A JSON value as a table cell (strings without their quotes).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns, two spaces apart.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
