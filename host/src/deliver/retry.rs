//! When to try a failed delivery again: exponential backoff with full
//! jitter (a random wait between zero and the doubling bound, so a sink
//! coming back is not hit by every delivery at the same instant), never
//! sooner than the sink asked (`Retry-After`), and not at all once the
//! round's attempts are spent.

use std::time::Duration;

use crate::config::RetryPolicy;
use crate::sinks::SendOutcome;
use crate::store::{AttemptOutcome, ClaimedDelivery};

/// The stored outcome of one attempt at `delivery`, given what the sink said.
/// `random` is uniform in [0, 1): the jitter's draw.
pub fn decide(
    policy: &RetryPolicy,
    delivery: &ClaimedDelivery,
    sent: SendOutcome,
    now_ms: i64,
    random: f64,
) -> AttemptOutcome {
    match sent {
        SendOutcome::Delivered => AttemptOutcome::Delivered,
        SendOutcome::Permanent { error } => AttemptOutcome::Dead {
            error: format!("{error} (permanent: not retried)"),
        },
        SendOutcome::Retry { error, retry_after } => {
            let attempt = delivery.attempts.saturating_add(1);
            let in_round = attempt.saturating_sub(delivery.round_start);
            if in_round >= policy.attempts {
                return AttemptOutcome::Dead {
                    error: format!("{error} (gave up after {in_round} attempts)"),
                };
            }
            let wait = backoff(policy, in_round, random).max(retry_after.unwrap_or_default());
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            AttemptOutcome::Retry {
                at_ms: now_ms.saturating_add(wait_ms),
                error,
            }
        }
    }
}

/// The wait after the `failures`-th failure of a round (from 1): uniform in
/// [0, min(cap, base * 2^(failures - 1))].
pub fn backoff(policy: &RetryPolicy, failures: u32, random: f64) -> Duration {
    let doublings = failures.saturating_sub(1);
    let bound = if doublings >= 31 {
        policy.cap
    } else {
        policy
            .base
            .saturating_mul(1u32 << doublings)
            .min(policy.cap)
    };
    bound.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventId;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(250),
        }
    }

    fn claimed(attempts: u32, round_start: u32) -> ClaimedDelivery {
        ClaimedDelivery {
            id: "dlv_1".into(),
            event_id: EventId::from_string("evt_1".into()),
            source: "s".into(),
            event_at_ms: 0,
            sink: "k".into(),
            payload: vec![],
            headers: vec![],
            subject_suffix: None,
            msg_key: None,
            attempts,
            round_start,
        }
    }

    fn retry(after: Option<Duration>) -> SendOutcome {
        SendOutcome::Retry {
            error: "HTTP 503".into(),
            retry_after: after,
        }
    }

    #[test]
    fn the_bound_doubles_up_to_the_cap_and_jitter_scales_it() {
        let p = policy();
        assert_eq!(backoff(&p, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(&p, 3, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 1000, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(&p, 2, 0.5), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, 0.0), Duration::ZERO);
    }

    #[test]
    fn failures_retry_until_the_rounds_attempts_are_spent() {
        let p = policy();
        assert_eq!(
            decide(&p, &claimed(0, 0), retry(None), 1_000, 1.0),
            AttemptOutcome::Retry {
                at_ms: 1_100,
                error: "HTTP 503".into()
            }
        );
        assert!(matches!(
            decide(&p, &claimed(2, 0), retry(None), 1_000, 1.0),
            AttemptOutcome::Dead { error } if error == "HTTP 503 (gave up after 3 attempts)"
        ));
        // A dead letter sent again (round from attempt 3) has three more.
        assert!(matches!(
            decide(&p, &claimed(3, 3), retry(None), 1_000, 1.0),
            AttemptOutcome::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_is_honoured_even_past_the_backoff() {
        let p = policy();
        let outcome = decide(
            &p,
            &claimed(0, 0),
            retry(Some(Duration::from_secs(7))),
            1_000,
            0.0,
        );
        assert_eq!(
            outcome,
            AttemptOutcome::Retry {
                at_ms: 8_000,
                error: "HTTP 503".into()
            }
        );
    }

    #[test]
    fn permanent_failures_and_successes_end_at_once() {
        let p = policy();
        let dead = decide(
            &p,
            &claimed(0, 0),
            SendOutcome::Permanent {
                error: "HTTP 400 Bad Request".into(),
            },
            0,
            0.5,
        );
        assert!(matches!(dead, AttemptOutcome::Dead { .. }));
        assert_eq!(
            decide(&p, &claimed(5, 0), SendOutcome::Delivered, 0, 0.5),
            AttemptOutcome::Delivered
        );
    }
}
