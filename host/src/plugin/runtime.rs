//! One engine for every plugin; a fresh store and instance per event, with
//! fuel, an epoch deadline and a memory cap; the actions as plain data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::hookyard::router::{config, log, types};
use super::bindings::{Plugin, PluginPre};

/// Per-call limits (`[plugins.NAME]` `fuel`, `timeout_ms`, `memory_mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instruction budget (deterministic).
    pub fuel: u64,
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Most bytes of actions (payloads, headers, sink names) one call may return.
    pub max_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            timeout: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            max_output_bytes: 1 << 20,
        }
    }
}

/// How often the epoch advances: the deadline's resolution.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The engine and the linker every plugin shares. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// A compiled, linked plugin version.
#[derive(Clone)]
pub struct LoadedPlugin {
    pre: PluginPre<HostState>,
    /// `sha256:<hex>` of the wasm bytes: the version recorded with each run.
    pub version: String,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("version", &self.version)
            .finish()
    }
}

/// The event as a plugin receives it: the WIT record itself (its fields
/// are documented in `wit/router.wit`), so a call passes it without a copy.
pub type PluginEvent = types::Event;

/// An action as the plugin returned it (`wit/router.wit`, `action`).
pub type PluginAction = types::Action;

/// A delivery as the plugin returned it (`wit/router.wit`, `delivery`).
pub type PluginDelivery = types::Delivery;

/// What a run produced, as `hookyard plugin run` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum PluginOutput {
    /// Deliver to a sink.
    Deliver {
        /// Sink name.
        sink: String,
        /// Payload, as text when UTF-8 (else `payload_base64`).
        #[serde(skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// Payload bytes that are not UTF-8.
        #[serde(skip_serializing_if = "Option::is_none")]
        payload_base64: Option<String>,
        /// Headers.
        headers: Vec<(String, String)>,
        /// Subject or routing-key suffix.
        #[serde(skip_serializing_if = "Option::is_none")]
        subject_suffix: Option<String>,
        /// Key.
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Discard, with the reason.
    Drop {
        /// Why.
        reason: String,
    },
}

/// Why a run produced no actions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// The plugin refused the event by policy (dead-letter).
    #[error("plugin rejected the event: {0}")]
    Rejected(String),
    /// The plugin could not handle the event as it is (dead-letter).
    #[error("plugin found the event invalid: {0}")]
    InvalidInput(String),
    /// The plugin failed in a way that may pass (retry).
    #[error("plugin failed: {0}")]
    Internal(String),
    /// The plugin returned no action (a drop must be explicit).
    #[error("plugin returned no action; return a drop to discard an event")]
    NoAction,
    /// The instruction budget ran out.
    #[error("plugin ran out of fuel ({fuel} units)")]
    OutOfFuel {
        /// The budget.
        fuel: u64,
    },
    /// The wall-clock budget ran out.
    #[error("plugin exceeded its {timeout_ms} ms deadline")]
    Deadline {
        /// The budget.
        timeout_ms: u64,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin exceeded its memory cap of {memory_mb} MiB")]
    Memory {
        /// The cap.
        memory_mb: usize,
    },
    /// The actions returned are larger than allowed.
    #[error("plugin returned {bytes} bytes of actions, over the limit of {limit}")]
    OutputTooLarge {
        /// Bytes returned.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The plugin trapped (a panic, an out-of-bounds access, ...).
    #[error("plugin trapped: {0}")]
    Trap(String),
}

/// Caps memory growth and remembers that it did, so a trap that follows
/// is reported as the memory cap rather than as whatever the guest did next.
struct MemoryCap {
    max_bytes: usize,
    exceeded: bool,
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
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What a plugin's host functions see.
struct HostState {
    plugin: String,
    config: Arc<BTreeMap<String, String>>,
    memory: MemoryCap,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
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

impl Runtime {
    /// An engine with fuel and epoch interruption, and a thread that
    /// advances the epoch every few milliseconds for as long as the runtime lives.
    pub fn new() -> anyhow::Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)?;
        // Capability-free WASI (see `wasi.rs`): std's imports link, grant nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("hookyard-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
        })
    }

    /// Compiles and links a component; fails if it is not a component of
    /// the `plugin` world or imports anything the host does not give.
    pub fn load(&self, wasm: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let version = version_of(wasm);
        let component = Component::new(&self.engine, wasm)?;
        let pre = PluginPre::new(self.linker.instantiate_pre(&component)?)?;
        Ok(LoadedPlugin { pre, version })
    }

    /// Runs `event` through a fresh instance of `plugin` and returns its
    /// actions as printable data (`hookyard plugin run`, tests).
    pub fn run(
        &self,
        plugin_name: &str,
        plugin: &LoadedPlugin,
        config: &BTreeMap<String, String>,
        limits: Limits,
        event: &PluginEvent,
    ) -> Result<Vec<PluginOutput>, RunError> {
        let config = Arc::new(config.clone());
        let call = self.call(plugin_name, plugin, &config, limits, event);
        call.result
            .map(|actions| actions.into_iter().map(output).collect())
    }

    /// Runs `event` through a fresh instance of `plugin`: the actions as the
    /// plugin returned them (checked against `limits`), with what the call cost.
    pub fn call(
        &self,
        plugin_name: &str,
        plugin: &LoadedPlugin,
        config: &Arc<BTreeMap<String, String>>,
        limits: Limits,
        event: &PluginEvent,
    ) -> Call {
        let started = Instant::now();
        let state = HostState {
            plugin: plugin_name.to_string(),
            config: Arc::clone(config),
            memory: MemoryCap {
                max_bytes: limits.memory_bytes,
                exceeded: false,
            },
            wasi: super::wasi::context(&event.id, event.received_at),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        let result = call_in(&mut store, plugin, limits, event, started);
        let fuel_used = limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(limits.fuel));
        Call {
            result,
            fuel_used,
            elapsed: started.elapsed(),
        }
    }
}

