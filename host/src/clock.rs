//! The wall clock as the store keeps time: unix milliseconds. One function,
//! so dispatch, delivery, retention and the sinks agree on "now".

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds (0 before 1970, `i64::MAX` far in the future).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
