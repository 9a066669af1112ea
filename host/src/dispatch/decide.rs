//! What a dispatch writes, decided from what happened: a plugin call's
//! result (checked against the sinks the plugin was granted), a source's
//! plain sink list, or nothing to do. Pure, so every rule is unit-tested.

use std::time::Duration;

use serde_json::json;

use super::job::DispatchJob;
use crate::plugin::{Call, PluginAction, RunError};
use crate::store::{DispatchOutcome, EventOutcome, NewDelivery, NewPluginRun};

/// Plugin failures that may pass are retried this many times in all
/// (the first attempt included), then the event is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 8;

/// The wait before retry `n` (1-based) is `FIRST_RETRY * 2^(n-1)`, at most `MAX_RETRY`.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The outcome of calling plugin `plugin` (version `version`, granted
/// `granted`) on `job`.
pub fn after_plugin(
    job: &DispatchJob,
    plugin: &str,
    version: &str,
    granted: &[String],
    call: Call,
    now_ms: i64,
) -> DispatchOutcome {
    let short = short_version(version);
    let (outcome, deliveries, summary) = match call.result {
        Ok(actions) => {
            let summary = summarise(&actions);
            match deliveries_of(actions, granted) {
                Ok(deliveries) if deliveries.is_empty() => (
                    EventOutcome::Dropped(drop_reasons(&summary)),
                    Vec::new(),
                    summary,
                ),
                Ok(deliveries) => (EventOutcome::Processed, deliveries, summary),
                Err(sink) => {
                    let reason =
                        format!(
                        "plugin {plugin} ({short}) named sink `{sink}`, which it is not granted \
                         (granted: {}); nothing of this event is delivered",
                        if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
                    );
                    (EventOutcome::Failed(reason), Vec::new(), summary)
                }
            }
        }
        Err(error) => {
            let reason = format!("plugin {plugin} ({short}): {error}");
            (failure(job, &error, reason, now_ms), Vec::new(), json!([]))
        }
    };
    DispatchOutcome {
        event_id: job.id.clone(),
        source: job.source.clone(),
        event_at_ms: job.received_at_ms,
        outcome,
        run: Some(NewPluginRun {
            id: format!("run_{}", ulid::Ulid::new()),
            plugin: plugin.to_string(),
            version: version.to_string(),
            fuel_used: call.fuel_used,
            duration_us: u64::try_from(call.elapsed.as_micros()).unwrap_or(u64::MAX),
            actions: summary.to_string(),
            ran_at_ms: now_ms,
        }),
        deliveries,
        at_ms: now_ms,
    }
}

/// The raw event, as received, to each of a source's `sinks`.
pub fn raw_to_sinks(job: &DispatchJob, sinks: &[String], now_ms: i64) -> DispatchOutcome {
    let headers: Vec<(String, String)> = job
        .content_type()
        .map(|ct| vec![("content-type".to_string(), ct.to_string())])
        .unwrap_or_default();
    let deliveries = sinks
        .iter()
        .enumerate()
        .map(|(seq, sink)| NewDelivery {
            id: format!("dlv_{}", ulid::Ulid::new()),
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            sink: sink.clone(),
            payload: job.body.to_vec(),
            headers: headers.clone(),
            subject_suffix: None,
            key: Some(job.id.to_string()),
            leased_until_ms: None,
        })
        .collect();
    DispatchOutcome {
        event_id: job.id.clone(),
        source: job.source.clone(),
        event_at_ms: job.received_at_ms,
        outcome: EventOutcome::Processed,
        run: None,
        deliveries,
        at_ms: now_ms,
    }
}

/// An event with nowhere to go: stored only (and replayable later).
pub fn store_only(job: &DispatchJob, now_ms: i64) -> DispatchOutcome {
    DispatchOutcome {
        event_id: job.id.clone(),
        source: job.source.clone(),
        event_at_ms: job.received_at_ms,
        outcome: EventOutcome::Processed,
        run: None,
        deliveries: Vec::new(),
        at_ms: now_ms,
    }
}

