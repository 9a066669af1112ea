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
//!   to [`MEMORY_KEEP_RESIDENT`] kept for the next instance). With the
//!   defaults (32 × 2 slots of 64 MiB + 2 MiB) that is 4.1 GiB of VSZ.
//! - **Tables**: `max_instances × max_tables_per_component` slots of
//!   `max_table_elements` pointers (800 KiB each by default; 100 MiB in all).
//! - **Instances**: counters only, their metadata is allocated on demand.
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

use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

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
    /// idle warm instances.
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
/// check. 2 MiB keeps the VSZ per slot close to the cap.
const MEMORY_GUARD: u64 = 2 << 20;

/// Bytes of a freed memory slot reset with `memset` and kept resident
/// rather than returned to the kernel with `madvise`: the next instance of
/// the same plugin then takes no page faults for its stack, globals and
/// small heap (a Rust plugin touches well under 1 MiB per event).
pub(super) const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// Same as [`MEMORY_KEEP_RESIDENT`], for tables.
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
        .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT)
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

#[cfg(test)]
mod tests {
    use super::*;

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
