//! One engine for every plugin; per event a store and instance (fresh
//! from the pool, or reused from the plugin's warm pool) with fuel, an
//! epoch deadline and a memory cap; the actions as the plugin returned them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};

use super::bindings::hookyard::router::types;
use super::bindings::{Plugin, PluginPre};
use super::cache::CompiledCache;
use super::host_state::{EventWasi, HostState, MemoryCap};
use super::output::{output, PluginOutput};
use super::pool_config::{self, RuntimeOptions};
use super::warm_pool::WarmPool;

/// Per-call limits (`[plugins.NAME]` `fuel`, `timeout_ms`, `memory_mb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instruction budget (deterministic).
    pub fuel: u64,
    /// Wall-clock budget.
    pub timeout: Duration,
    /// Largest linear memory, in bytes (at most
    /// `RuntimeOptions::max_memory_bytes`, the pool's slot size: a larger
    /// value is clamped to it).
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

/// The engine and the linker every plugin shares. Cheap to clone; one
/// runtime (and one `LoadedPlugin`) may be used from many threads at once.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<HostState>>,
    cache: Option<Arc<CompiledCache>>,
    /// The pool's memory slot size: the most any call's cap can be.
    max_memory_bytes: usize,
    /// The pool's instance slots.
    max_instances: u32,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

/// A compiled, linked plugin version. Cheap to clone: clones share the
/// compiled code and the warm pool, if any.
#[derive(Clone)]
pub struct LoadedPlugin {
    pre: PluginPre<HostState>,
    warm: Option<Arc<WarmPool<Warm>>>,
    /// `sha256:<hex>` of the wasm bytes: the version recorded with each run.
    pub version: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// When this version was loaded, unix milliseconds.
    pub loaded_at_ms: i64,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("LoadedPlugin");
        debug
            .field("version", &self.version)
            .field("from_cache", &self.from_cache);
        if let Some(pool) = &self.warm {
            debug.field("warm_idle", &pool.idle());
            debug.field("warm_capacity", &pool.capacity());
        }
        debug.finish()
    }
}

impl LoadedPlugin {
    /// This plugin version with a warm pool of up to `instances` idle
    /// instances reused across calls (0: none, every call instantiates).
    ///
    /// A reused instance keeps its linear memory from earlier events (its
    /// heap, globals, anything the plugin cached), so its answer may depend
    /// on them; per call the fuel, deadline, memory cap, name, config and
    /// the WASI clocks and random seed are those of the new call, and an
    /// instance whose call failed in any way is dropped, never reused. Opt
    /// in only for plugins that keep no state between events, or only pure
    /// caches. Each idle instance holds a slot of the runtime's pool: count
    /// it in `RuntimeOptions::max_instances`. Clones made after this share
    /// the pool; calling it again starts a new, empty one.
    #[must_use]
    pub fn with_warm_pool(mut self, instances: usize) -> Self {
        self.warm = (instances > 0).then(|| Arc::new(WarmPool::new(instances)));
        self
    }

    /// Idle instances in the warm pool now (0 without one).
    pub fn warm_idle(&self) -> usize {
        self.warm.as_ref().map_or(0, |pool| pool.idle())
    }
}

/// An idle instance and the store that owns it.
struct Warm {
    store: Store<HostState>,
    instance: Plugin,
}

/// The event as a plugin receives it: the WIT record itself (its fields
/// are documented in `wit/router.wit`), so a call passes it without a copy.
pub type PluginEvent = types::Event;

/// An action as the plugin returned it (`wit/router.wit`, `action`).
pub type PluginAction = types::Action;

/// A delivery as the plugin returned it (`wit/router.wit`, `delivery`).
pub type PluginDelivery = types::Delivery;

/// Why a run produced no actions.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// Every slot of the runtime's instance pool is taken by calls in
    /// flight and idle warm instances (retry later; or raise
    /// `RuntimeOptions::max_instances`). The text is wasmtime's, naming the
    /// exhausted resource.
    #[error("no free plugin instance slot: {0}")]
    PoolExhausted(String),
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

impl Runtime {
    /// A runtime with the default [`RuntimeOptions`] (no on-disk cache).
    pub fn new() -> anyhow::Result<Self> {
        Self::with_options(RuntimeOptions::default())
    }

