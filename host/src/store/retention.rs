//! Retention: raw requests (body and headers) are purged before the keys
//! that make replays duplicates, and a background task applies both.
//!
//! The rule: an event received at `t` keeps its body until
//! `t + body_retention`, and its row (id, source, idempotency key) until
//! `t + key_retention >= t + body_retention`. A replay of the same delivery
//! within key retention is a duplicate even if its body is gone; after it,
//! a scheme that signs a timestamp has long refused the replay as outside
//! its window, and a scheme that does not (GitHub, Shopify, GitLab's token,
//! generic hmac, none) would accept it as new, which is why key retention
//! is long by default.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;

/// `[store]` retention settings. `None` keeps forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// How long raw bodies and headers are kept.
    pub bodies: Option<Duration>,
    /// How long rows (id and idempotency key) are kept; never shorter than `bodies`.
    pub keys: Option<Duration>,
    /// How long done deliveries (with their payloads) are kept. Dead ones
    /// wait for an operator and go only with their event.
    pub deliveries: Option<Duration>,
    /// Time between two purges.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            bodies: Some(Duration::from_secs(30 * DAY)),
            keys: Some(Duration::from_secs(365 * DAY)),
            deliveries: Some(Duration::from_secs(30 * DAY)),
            interval: Duration::from_secs(3600),
        }
    }
}

/// Receive-time cutoffs (unix ms) for one purge: bodies of events received
/// before `bodies_before` go, rows received before `rows_before` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// When the purge runs (unix ms), recorded on each purged row.
    pub now_ms: i64,
    /// Purge the raw request of events received before this.
    pub bodies_before_ms: Option<i64>,
    /// Delete events (and so their keys) received before this.
    pub rows_before_ms: Option<i64>,
    /// Delete done deliveries created before this.
    pub deliveries_before_ms: Option<i64>,
}

impl Retention {
    /// The cutoffs at `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> Cutoffs {
        let before = |keep: Option<Duration>| {
            keep.map(|d| now_ms.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        };
        Cutoffs {
            now_ms,
            bodies_before_ms: before(self.bodies),
            rows_before_ms: before(self.keys),
            deliveries_before_ms: before(self.deliveries),
        }
    }
}

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Events whose body and headers were dropped.
    pub bodies: u64,
    /// Events deleted with their keys.
    pub rows: u64,
    /// Done deliveries deleted.
    pub deliveries: u64,
}

/// Rows changed per transaction: short enough that the ingest writer never
/// waits long for the write lock (SQLite) or for row locks (Postgres).
pub(super) const PURGE_CHUNK: i64 = 500;

/// Purges every `retention.interval` (the first right away) until `stop`.
pub async fn run_purges(store: Arc<dyn Store>, retention: Retention, stop: CancellationToken) {
    if retention.bodies.is_none() && retention.keys.is_none() && retention.deliveries.is_none() {
        return;
    }
    loop {
        let now_ms = crate::clock::now_ms();
        // Shutdown does not wait for a long purge: every chunk is its own
        // transaction, so stopping between any two loses nothing.
        let purged = tokio::select! {
            () = stop.cancelled() => return,
            purged = store.purge(retention.cutoffs(now_ms)) => purged,
        };
        match purged {
            Ok(purged) if purged != Purged::default() => {
                tracing::info!(
                    bodies = purged.bodies,
                    rows = purged.rows,
                    deliveries = purged.deliveries,
                    "Retention purge done."
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "Retention purge failed; retrying at the next interval."
            ),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retention.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, test_event, StoreConfig};

    /// The background task purges on its own, right away and then every interval.
    #[tokio::test]
    async fn the_task_purges_by_itself_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: format!("sqlite://{}/events.db", dir.path().display()),
            sqlite_synchronous: Default::default(),
            group_commit: Default::default(),
            retention: Default::default(),
        };
        let store = open(&config).await.unwrap();
        let mut old = test_event("k");
        old.received_at_ms = 0;
        old.id = crate::store::EventId::received_at(0);
        // Dispatched long ago (an undispatched event keeps its body).
        old.dispatch = false;
        let id = store.insert_event(old).await.unwrap().id;
        let retention = Retention {
            bodies: Some(Duration::from_secs(1)),
            keys: None,
            deliveries: None,
            interval: Duration::from_millis(20),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run_purges(store.clone(), retention, stop.clone()));
        let purged = async {
            loop {
                let event = store.get_event(&id).await.unwrap().unwrap();
                if event.body_purged_at_ms.is_some() {
                    return event;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let event = tokio::time::timeout(Duration::from_secs(10), purged)
            .await
            .expect("purged");
        assert!(event.body.is_empty());
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
        store.close().await;
    }

    #[test]
    fn cutoffs_follow_the_retention_and_none_keeps_forever() {
        let day = Duration::from_secs(86_400);
        let retention = Retention {
            bodies: Some(day),
            keys: None,
            deliveries: Some(2 * day),
            interval: day,
        };
        let now = 10 * 86_400_000;
        assert_eq!(
            retention.cutoffs(now),
            Cutoffs {
                now_ms: now,
                bodies_before_ms: Some(9 * 86_400_000),
                rows_before_ms: None,
                deliveries_before_ms: Some(8 * 86_400_000),
            }
        );
        let huge = Retention {
            bodies: Some(Duration::MAX),
            keys: Some(Duration::MAX),
            deliveries: None,
            interval: day,
        };
        assert_eq!(huge.cutoffs(now).bodies_before_ms, Some(now - i64::MAX));
    }
}