/// An event whose source or plugin is no longer configured: dead-lettered
/// with the reason, so it can be replayed once the config has it again.
pub fn unroutable(job: &DispatchJob, reason: String, now_ms: i64) -> DispatchOutcome {
    DispatchOutcome {
        event_id: job.id.clone(),
        source: job.source.clone(),
        event_at_ms: job.received_at_ms,
        outcome: EventOutcome::Failed(reason),
        run: None,
        deliveries: Vec::new(),
        at_ms: now_ms,
    }
}

/// Retry what may pass (the plugin's own `internal` error, its deadline on
/// a busy machine, a full instance pool), dead-letter what would fail the
/// same way again.
fn failure(job: &DispatchJob, error: &RunError, reason: String, now_ms: i64) -> EventOutcome {
    // A full instance pool passes as soon as other calls finish.
    let transient = matches!(
        error,
        RunError::Internal(_) | RunError::Deadline { .. } | RunError::PoolExhausted(_)
    );
    let attempt = job.attempts + 1;
    if !transient {
        return EventOutcome::Failed(reason);
    }
    if attempt >= MAX_ATTEMPTS {
        return EventOutcome::Failed(format!("{reason} (gave up after {attempt} attempts)"));
    }
    let wait = FIRST_RETRY
        .saturating_mul(1 << (attempt - 1).min(20))
        .min(MAX_RETRY);
    EventOutcome::Retry {
        at_ms: now_ms.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        reason: format!("{reason} (attempt {attempt} of {MAX_ATTEMPTS})"),
    }
}

/// The deliveries the actions ask for, or the first sink not granted.
fn deliveries_of(
    actions: Vec<PluginAction>,
    granted: &[String],
) -> Result<Vec<NewDelivery>, String> {
    let mut deliveries = Vec::new();
    for action in actions {
        let PluginAction::Deliver(d) = action else {
            continue;
        };
        if !granted.contains(&d.sink) {
            return Err(d.sink);
        }
        deliveries.push(NewDelivery {
            id: format!("dlv_{}", ulid::Ulid::new()),
            seq: u32::try_from(deliveries.len()).unwrap_or(u32::MAX),
            sink: d.sink,
            payload: d.payload,
            headers: d.headers,
            subject_suffix: d.subject_suffix,
            key: d.key,
            leased_until_ms: None,
        });
    }
    Ok(deliveries)
}

/// The run record's `actions`: sinks and sizes, drop reasons; never payloads.
fn summarise(actions: &[PluginAction]) -> serde_json::Value {
    actions
        .iter()
        .map(|action| match action {
            PluginAction::Deliver(d) => json!({ "deliver": d.sink, "bytes": d.payload.len() }),
            PluginAction::Drop(reason) => json!({ "drop": reason }),
        })
        .collect()
}

fn drop_reasons(summary: &serde_json::Value) -> String {
    let reasons: Vec<&str> = summary
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("drop").and_then(|r| r.as_str()))
        .collect();
    reasons.join("; ")
}

