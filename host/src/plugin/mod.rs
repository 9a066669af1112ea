//! Plugins: WebAssembly components of the `wit/` world `plugin`, run by
//! wasmtime with a fuel budget, a wall-clock deadline and a memory cap.
//!
//! [`Runtime`] compiles and calls components; [`registry::Plugins`] holds
//! the configured plugins and the version each one serves; `offline` is
//! `hookyard plugin run`. Dispatch (`crate::dispatch`) calls them.

mod bindings;
pub mod offline;
pub mod registry;
pub mod reload;
mod runtime;
mod wasi;

pub use runtime::version_of;
pub use runtime::{
    Call, Limits, LoadedPlugin, PluginAction, PluginDelivery, PluginEvent, PluginOutput, RunError,
    Runtime,
};
