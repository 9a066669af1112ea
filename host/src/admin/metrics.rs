//! The router's Prometheus metrics: every family in one place, recorded by
//! the stages through one shared [`Metrics`], and encoded for `/metrics`.
//!
//! Counters the stages already keep (plugin reloads, dispatch hand-off
//! overflow) and the backlog are copied in when scraped, not counted twice.

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::plugin::registry::Plugins;

/// A request's source and answer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The path's source (empty for paths outside `/webhooks/`).
    pub source: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The refusal's stable code, `ok` when acknowledged.
    pub code: String,
}

/// One source.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source's name.
    pub source: String,
}

/// Why a signature check refused a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerifyLabels {
    /// The source's name.
    pub source: String,
    /// The refusal's code (`invalid_signature`, `missing_signature`, ...).
    pub reason: String,
}

/// A dispatched event's route and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The plugin that ran (`-` for a source routed without one).
    pub plugin: String,
    /// `processed`, `dropped`, `failed` or `retry`.
    pub outcome: String,
}

/// One plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    /// The plugin's name.
    pub plugin: String,
}

/// A delivery attempt's sink and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// The sink's name.
    pub sink: String,
    /// `delivered`, `retry` or `dead`.
    pub outcome: String,
}

/// One sink.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink's name.
    pub sink: String,
}

/// A plugin reload's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// The plugin's name.
    pub plugin: String,
    /// `swapped` or `failed`.
    pub outcome: String,
}

/// A configuration reload's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConfigReloadLabel {
    /// `applied` or `refused`.
    pub outcome: String,
}

/// The metric families. Cheap to record into from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhook requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request to answer, seconds.
    pub ack_latency: Family<SourceLabel, Histogram>,
    /// Requests refused by the signature check.
    pub verification_failures: Family<VerifyLabels, Counter>,
    /// Events dispatched.
    pub events: Family<EventLabels, Counter>,
    /// Plugin call time, instantiation included, seconds.
    pub plugin_duration: Family<PluginLabel, Histogram>,
    /// Fuel a plugin call consumed.
    pub plugin_fuel: Family<PluginLabel, Histogram>,
    /// Delivery attempts by outcome.
    pub deliveries: Family<DeliveryLabels, Counter>,
    /// Delivery attempts made (whatever their outcome).
    pub delivery_attempts: Family<SinkLabel, Counter>,
    /// Delivery send time, seconds (one sink batch).
    pub delivery_duration: Family<SinkLabel, Histogram>,
    plugin_reloads: Family<ReloadLabels, Counter>,
    /// Configuration reloads (SIGHUP, admin API) by outcome.
    pub config_reloads: Family<ConfigReloadLabel, Counter>,
    backlog_undispatched: Gauge,
    backlog_pending: Gauge,
    backlog_dead: Gauge,
    dispatch_overflow: Counter,
}

