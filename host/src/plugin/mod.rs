//! Plugins: WebAssembly components of the `wit/` world `plugin`, run by
//! wasmtime with a fuel budget, a wall-clock deadline and a memory cap.
//!
//! Issue #4 so far: one engine with the pooling allocator
//! (`pool_config.rs`), each plugin version compiled once (or mapped from
//! the on-disk cache, `cache.rs`) and pre-instantiated, then per event a
//! fresh instance from the pool or, opted in per plugin, a reused one from
//! its warm pool (`warm_pool.rs`); `hookyard plugin run` on top
//! (`offline.rs`). Dispatch from the store and hot reload live elsewhere.

mod bindings;
mod cache;
mod host_state;
pub mod offline;
mod output;
mod pool_config;
mod runtime;
mod warm_pool;
mod wasi;

pub use output::PluginOutput;
pub use pool_config::RuntimeOptions;
pub use runtime::{
    Call, Limits, LoadedPlugin, PluginAction, PluginDelivery, PluginEvent, RunError, Runtime,
};
