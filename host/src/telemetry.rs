//! Logging setup: `tracing` to stderr through [`LogSink`], so a slow
//! terminal or pipe never stalls the request path (lines are dropped
//! instead when its buffer is full, and the drop is reported).

use tracing_subscriber::EnvFilter;

use crate::log_format::PlainLine;
use crate::log_sink::{LogSink, LogSinkGuard};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. `RUST_LOG` overrides the default
/// `info` level. Keep the guard alive until exit: dropping it writes what
/// is still buffered.
pub fn init(format: LogFormat) -> LogSinkGuard {
    let (writer, guard) = LogSink::new(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Pretty => builder
            .with_ansi(false)
            .event_format(PlainLine::default())
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}