fn latency_histogram() -> Histogram {
    // 100 us to ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn fuel_histogram() -> Histogram {
    // 1 thousand to ~1 billion units.
    Histogram::new(exponential_buckets(1_000.0, 4.0, 11))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family, registered under the `hookyard_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hookyard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Webhook requests answered, by source, status and code",
            requests.clone(),
        );
        let ack_latency = Family::<SourceLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "ack_latency_seconds",
            "Time from a webhook request to its answer",
            ack_latency.clone(),
        );
        let verification_failures = Family::<VerifyLabels, Counter>::default();
        registry.register(
            "verification_failures",
            "Webhook requests refused by the signature check, by reason",
            verification_failures.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_dispatched",
            "Events dispatched, by plugin and outcome",
            events.clone(),
        );
        let plugin_duration = Family::<PluginLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "plugin_duration_seconds",
            "Plugin call time, instantiation included",
            plugin_duration.clone(),
        );
        let plugin_fuel = Family::<PluginLabel, Histogram>::new_with_constructor(
            fuel_histogram as fn() -> Histogram,
        );
        registry.register(
            "plugin_fuel",
            "Fuel consumed by a plugin call",
            plugin_fuel.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts, by sink and outcome (delivered, retry, dead)",
            deliveries.clone(),
        );
        let delivery_attempts = Family::<SinkLabel, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Delivery attempts made, by sink",
            delivery_attempts.clone(),
        );
        let delivery_duration = Family::<SinkLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "delivery_duration_seconds",
            "Time a sink took to answer one batch",
            delivery_duration.clone(),
        );
        let plugin_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "plugin_reloads",
            "Plugin reloads, by plugin and outcome (swapped, failed)",
            plugin_reloads.clone(),
        );
        let config_reloads = Family::<ConfigReloadLabel, Counter>::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by outcome (applied, refused)",
            config_reloads.clone(),
        );
        let backlog_undispatched = Gauge::default();
        registry.register(
            "backlog_undispatched_events",
            "Events stored and not yet dispatched",
            backlog_undispatched.clone(),
        );
        let backlog_pending = Gauge::default();
        registry.register(
            "backlog_pending_deliveries",
            "Deliveries not yet sent",
            backlog_pending.clone(),
        );
        let backlog_dead = Gauge::default();
        registry.register(
            "backlog_dead_deliveries",
            "Dead-lettered deliveries",
            backlog_dead.clone(),
        );
        let dispatch_overflow = Counter::default();
        registry.register(
            "dispatch_handoff_overflow",
            "Events the full dispatch queue left to the sweeper",
            dispatch_overflow.clone(),
        );
        Self {
            registry,
            requests,
            ack_latency,
            verification_failures,
            events,
            plugin_duration,
            plugin_fuel,
            deliveries,
            delivery_attempts,
            delivery_duration,
            plugin_reloads,
            config_reloads,
            backlog_undispatched,
            backlog_pending,
            backlog_dead,
            dispatch_overflow,
        }
    }

    /// One sink's delivery series, looked up once: its worker records
    /// every attempt without hashing labels or allocating.
    pub fn sink(&self, sink: &str) -> SinkMetrics {
        let label = SinkLabel { sink: sink.into() };
        let outcome = |outcome: &str| {
            self.deliveries
                .get_or_create(&DeliveryLabels {
                    sink: sink.into(),
                    outcome: outcome.into(),
                })
                .clone()
        };
        SinkMetrics {
            delivered: outcome("delivered"),
            retried: outcome("retry"),
            dead: outcome("dead"),
            attempts: self.delivery_attempts.get_or_create(&label).clone(),
            duration: self.delivery_duration.get_or_create(&label).clone(),
        }
    }

    /// Records one answered webhook request.
    pub fn request(&self, source: &str, status: u16, code: &str, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                source: source.to_string(),
                status,
                code: code.to_string(),
            })
            .inc();
        self.ack_latency
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    /// Copies the values other parts keep (backlog, reloads, overflow) in,
    /// then encodes every family in the OpenMetrics text format.
    pub fn encode(&self, snapshot: &Snapshot<'_>) -> String {
        if let Some(backlog) = &snapshot.backlog {
            self.backlog_undispatched
                .set(i64::try_from(backlog.undispatched).unwrap_or(i64::MAX));
            self.backlog_pending
                .set(i64::try_from(backlog.pending_deliveries).unwrap_or(i64::MAX));
            self.backlog_dead
                .set(i64::try_from(backlog.dead_deliveries).unwrap_or(i64::MAX));
        }
        if let Some(plugins) = snapshot.plugins {
            for (name, slot) in plugins.iter() {
                for (outcome, count) in [
                    ("swapped", &slot.reloads),
                    ("failed", &slot.reload_failures),
                ] {
                    self.plugin_reloads
                        .get_or_create(&ReloadLabels {
                            plugin: name.clone(),
                            outcome: outcome.into(),
                        })
                        .inner()
                        .store(count.load(Ordering::Relaxed), Ordering::Relaxed);
                }
            }
        }
        self.dispatch_overflow
            .inner()
            .store(snapshot.dispatch_overflow, Ordering::Relaxed);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One sink's series of [`Metrics`] (handles sharing the registered values).
#[derive(Debug, Clone)]
pub struct SinkMetrics {
    /// `deliveries{outcome="delivered"}`.
    pub delivered: Counter,
    /// `deliveries{outcome="retry"}`.
    pub retried: Counter,
    /// `deliveries{outcome="dead"}`.
    pub dead: Counter,
    /// `delivery_attempts`.
    pub attempts: Counter,
    /// `delivery_duration_seconds`.
    pub duration: Histogram,
}

/// What a scrape copies in besides the recorded families.
#[derive(Debug, Default)]
pub struct Snapshot<'a> {
    /// The store's backlog (`None` when it could not be read).
    pub backlog: Option<crate::store::Backlog>,
    /// The loaded plugins.
    pub plugins: Option<&'a Plugins>,
    /// Events the dispatch hand-off queue overflowed so far.
    pub dispatch_overflow: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_appear_in_the_text_format() {
        let metrics = Metrics::new();
        metrics.request("github", 200, "ok", Duration::from_millis(3));
        metrics.request("github", 401, "invalid_signature", Duration::from_millis(1));
        let text = metrics.encode(&Snapshot {
            backlog: Some(crate::store::Backlog {
                undispatched: 4,
                pending_deliveries: 5,
                dead_deliveries: 6,
            }),
            plugins: None,
            dispatch_overflow: 7,
        });
        assert!(
            text.contains(r#"hookyard_requests_total{source="github",status="200",code="ok"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"hookyard_ack_latency_seconds_count{source="github"} 2"#));
        assert!(text.contains("hookyard_backlog_pending_deliveries 5"));
        assert!(text.contains("hookyard_backlog_dead_deliveries 6"));
        assert!(text.contains("hookyard_dispatch_handoff_overflow_total 7"));
        assert!(text.ends_with("# EOF\n"));
    }
}