/// `sha256:` and the first 12 hex digits: enough to tell versions apart in a message.
fn short_version(version: &str) -> &str {
    version.get(..19).unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plugin::PluginDelivery;
    use crate::store::EventId;

    fn job(attempts: u32) -> DispatchJob {
        DispatchJob {
            id: EventId::from_string("evt_1".into()),
            source: "s".into(),
            received_at_ms: 0,
            method: "POST".into(),
            path: "/webhooks/s".into(),
            headers: vec![],
            body: bytes::Bytes::from_static(b"{}"),
            attempts,
        }
    }

    fn deliver(sink: &str) -> PluginAction {
        PluginAction::Deliver(PluginDelivery {
            sink: sink.into(),
            payload: b"p".to_vec(),
            headers: vec![],
            subject_suffix: None,
            key: Some("k".into()),
        })
    }

    fn call(result: Result<Vec<PluginAction>, RunError>) -> Call {
        Call {
            result,
            fuel_used: 1234,
            elapsed: Duration::from_micros(56),
            warm: false,
        }
    }

    const V: &str = "sha256:0123456789abcdef0123";

    #[test]
    fn granted_deliveries_become_pending_deliveries_with_the_run() {
        let granted = vec!["a".to_string(), "b".to_string()];
        let out = after_plugin(
            &job(0),
            "p",
            V,
            &granted,
            call(Ok(vec![deliver("a"), deliver("b")])),
            9,
        );
        assert_eq!(out.outcome, EventOutcome::Processed);
        let sinks: Vec<_> = out
            .deliveries
            .iter()
            .map(|d| (d.sink.as_str(), d.seq))
            .collect();
        assert_eq!(sinks, [("a", 0), ("b", 1)]);
        let run = out.run.unwrap();
        assert_eq!(
            (run.fuel_used, run.duration_us, run.version.as_str()),
            (1234, 56, V)
        );
        assert_eq!(
            run.actions,
            r#"[{"bytes":1,"deliver":"a"},{"bytes":1,"deliver":"b"}]"#
        );
    }

    #[test]
    fn one_sink_not_granted_fails_the_whole_event_and_delivers_nothing() {
        let granted = vec!["a".to_string()];
        let out = after_plugin(
            &job(0),
            "p",
            V,
            &granted,
            call(Ok(vec![deliver("a"), deliver("evil")])),
            9,
        );
        assert!(out.deliveries.is_empty());
        let EventOutcome::Failed(reason) = out.outcome else {
            panic!("{:?}", out.outcome)
        };
        assert!(
            reason.contains("plugin p (sha256:0123456789ab)"),
            "{reason}"
        );
        assert!(
            reason.contains("`evil`") && reason.contains("granted: a"),
            "{reason}"
        );
    }

    #[test]
    fn only_drops_mean_dropped_with_the_reasons() {
        let out = after_plugin(
            &job(0),
            "p",
            V,
            &[],
            call(Ok(vec![PluginAction::Drop("not ours".into())])),
            9,
        );
        assert_eq!(out.outcome, EventOutcome::Dropped("not ours".into()));
    }

    #[test]
    fn limits_and_refusals_dead_letter_at_once_naming_plugin_and_version() {
        for error in [
            RunError::OutOfFuel { fuel: 10 },
            RunError::Memory { memory_mb: 1 },
            RunError::Trap("boom".into()),
            RunError::Rejected("no".into()),
            RunError::InvalidInput("bad".into()),
            RunError::OutputTooLarge { bytes: 2, limit: 1 },
            RunError::NoAction,
        ] {
            let text = error.to_string();
            let out = after_plugin(&job(0), "p", V, &[], call(Err(error)), 9);
            let EventOutcome::Failed(reason) = out.outcome else {
                panic!("{text}")
            };
            assert_eq!(reason, format!("plugin p (sha256:0123456789ab): {text}"));
            assert_eq!(out.run.unwrap().actions, "[]");
        }
    }

    #[test]
    fn transient_failures_retry_with_growing_waits_then_dead_letter() {
        let out = after_plugin(
            &job(0),
            "p",
            V,
            &[],
            call(Err(RunError::Internal("db down".into()))),
            1_000,
        );
        assert!(
            matches!(out.outcome, EventOutcome::Retry { at_ms: 2_000, .. }),
            "{:?}",
            out.outcome
        );
        let out = after_plugin(
            &job(3),
            "p",
            V,
            &[],
            call(Err(RunError::Deadline { timeout_ms: 5 })),
            1_000,
        );
        assert!(
            matches!(out.outcome, EventOutcome::Retry { at_ms: 9_000, .. }),
            "{:?}",
            out.outcome
        );
        let out = after_plugin(
            &job(MAX_ATTEMPTS - 1),
            "p",
            V,
            &[],
            call(Err(RunError::Internal("x".into()))),
            0,
        );
        assert!(
            matches!(&out.outcome, EventOutcome::Failed(r) if r.contains("gave up after 8 attempts"))
        );
    }

    #[test]
    fn raw_routes_send_the_body_to_every_sink_keyed_by_event_id() {
        let mut j = job(0);
        j.headers = vec![(
            "content-type".into(),
            crate::store::HeaderValueRepr::Text("application/json".into()),
        )];
        let out = raw_to_sinks(&j, &["x".to_string(), "y".to_string()], 5);
        assert_eq!(out.outcome, EventOutcome::Processed);
        assert!(out.run.is_none());
        for d in &out.deliveries {
            assert_eq!(
                (d.payload.as_slice(), d.key.as_deref()),
                (&b"{}"[..], Some("evt_1"))
            );
            assert_eq!(
                d.headers,
                [("content-type".to_string(), "application/json".to_string())]
            );
        }
    }
}
