//! What a plugin's host functions see during a call: its name and config
//! (the `config` and `log` imports), the memory cap, and the event's WASI
//! context.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::hookyard::router::{config, log, types};
use super::runtime::PluginEvent;

/// Caps memory growth and remembers that it did, so a trap that follows
/// is reported as the memory cap rather than as whatever the guest did next.
pub(super) struct MemoryCap {
    pub(super) max_bytes: usize,
    pub(super) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.exceeded = true;
            // Trap rather than fail the grow: a guest allocator that gets
            // a failed grow aborts anyway, with a less telling trap.
            wasmtime::bail!("memory cap of {} bytes reached", self.max_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The pool caps every table at `RuntimeOptions::max_table_elements`.
        Ok(true)
    }
}

/// What a plugin's host functions see.
pub(super) struct HostState {
    pub(super) plugin: String,
    pub(super) config: Arc<BTreeMap<String, String>>,
    pub(super) memory: MemoryCap,
    pub(super) wasi: EventWasi,
    pub(super) table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.wasi.get(),
            table: &mut self.table,
        }
    }
}

/// The WASI context of the current event (`wasi.rs`), built on the first
/// WASI call: most plugins make none while handling an event, and building
/// one is a good part of a warm call's cost (about 0.8 µs of 5.7). Built
/// later from the same event id and time, it behaves the same.
pub(super) struct EventWasi {
    ctx: Option<WasiCtx>,
    /// Whether `ctx`, if any, was built for the current event.
    current: bool,
    event_id: String,
    received_at: u64,
}

impl EventWasi {
    pub(super) fn new(event: &PluginEvent) -> Self {
        Self {
            ctx: None,
            current: true,
            event_id: event.id.clone(),
            received_at: event.received_at,
        }
    }

    /// Switches to `event`: the next WASI call sees its clocks and seed.
    pub(super) fn reset(&mut self, event: &PluginEvent) {
        self.current = false;
        self.event_id.clone_from(&event.id);
        self.received_at = event.received_at;
    }

    fn get(&mut self) -> &mut WasiCtx {
        if !self.current {
            self.ctx = None;
            self.current = true;
        }
        self.ctx
            .get_or_insert_with(|| super::wasi::context(&self.event_id, self.received_at))
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let plugin = self.plugin.as_str();
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl types::Host for HostState {}
