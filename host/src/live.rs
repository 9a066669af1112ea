//! A value the running router reads many times and a configuration reload
//! replaces whole: readers take a snapshot (`Arc`) and keep it for the
//! request or event they are handling, so a reload never changes a value
//! under someone half-way through using it.

use std::sync::{Arc, RwLock};

/// The current value; [`Live::get`] is a read lock and an `Arc` clone.
#[derive(Debug)]
pub struct Live<T> {
    current: RwLock<Arc<T>>,
}

impl<T> Live<T> {
    /// A cell holding `value`.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// A cell holding `value`, already shared.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self {
            current: RwLock::new(value),
        }
    }

    /// The value now; the caller keeps it as long as it needs one value.
    pub fn get(&self) -> Arc<T> {
        // A poisoned lock still holds a valid Arc: a panic cannot tear it.
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Makes `next` the value; returns the one it replaced.
    pub fn set(&self, next: Arc<T>) -> Arc<T> {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *guard, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_taken_before_a_set_keeps_the_old_value() {
        let live = Live::new(1);
        let before = live.get();
        let replaced = live.set(Arc::new(2));
        assert_eq!((*before, *replaced, *live.get()), (1, 1, 2));
    }
}
