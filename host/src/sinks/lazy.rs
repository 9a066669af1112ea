//! The queue sinks' connection: made on the first send, shared by the
//! sends after it, forgotten when one of them finds it broken, so the next
//! send connects again. A broker that is down is a retried delivery, never
//! a router that refuses to start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::{timeout_at, Instant};

/// One lazily made connection of type `T`.
pub(super) struct LazyConnection<T> {
    /// What it connects to, for messages: `nats nats://host:4222` (the
    /// URL's password masked).
    what: String,
    /// How long a send may wait for it (said when connecting times out).
    within: Duration,
    /// The lock is held while connecting, so concurrent sends share one
    /// connection attempt.
    slot: Mutex<Option<Arc<T>>>,
}

impl<T> LazyConnection<T> {
    /// No connection yet.
    pub(super) fn new(what: String, within: Duration) -> Self {
        Self {
            what,
            within,
            slot: Mutex::new(None),
        }
    }

    /// The current connection while `alive` says it still works, else a
    /// new one from `connect`, which must finish by `deadline`.
    pub(super) async fn get<Fut>(
        &self,
        deadline: Instant,
        alive: impl FnOnce(&T) -> bool,
        connect: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, String>
    where
        Fut: Future<Output = Result<T, String>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some(current) = slot.as_ref() {
            if alive(current) {
                return Ok(current.clone());
            }
            *slot = None;
        }
        let made = match timeout_at(deadline, connect()).await {
            Ok(Ok(made)) => Arc::new(made),
            Ok(Err(error)) => return Err(error),
            Err(_) => {
                return Err(format!(
                    "{}: no connection within {} s",
                    self.what,
                    self.within.as_secs()
                ))
            }
        };
        *slot = Some(made.clone());
        Ok(made)
    }

    /// Forgets `broken` if it is still the current connection (another
    /// send may already have replaced it).
    pub(super) async fn forget(&self, broken: &Arc<T>) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            *slot = None;
        }
    }

    /// Takes the connection out (shutdown), leaving none.
    pub(super) async fn take(&self) -> Option<Arc<T>> {
        self.slot.lock().await.take()
    }
}
