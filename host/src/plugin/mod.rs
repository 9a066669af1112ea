//! Plugins: WebAssembly components of the `wit/` world `plugin`, run by
//! wasmtime with a fuel budget, a wall-clock deadline and a memory cap.
//!
//! This is the first slice of issue #4: load a component, run one event
//! through it with a fresh instance, get its actions (`hookyard plugin run`).
//! Dispatch from the store, the pooling allocator, the on-disk cache, the
//! warm pool and hot reload come next.

mod bindings;
pub mod offline;
mod runtime;
mod wasi;

pub use runtime::{
    Call, Limits, LoadedPlugin, PluginAction, PluginDelivery, PluginEvent, PluginOutput, RunError,
    Runtime,
};
