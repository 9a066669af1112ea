//! WASI for plugins, with nothing granted. Rust's std on `wasm32-wasip2`
//! (and CPython, SpiderMonkey) import WASI interfaces even when a plugin
//! never uses them, so they are linked, but: no preopened directories, no
//! environment or arguments, no sockets or name lookups, stdin empty,
//! stdout and stderr discarded (plugins log through `log`), both clocks
//! frozen at the event's receive time, and randomness derived from the
//! event id. The same event therefore always gets the same answer.

use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// A wall clock stopped at one instant.
struct FrozenWall(Duration);

impl HostWallClock for FrozenWall {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// A monotonic clock that never moves.
struct FrozenMonotonic;

impl HostMonotonicClock for FrozenMonotonic {
    fn resolution(&self) -> u64 {
        1_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context of one call for the event `event_id` received at
/// `received_at_ms`.
pub(super) fn context(event_id: &str, received_at_ms: u64) -> WasiCtx {
    let seed = Sha256::digest(event_id.as_bytes()).to_vec();
    WasiCtx::builder()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenWall(Duration::from_millis(received_at_ms)))
        .monotonic_clock(FrozenMonotonic)
        .secure_random(Deterministic::new(seed.clone()))
        .insecure_random(Deterministic::new(seed))
        .insecure_random_seed(0)
        .build()
}
