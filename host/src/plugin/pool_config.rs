//! The engine's configuration: the pooling allocator sized from
//! [`RuntimeOptions`], and the knobs that make a fresh instance cheap.
//!
//! # Sizing
//!
//! The pool reserves address space up front and hands out slots per
//! instance, so what a runtime can hold is fixed when it starts:
//!
//! - **Linear memories**: `max_instances × max_memories_per_component`
//!   slots of `max_memory_bytes` plus a guard region each. This is the
//!   runtime's virtual size (VSZ); it is address space, not memory: a slot
//!   costs RSS only for the pages an instance touched (and, once freed, up
//!   to [`MEMORY_KEEP_RESIDENT`] of them kept for the next instance). With
//!   the defaults (32 × 2 slots of 64 MiB + 2 MiB) that is 4.1 GiB of VSZ
//!   (plugin-bench measures 4.5 GiB for a whole default runtime, and about
//!   20 MiB of RSS with two small plugins loaded).
//! - **Tables**: `max_instances × max_tables_per_component` slots of
//!   `max_table_elements` pointers (800 KiB each by default; 100 MiB in all).
//! - **Instances**: counters only, their metadata is allocated on demand.
//! - **Fiber stacks**: none, calls are synchronous.
//!
//! A slot is held by every call in flight *and* by every idle instance of a
//! warm pool, so `max_instances` should be at least the number of calls the
//! dispatcher runs at once plus the sum of all warm pool sizes. When the
//! pool is full a call fails with [`RunError::PoolExhausted`] (retryable);
//! it never waits or panics.
//!
//! Components built by componentize-py or componentize-js contain several
//! core instances (CPython's shared libraries, the WASI adapter, the
//! canonical-ABI shims), usually one or two memories and two to four tables
//! (each shim module defines a small one). The per-component limits below
//! allow that; a component over a limit, or whose initial memory is larger
//! than `max_memory_bytes`, fails to *load* with wasmtime's message naming
//! the limit, never at call time.
//!
//! [`RunError::PoolExhausted`]: super::RunError::PoolExhausted

use std::path::PathBuf;

use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the plugin runtime is sized (`Runtime::with_options`).
///
/// Build it with struct update syntax so that new knobs keep their
/// defaults: `RuntimeOptions { max_instances: 64, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Where compiled plugins are kept across restarts (`<sha256 of the
    /// wasm>-<engine hash>.cwasm`); `None` compiles on every load. The
    /// directory must belong to the router alone (see `cache.rs`).
    pub cache_dir: Option<PathBuf>,
    /// The largest memory cap of any plugin (`memory_mb`), in bytes: the
    /// size of a linear memory slot. A call's `Limits::memory_bytes` above
    /// it is clamped to it.
    pub max_memory_bytes: usize,
    /// Component instances the pool holds at once: calls in flight plus
    /// idle warm instances (0 is taken as 1).
    pub max_instances: u32,
    /// Core instances one component may contain (CPython: a dozen or more).
    pub max_core_instances_per_component: u32,
    /// Linear memories one component may contain; also the number of memory
    /// slots reserved per instance.
    pub max_memories_per_component: u32,
    /// Tables one component may contain; also the number of table slots
    /// reserved per instance.
    pub max_tables_per_component: u32,
    /// Largest table, in elements (CPython's and SpiderMonkey's function
    /// tables run to tens of thousands).
    pub max_table_elements: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_memory_bytes: 64 << 20,
            // Calls are CPU-bound: a 2-8 core machine runs at most a few
            // dozen at once, with room left for a few warm pools.
            max_instances: 32,
            max_core_instances_per_component: 64,
            max_memories_per_component: 2,
            max_tables_per_component: 4,
            max_table_elements: MAX_TABLE_ELEMENTS,
        }
    }
}

/// Largest table a plugin may grow (also the default slot size).
pub(super) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Unmapped bytes after each memory slot. Memories are reserved at their
/// cap, not at 4 GiB, so compiled code bounds-checks each access against a
/// constant; the guard lets accesses with a small static offset share one
/// check. 2 MiB keeps the VSZ per slot close to the cap. (Measured with
/// plugin-bench: 4 GiB reservations make a warm call ~7% faster and the
/// runtime's VSZ 60 times larger.)
const MEMORY_GUARD: u64 = 2 << 20;