/// One call's outcome and cost.
#[derive(Debug)]
pub struct Call {
    /// The actions, or why there are none.
    pub result: Result<Vec<PluginAction>, RunError>,
    /// Fuel the call consumed (instantiation included).
    pub fuel_used: u64,
    /// Wall-clock time of the call (instantiation included).
    pub elapsed: Duration,
}

/// Instantiates `plugin` in `store` and calls its handler under `limits`.
fn call_in(
    store: &mut Store<HostState>,
    plugin: &LoadedPlugin,
    limits: Limits,
    event: &PluginEvent,
    started: Instant,
) -> Result<Vec<PluginAction>, RunError> {
    store
        .set_fuel(limits.fuel)
        .map_err(|e| RunError::Trap(e.to_string()))?;
    let ticks = limits
        .timeout
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        .max(1);
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    let trap = |error: wasmtime::Error, store: &Store<HostState>| {
        if store.data().memory.exceeded {
            return RunError::Memory {
                memory_mb: limits.memory_bytes >> 20,
            };
        }
        if store.get_fuel().is_ok_and(|left| left == 0) {
            return RunError::OutOfFuel { fuel: limits.fuel };
        }
        if matches!(
            error.downcast_ref::<wasmtime::Trap>(),
            Some(wasmtime::Trap::Interrupt)
        ) || started.elapsed() >= limits.timeout
        {
            return RunError::Deadline {
                timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            };
        }
        RunError::Trap(format!("{error:#}"))
    };
    let instance = match plugin.pre.instantiate(&mut *store) {
        Ok(instance) => instance,
        Err(error) => return Err(trap(error, store)),
    };
    let result = instance
        .hookyard_router_handler()
        .call_handle(&mut *store, event);
    let actions = match result {
        Ok(Ok(actions)) => actions,
        Ok(Err(types::PluginError::Rejected(why))) => return Err(RunError::Rejected(why)),
        Ok(Err(types::PluginError::InvalidInput(why))) => return Err(RunError::InvalidInput(why)),
        Ok(Err(types::PluginError::Internal(why))) => return Err(RunError::Internal(why)),
        Err(error) => return Err(trap(error, store)),
    };
    if actions.is_empty() {
        return Err(RunError::NoAction);
    }
    let bytes: usize = actions.iter().map(action_bytes).sum();
    if bytes > limits.max_output_bytes {
        return Err(RunError::OutputTooLarge {
            bytes,
            limit: limits.max_output_bytes,
        });
    }
    Ok(actions)
}

/// A component's version: `sha256:` and the hex digest of its bytes.
pub fn version_of(wasm: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(wasm)))
}

/// The size of an action as counted against `max_output_bytes`.
fn action_bytes(action: &types::Action) -> usize {
    match action {
        types::Action::Deliver(d) => {
            d.sink.len()
                + d.payload.len()
                + d.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
                + d.subject_suffix.as_ref().map_or(0, String::len)
                + d.key.as_ref().map_or(0, String::len)
        }
        types::Action::Drop(reason) => reason.len(),
    }
}

fn output(action: types::Action) -> PluginOutput {
    match action {
        types::Action::Deliver(d) => {
            let (payload, payload_base64) = match String::from_utf8(d.payload) {
                Ok(text) => (Some(text), None),
                Err(bytes) => {
                    use base64::Engine as _;
                    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes.into_bytes());
                    (None, Some(b64))
                }
            };
            PluginOutput::Deliver {
                sink: d.sink,
                payload,
                payload_base64,
                headers: d.headers,
                subject_suffix: d.subject_suffix,
                key: d.key,
            }
        }
        types::Action::Drop(reason) => PluginOutput::Drop { reason },
    }
}
