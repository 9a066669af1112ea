//! What the store keeps about dispatch: the outcome of handing an event to
//! its plugin (or its source's sinks), the plugin run, and the deliveries
//! it produced, written together so an event is never half processed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::EventId;

/// How long after its receipt a new event's row becomes due for a sweep.
/// The event is handed to the dispatcher in memory at once; the row is the
/// fallback for a crash or a full hand-off queue, and the grace keeps a
/// sweep from taking an event the hand-off is about to run.
pub const DISPATCH_GRACE_MS: i64 = 10_000;

/// How an event's dispatch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Deliveries were created (at least one action delivers).
    Processed,
    /// Every action was a drop; the reasons, joined.
    Dropped(String),
    /// Dead-lettered: the plugin refused it or broke a limit, or named a
    /// sink it was not granted. Nothing of it is delivered.
    Failed(String),
    /// A failure that may pass (the plugin's `internal` error, its
    /// deadline): the event stays `received` and is due again at `at_ms`.
    Retry {
        /// When a sweep may take it again.
        at_ms: i64,
        /// Why this attempt failed.
        reason: String,
    },
}

impl EventOutcome {
    /// The event's `status` column after this outcome.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Dropped(_) => "dropped",
            Self::Failed(_) => "failed",
            Self::Retry { .. } => "received",
        }
    }

    /// The event's `status_reason` column after this outcome.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Processed => None,
            Self::Dropped(why) | Self::Failed(why) | Self::Retry { reason: why, .. } => Some(why),
        }
    }

    /// The plugin run's `outcome` column.
    pub fn run_outcome(&self) -> &'static str {
        match self {
            Self::Processed => "delivered",
            Self::Dropped(_) => "dropped",
            Self::Failed(_) => "failed",
            Self::Retry { .. } => "retry",
        }
    }
}

/// A plugin call to record.
#[derive(Debug, Clone)]
pub struct NewPluginRun {
    /// `run_` + ULID.
    pub id: String,
    /// The plugin's name in router.toml.
    pub plugin: String,
    /// `sha256:<hex>` of the component that ran.
    pub version: String,
    /// Fuel the call consumed.
    pub fuel_used: u64,
    /// Wall-clock time of the call, instantiation included.
    pub duration_us: u64,
    /// JSON summary of the actions returned (sinks and sizes, drop reasons).
    pub actions: String,
    /// When it ran, unix milliseconds.
    pub ran_at_ms: i64,
}

/// A delivery to create, pending.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// `dlv_` + ULID.
    pub id: String,
    /// Position among the event's deliveries.
    pub seq: u32,
    /// The sink's name.
    pub sink: String,
    /// The bytes to deliver.
    pub payload: Vec<u8>,
    /// Headers or message attributes.
    pub headers: Vec<(String, String)>,
    /// Appended to the sink's subject or routing key.
    pub subject_suffix: Option<String>,
    /// Message key (NATS message id, Redis entry key).
    pub key: Option<String>,
    /// Set when the delivery is handed to its sink's worker in memory as
    /// it is written: the lease that worker holds on it, so no claim
    /// (of this or another process) takes it meanwhile. `None`: due at once.
    pub leased_until_ms: Option<i64>,
}

/// Everything one dispatch of one event writes, in one transaction.
#[derive(Debug, Clone)]
pub struct DispatchOutcome {
    /// The event.
    pub event_id: EventId,
    /// Its source (copied onto its deliveries).
    pub source: String,
    /// When it was received, unix milliseconds (copied onto its deliveries).
    pub event_at_ms: i64,
    /// How it ended.
    pub outcome: EventOutcome,
    /// The plugin call, when a plugin ran.
    pub run: Option<NewPluginRun>,
    /// Deliveries to create (empty unless `Processed`).
    pub deliveries: Vec<NewDelivery>,
    /// When this was decided, unix milliseconds.
    pub at_ms: i64,
}

impl DispatchOutcome {
    /// When the event is due for dispatch again: a retry's time, else the
    /// decision's (a finished event is not due at all: its status says so).
    pub(super) fn due_at_ms(&self) -> i64 {
        match &self.outcome {
            EventOutcome::Retry { at_ms, .. } => *at_ms,
            _ => self.at_ms,
        }
    }
}

/// A recorded plugin run, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginRunRecord {
    /// `run_` + ULID.
    pub id: String,
    /// The plugin's name.
    pub plugin: String,
    /// The component's `sha256:<hex>`.
    pub version: String,
    /// `delivered`, `dropped`, `failed` or `retry`.
    pub outcome: String,
    /// Why it failed or dropped.
    pub reason: Option<String>,
    /// Fuel consumed.
    pub fuel_used: i64,
    /// Duration in microseconds.
    pub duration_us: i64,
    /// JSON summary of the actions.
    pub actions: String,
    /// When it ran.
    pub ran_at_ms: i64,
}