/// Dirty pages of a freed memory slot restored in place and kept resident
/// for the next instance, rather than returned to the kernel and faulted
/// in again: with Linux's `PAGEMAP_SCAN` (6.7+), wasmtime finds the pages
/// an instance wrote and copies back only those. This halves a fresh call
/// of the example Rust plugin (29 µs to 14 µs in plugin-bench). Without
/// it, wasmtime would `memset` this many bytes from the start of memory on
/// every reuse, dirty or not (57 µs), so then nothing is kept.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// Same as [`MEMORY_KEEP_RESIDENT`], for tables; small enough to `memset`
/// even without `PAGEMAP_SCAN`, and it saves an `madvise` per table (a
/// component has several small ones): 14 µs instead of 29 for the same
/// fresh call with `PAGEMAP_SCAN`, 30 instead of 39 without.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Metadata cap per instance. Allocated on demand (not reserved), so it
/// is only a sanity limit; CPython's function references alone take over
/// 1 MiB, wasmtime's default.
const MAX_INSTANCE_METADATA: usize = 16 << 20;

/// The wasmtime configuration for `options`: the component model, fuel,
/// epoch interruption and the pooling allocator.
pub(super) fn engine_config(options: &RuntimeOptions) -> Config {
    let instances = options.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(options.max_core_instances_per_component))
        .total_memories(instances.saturating_mul(options.max_memories_per_component))
        .total_tables(instances.saturating_mul(options.max_tables_per_component))
        .max_core_instances_per_component(options.max_core_instances_per_component)
        .max_memories_per_component(options.max_memories_per_component)
        .max_tables_per_component(options.max_tables_per_component)
        // A core module may use several tables (reference types); the
        // per-component limit is the real bound.
        .max_tables_per_module(options.max_tables_per_component)
        .max_memory_size(options.max_memory_bytes)
        .table_elements(options.max_table_elements)
        .max_component_instance_size(MAX_INSTANCE_METADATA)
        .max_core_instance_size(MAX_INSTANCE_METADATA)
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(if pagemap_scan_likely() {
            MEMORY_KEEP_RESIDENT
        } else {
            0
        })
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        // Calls are synchronous: no fiber stacks (the default reserves 1,000
        // of 2 MiB, doubling the runtime's VSZ, with a guard page mapping each).
        .total_stacks(0)
        // Never more warm slots than the pool has: reuse a slot of the same
        // plugin (its memory image is already mapped) rather than a cold one.
        .max_unused_warm_slots(instances);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_reservation(u64::try_from(options.max_memory_bytes).unwrap_or(u64::MAX))
        .memory_guard_size(MEMORY_GUARD)
        // Map the data segments copy-on-write instead of copying them into
        // every new instance (the default; stated because it is the main
        // reason a fresh instance is cheap).
        .memory_init_cow(true);
    config
}

/// Whether wasmtime will find the `PAGEMAP_SCAN` ioctl (Linux 6.7+, with
/// `/proc/self/pagemap` readable). Wasmtime probes for it itself but does
/// not say; the kernel version is a safe enough guess, as a wrong one only
/// costs speed.
fn pagemap_scan_likely() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_at_least(&release, (6, 7)) && std::fs::File::open("/proc/self/pagemap").is_ok()
}

/// Whether a kernel release string (`6.18.44-fc`) is at least `version`.
fn kernel_at_least(release: &str, version: (u32, u32)) -> bool {
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= version,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare_by_major_then_minor() {
        assert!(kernel_at_least("6.7.0", (6, 7)));
        assert!(kernel_at_least("6.18.44-fc-v657\n", (6, 7)));
        assert!(kernel_at_least("7.0", (6, 7)));
        assert!(!kernel_at_least("6.6.30-generic", (6, 7)));
        assert!(!kernel_at_least("5.15.0", (6, 7)));
        assert!(!kernel_at_least("", (6, 7)));
    }

    #[test]
    fn defaults_fit_a_small_machine() {
        let options = RuntimeOptions::default();
        let slots = u64::from(options.max_instances * options.max_memories_per_component);
        let reserved = slots * (u64::try_from(options.max_memory_bytes).unwrap() + MEMORY_GUARD);
        assert!(reserved < 5 << 30, "{reserved} bytes of address space");
        // The default per-call cap fits a slot.
        assert!(super::super::Limits::default().memory_bytes <= options.max_memory_bytes);
    }
}
