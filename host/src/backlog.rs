//! The undelivered backlog, counted once a second for everyone who asks:
//! ingest refuses new events past `server.max_backlog` (503 with
//! `Retry-After`, so providers retry later instead of the store growing
//! without bound), and `/metrics` reports it without a query per scrape.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::{Backlog, Store};

/// The last count, and whether it is past the limit.
#[derive(Debug)]
pub struct BacklogWatch {
    max: u64,
    over: AtomicBool,
    last: Mutex<Option<Backlog>>,
}

impl BacklogWatch {
    /// A watch for a limit of `max` undelivered events, not over it yet.
    pub fn new(max: u64) -> Self {
        Self {
            max,
            over: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    /// True while the last count was past the limit.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// The last count (`None` before the first, or after a failed one).
    pub fn last(&self) -> Option<Backlog> {
        self.last.lock().ok().and_then(|last| *last)
    }

    /// Records a count.
    pub fn record(&self, backlog: Option<Backlog>) {
        if let Some(b) = &backlog {
            let undelivered = b.undispatched.saturating_add(b.pending_deliveries);
            let over = undelivered > self.max;
            if over != self.over.swap(over, Ordering::AcqRel) {
                if over {
                    tracing::warn!(undelivered, max_backlog = self.max, "Backlog past server.max_backlog; refusing new webhooks with 503 until it drains.");
                } else {
                    tracing::info!(
                        undelivered,
                        max_backlog = self.max,
                        "Backlog under server.max_backlog again; accepting webhooks."
                    );
                }
            }
        }
        if let Ok(mut last) = self.last.lock() {
            *last = backlog;
        }
    }

    /// Counts every `every` until `stop`. A failed count keeps the last
    /// verdict (the store being down shows in ingest's own errors).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        every: Duration,
        stop: CancellationToken,
    ) {
        loop {
            match store.backlog().await {
                Ok(backlog) => self.record(Some(backlog)),
                Err(error) => {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        "Could not count the backlog."
                    );
                    if let Ok(mut last) = self.last.lock() {
                        *last = None;
                    }
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(undispatched: u64, pending: u64) -> Option<Backlog> {
        Some(Backlog {
            undispatched,
            pending_deliveries: pending,
            dead_deliveries: 0,
        })
    }

    #[test]
    fn over_only_past_the_limit_and_back_when_it_drains() {
        let watch = BacklogWatch::new(10);
        assert!(!watch.over());
        watch.record(backlog(4, 6));
        assert!(!watch.over(), "at the limit is not past it");
        watch.record(backlog(5, 6));
        assert!(watch.over());
        watch.record(None);
        assert!(watch.over(), "a failed count keeps the verdict");
        watch.record(backlog(0, 3));
        assert!(!watch.over());
        assert_eq!(watch.last().map(|b| b.pending_deliveries), Some(3));
    }
}