    /// An engine with fuel, epoch interruption and the pooling allocator
    /// sized by `options`, and a thread that advances the epoch every few
    /// milliseconds for as long as the runtime lives.
    pub fn with_options(options: RuntimeOptions) -> anyhow::Result<Self> {
        let engine = Engine::new(&pool_config::engine_config(&options))?;
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
        let cache = options
            .cache_dir
            .map(|dir| Arc::new(CompiledCache::new(dir, &engine)));
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            cache,
            max_memory_bytes: options.max_memory_bytes,
            max_instances: options.max_instances,
        })
    }

    /// The pool's memory slot size, the largest cap a call can have: a
    /// configuration reload asking for more needs a restart.
    pub fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }

    /// The pool's instance slots: a reload whose warm pools and workers
    /// need more needs a restart.
    pub fn max_instances(&self) -> u32 {
        self.max_instances
    }

    /// Compiles (or, with a cache directory, maps a previous compilation)
    /// and links a component; fails if it is not a component of the
    /// `plugin` world, imports anything the host does not give, or does not
    /// fit the pool's limits.
    pub fn load(&self, wasm: &[u8]) -> anyhow::Result<LoadedPlugin> {
        let digest = hex::encode(Sha256::digest(wasm));
        let (component, from_cache) = match &self.cache {
            Some(cache) => cache.load(&self.engine, &digest, wasm)?,
            None => (Component::new(&self.engine, wasm)?, false),
        };
        let pre = PluginPre::new(self.linker.instantiate_pre(&component)?)?;
        Ok(LoadedPlugin {
            pre,
            warm: None,
            version: format!("sha256:{digest}"),
            from_cache,
            loaded_at_ms: crate::clock::now_ms(),
        })
    }

    /// Runs `event` through `plugin` and returns its actions as printable
    /// data (`hookyard plugin run`, tests).
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

    /// Runs `event` through `plugin`, in an idle instance of its warm pool
    /// if it has one, else in a fresh instance: the actions as the plugin
    /// returned them (checked against `limits`), with what the call cost.
    /// `plugin` must come from `load` on this runtime or a clone of it.
    pub fn call(
        &self,
        plugin_name: &str,
        plugin: &LoadedPlugin,
        config: &Arc<BTreeMap<String, String>>,
        limits: Limits,
        event: &PluginEvent,
    ) -> Call {
        let started = Instant::now();
        if !Engine::same(plugin.pre.engine(), &self.engine) {
            // Compiled code and pool slots belong to one engine; mixing them
            // is a caller's bug, reported rather than left to wasmtime.
            return Call {
                result: Err(RunError::Trap(
                    "the plugin was loaded by another runtime".into(),
                )),
                fuel_used: 0,
                elapsed: started.elapsed(),
                warm: false,
            };
        }
        let memory = MemoryCap {
            max_bytes: limits.memory_bytes.min(self.max_memory_bytes),
            exceeded: false,
        };
        let (mut store, instance) = match plugin.warm.as_ref().and_then(|pool| pool.take()) {
            Some(Warm {
                mut store,
                instance,
            }) => {
                let state = store.data_mut();
                if state.plugin != plugin_name {
                    state.plugin = plugin_name.to_string();
                }
                state.config = Arc::clone(config);
                state.memory = memory;
                // Clocks and randomness follow the new event; whatever the
                // guest cached from earlier events stays (see `warm_pool.rs`).
                state.wasi.reset(event);
                (store, Some(instance))
            }
            None => {
                let state = HostState {
                    plugin: plugin_name.to_string(),
                    config: Arc::clone(config),
                    memory,
                    wasi: EventWasi::new(event),
                    table: ResourceTable::new(),
                };
                let mut store = Store::new(&self.engine, state);
                store.limiter(|s| &mut s.memory);
                (store, None)
            }
        };
        let warm = instance.is_some();
        let result = call_in(&mut store, instance, &plugin.pre, limits, event, started);
        let fuel_used = limits
            .fuel
            .saturating_sub(store.get_fuel().unwrap_or(limits.fuel));
        let elapsed = started.elapsed();
        let result = match result {
            Ok((instance, actions)) => {
                if let Some(pool) = &plugin.warm {
                    // A full pool hands the instance back; it is dropped here.
                    drop(pool.put(Warm { store, instance }));
                }
                Ok(actions)
            }
            // The store and its instance go with the error: whatever state a
            // failed call left behind is never seen by another event.
            Err(error) => Err(error),
        };
        Call {
            result,
            fuel_used,
            elapsed,
            warm,
        }
    }
}

/// One call's outcome and cost.
#[derive(Debug)]
pub struct Call {
    /// The actions, or why there are none.
    pub result: Result<Vec<PluginAction>, RunError>,
    /// Fuel the call consumed: instantiation included for a fresh
    /// instance, the handler alone for a warm one.
    pub fuel_used: u64,
    /// Wall-clock time of the call (instantiation included for a fresh
    /// instance).
    pub elapsed: Duration,
    /// Whether an idle instance of the plugin's warm pool served the call.
    pub warm: bool,
}

/// Calls the handler of `instance` (instantiated from `pre` in `store` if
/// `None`) under `limits`; returns the instance with the actions.
fn call_in(
    store: &mut Store<HostState>,
    instance: Option<Plugin>,
    pre: &PluginPre<HostState>,
    limits: Limits,
    event: &PluginEvent,
    started: Instant,
) -> Result<(Plugin, Vec<PluginAction>), RunError> {
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
                memory_mb: store.data().memory.max_bytes >> 20,
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
    let instance = match instance {
        Some(instance) => instance,
        None => match pre.instantiate(&mut *store) {
            Ok(instance) => instance,
            Err(error) if error.is::<wasmtime::PoolConcurrencyLimitError>() => {
                return Err(RunError::PoolExhausted(format!("{error:#}")));
            }
            Err(error) => return Err(trap(error, store)),
        },
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
    Ok((instance, actions))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: no imports, no exports.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

    #[test]
    fn load_refuses_garbage_and_components_of_other_worlds() {
        let dir = tempfile::tempdir().unwrap();
        for runtime in [
            Runtime::new().unwrap(),
            Runtime::with_options(RuntimeOptions {
                cache_dir: Some(dir.path().into()),
                ..RuntimeOptions::default()
            })
            .unwrap(),
        ] {
            assert!(runtime.load(b"not wasm").is_err());
            let error = runtime.load(EMPTY_COMPONENT).unwrap_err();
            assert!(format!("{error:#}").contains("handler"), "{error:#}");
        }
        // The empty component compiled, so it was cached; garbage was not.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn runtimes_and_plugins_are_shared_across_threads() {
        fn shared<T: Send + Sync + Clone>() {}
        shared::<Runtime>();
        shared::<LoadedPlugin>();
    }
}
