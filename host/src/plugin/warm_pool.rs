//! A bounded set of idle instances of one plugin version, reused across
//! calls to skip instantiation (`LoadedPlugin::with_warm_pool`).
//!
//! A call takes an idle instance if there is one (else instantiates a fresh
//! one), and gives it back only if the call succeeded and the pool has room;
//! an instance whose call failed in any way (trap, fuel, deadline, memory,
//! oversized output, or the plugin's own error) is dropped, so a trapped
//! instance is never reused. Before each call the runtime resets the fuel,
//! the deadline, the memory cap, the plugin name and config, and the WASI
//! clocks and randomness (to the new event's receive time and id).
//!
//! The tradeoff, and why the pool is opt-in: a reused instance keeps its
//! linear memory and globals from one event to the next. A plugin that
//! caches anything (a parsed config, a regex, a counter, a seeded random
//! generator, CPython's and SpiderMonkey's interpreter state) sees it again
//! on the next event, so its answer may depend on the events before it, and
//! the same event replayed may be answered differently. Only use it for
//! plugins that keep no state between events, or whose state is a pure
//! cache. Every idle instance also holds a slot of the runtime's pool (see
//! `pool_config.rs`).

use std::sync::{Mutex, PoisonError};

/// At most `capacity` idle items, last in first out (the most recently
/// used instance has the warmest caches).
#[derive(Debug)]
pub(super) struct WarmPool<T> {
    idle: Mutex<Vec<T>>,
    capacity: usize,
}

impl<T> WarmPool<T> {
    /// An empty pool that keeps up to `capacity` idle items.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
        }
    }

    /// An idle item, if any.
    pub(super) fn take(&self) -> Option<T> {
        self.lock().pop()
    }

    /// Keeps `item` for a later call; if the pool is full, hands it back so
    /// the caller drops it outside the lock (dropping an instance returns
    /// its memory to the allocator, which is not free).
    pub(super) fn put(&self, item: T) -> Option<T> {
        let mut idle = self.lock();
        if idle.len() < self.capacity {
            idle.push(item);
            None
        } else {
            Some(item)
        }
    }

    /// How many items are idle now.
    pub(super) fn idle(&self) -> usize {
        self.lock().len()
    }

    /// The configured bound.
    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // The lock is held only to push or pop; a panic cannot leave the
        // vector half-changed, so a poisoned lock is still consistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_and_reuses_the_latest() {
        let pool = WarmPool::new(2);
        assert_eq!(pool.take(), None::<u32>);
        assert_eq!(pool.put(1), None);
        assert_eq!(pool.put(2), None);
        assert_eq!(pool.put(3), Some(3), "full: handed back to be dropped");
        assert_eq!(pool.idle(), 2);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), None);
    }
}
