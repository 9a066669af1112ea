//! Plugins: WebAssembly components of the `wit/` world `plugin`, run by
//! wasmtime with a fuel budget, a wall-clock deadline and a memory cap.
//!
//! [`Runtime`] compiles components (the pooling allocator,
//! `pool_config.rs`; the on-disk cache, `cache.rs`) and calls them on a
//! fresh instance or, opted in per plugin, a warm one (`warm_pool.rs`); [`registry::Plugins`] holds
//! the configured plugins and the version each one serves; `offline` is
//! `hookyard plugin run`. Dispatch (`crate::dispatch`) calls them.

mod bindings;
mod cache;
mod host_state;
pub mod offline;
mod output;
mod pool_config;
pub mod registry;
pub mod reload;
mod runtime;
mod warm_pool;
mod wasi;

pub use output::PluginOutput;
pub use pool_config::RuntimeOptions;
pub use runtime::version_of;
pub use runtime::{
    Call, Limits, LoadedPlugin, PluginAction, PluginDelivery, PluginEvent, RunError, Runtime,
};
