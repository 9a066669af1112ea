//! A token bucket for a sink's `rate_per_s`: deliveries started per second,
//! with at most one second's worth banked, so an idle sink does not burst
//! far past its rate when work arrives.

use std::time::{Duration, Instant};

/// Tokens refill continuously at `rate` per second up to `rate` (min 1).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: f64) -> Self {
        let capacity = rate_per_s.max(1.0);
        Self {
            rate: rate_per_s,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Takes up to `wanted` whole tokens now and returns how many; when
    /// none is available, how long until one is.
    pub fn take(&mut self, wanted: usize, now: Instant) -> Result<usize, Duration> {
        self.refill(now);
        if self.tokens < 1.0 {
            return Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate));
        }
        let taken = (self.tokens.floor() as usize).min(wanted);
        self.tokens -= taken as f64;
        Ok(taken)
    }

    /// Gives back tokens taken for work that did not happen (a claim that
    /// found fewer due deliveries than it asked for).
    pub fn refund(&mut self, tokens: usize) {
        self.tokens = (self.tokens + tokens as f64).min(self.capacity);
    }

    /// Takes up to `wanted` tokens, waiting for at least one.
    pub async fn acquire(bucket: &std::sync::Mutex<Self>, wanted: usize) -> usize {
        loop {
            let taken = match bucket.lock() {
                Ok(mut b) => b.take(wanted, Instant::now()),
                // A poisoned bucket only held numbers: do not limit.
                Err(_) => Ok(wanted),
            };
            match taken {
                Ok(n) => return n,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_one_seconds_worth_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0);
        bucket.last = start;
        assert_eq!(bucket.take(100, start), Ok(10));
        let wait = bucket.take(1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(bucket.take(100, start + Duration::from_millis(250)), Ok(2));
        bucket.refund(2);
        assert_eq!(bucket.take(1, start + Duration::from_millis(250)), Ok(1));
    }

    #[test]
    fn slow_rates_still_start_one_at_a_time() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5);
        bucket.last = start;
        assert_eq!(bucket.take(5, start), Ok(1));
        let wait = bucket.take(1, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
    }
}