/// A delivery, as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    /// `dlv_` + ULID.
    pub id: String,
    /// Its event.
    pub event_id: String,
    /// The plugin run that asked for it (`None`: the source's sinks).
    pub run_id: Option<String>,
    /// Position among the event's deliveries.
    pub seq: i64,
    /// The sink's name.
    pub sink: String,
    /// The bytes to deliver.
    pub payload: Vec<u8>,
    /// Headers as `[[name, value], ...]` JSON.
    pub headers: String,
    /// Subject or routing-key suffix.
    pub subject_suffix: Option<String>,
    /// Message key.
    pub msg_key: Option<String>,
    /// `pending`, `done` or `dead`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failed attempt's error (`None` once done).
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at_ms: i64,
    /// When a worker may next take it (while pending).
    pub next_attempt_at_ms: i64,
    /// When it became done or dead.
    pub finished_at_ms: Option<i64>,
}

/// Work not yet done, for backpressure, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Events stored but not yet dispatched (status `received`).
    pub undispatched: u64,
    /// Deliveries not yet sent (status `pending`).
    pub pending_deliveries: u64,
    /// Dead-lettered deliveries (status `dead`).
    pub dead_deliveries: u64,
}

/// One sink's deliveries not yet done, for the admin API's sink list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SinkBacklog {
    /// Deliveries not yet sent (status `pending`).
    pub pending: u64,
    /// Dead-lettered deliveries (status `dead`).
    pub dead: u64,
}

/// Pending and dead deliveries per sink; the same text on both backends,
/// each half served by that status's partial index on `(sink, …)`.
pub(super) const SINK_BACKLOG_SQL: &str =
    "SELECT sink, 'pending', COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY sink \
     UNION ALL \
     SELECT sink, 'dead', COUNT(*) FROM deliveries WHERE status = 'dead' GROUP BY sink";

/// Folds [`SINK_BACKLOG_SQL`]'s rows into one entry per sink.
pub(super) fn sink_backlog(rows: Vec<(String, String, i64)>) -> BTreeMap<String, SinkBacklog> {
    let mut by_sink: BTreeMap<String, SinkBacklog> = BTreeMap::new();
    for (sink, status, count) in rows {
        let entry = by_sink.entry(sink).or_default();
        let count = u64::try_from(count).unwrap_or_default();
        if status == "dead" {
            entry.dead = count;
        } else {
            entry.pending = count;
        }
    }
    by_sink
}

/// The `deliveries.headers` column: JSON of the header pairs.
pub(super) fn encode_delivery_headers(headers: &[(String, String)]) -> String {
    // A list of string pairs always serialises.
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}

/// A `plugin_runs` row (the same columns on both backends).
#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    id: String,
    plugin: String,
    version: String,
    outcome: String,
    reason: Option<String>,
    fuel_used: i64,
    duration_us: i64,
    actions: String,
    ran_at_ms: i64,
}

impl RunRow {
    pub(super) fn into_record(self) -> PluginRunRecord {
        PluginRunRecord {
            id: self.id,
            plugin: self.plugin,
            version: self.version,
            outcome: self.outcome,
            reason: self.reason,
            fuel_used: self.fuel_used,
            duration_us: self.duration_us,
            actions: self.actions,
            ran_at_ms: self.ran_at_ms,
        }
    }
}

/// A `deliveries` row (the same columns on both backends).
#[derive(sqlx::FromRow)]
pub(super) struct DeliveryRow {
    id: String,
    event_id: String,
    run_id: Option<String>,
    seq: i64,
    sink: String,
    payload: Vec<u8>,
    headers: String,
    subject_suffix: Option<String>,
    msg_key: Option<String>,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    created_at_ms: i64,
    next_attempt_at_ms: i64,
    finished_at_ms: Option<i64>,
}

impl DeliveryRow {
    pub(super) fn into_record(self) -> DeliveryRecord {
        DeliveryRecord {
            id: self.id,
            event_id: self.event_id,
            run_id: self.run_id,
            seq: self.seq,
            sink: self.sink,
            payload: self.payload,
            headers: self.headers,
            subject_suffix: self.subject_suffix,
            msg_key: self.msg_key,
            status: self.status,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at_ms: self.created_at_ms,
            next_attempt_at_ms: self.next_attempt_at_ms,
            finished_at_ms: self.finished_at_ms,
        }
    }
}

/// The columns [`DeliveryRow`] reads, in its order.
macro_rules! delivery_columns {
    () => {
        "id, event_id, run_id, seq, sink, payload, headers, subject_suffix, msg_key, status, \
         attempts, last_error, created_at_ms, next_attempt_at_ms, finished_at_ms"
    };
}
pub(super) use delivery_columns;
