//! The loaded plugins by name: each one's router.toml settings and the
//! version currently serving, which a reload swaps atomically (in-flight
//! events keep the version they started with).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;

use super::{LoadedPlugin, Runtime};
use crate::config::PluginConfig;

/// One configured plugin.
#[derive(Debug)]
pub struct PluginSlot {
    /// Its `[plugins.NAME]` section.
    pub config: PluginConfig,
    current: RwLock<Arc<LoadedPlugin>>,
    /// Reloads that swapped in a new version.
    pub reloads: AtomicU64,
    /// Reloads refused (unreadable file, not a plugin component).
    pub reload_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// A new version serves from now on.
    Swapped {
        /// The version replaced.
        from: String,
        /// The version now serving.
        to: String,
    },
    /// The file holds the version already serving.
    Unchanged,
}

impl PluginSlot {
    /// The version serving now. The caller keeps it for the whole event.
    pub fn current(&self) -> Arc<LoadedPlugin> {
        // A poisoned lock still holds a valid Arc: a panic cannot tear it.
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Why the last reload failed, if it did (cleared by a good one).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Reads and compiles the plugin's file again and swaps it in if it is
    /// a new, valid version. Blocking (compiles): call it off the async
    /// runtime. On failure the serving version stays, and the error is
    /// counted, kept for [`PluginSlot::last_error`], and returned.
    pub fn reload(&self, runtime: &Runtime) -> anyhow::Result<Reloaded> {
        let result = self.try_reload(runtime);
        match &result {
            Ok(Reloaded::Swapped { .. }) => {
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.set_last_error(None);
            }
            Ok(Reloaded::Unchanged) => {}
            Err(error) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                self.set_last_error(Some(format!("{error:#}")));
            }
        }
        result
    }

    fn try_reload(&self, runtime: &Runtime) -> anyhow::Result<Reloaded> {
        let bytes = std::fs::read(&self.config.wasm)
            .with_context(|| format!("reading {}", self.config.wasm.display()))?;
        if super::version_of(&bytes) == self.current().version {
            return Ok(Reloaded::Unchanged);
        }
        let loaded = load_bytes(
            runtime,
            &self.config.wasm,
            &bytes,
            self.config.warm_instances,
        )?;
        let to = loaded.version.clone();
        let from = self.swap(loaded).version.clone();
        Ok(Reloaded::Swapped { from, to })
    }

    fn set_last_error(&self, error: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }

    /// Makes `next` the serving version; returns the one it replaced.
    pub fn swap(&self, next: LoadedPlugin) -> Arc<LoadedPlugin> {
        let next = Arc::new(next);
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *guard, next)
    }
}

/// Every configured plugin, loaded, with the runtime that runs them.
#[derive(Debug)]
pub struct Plugins {
    runtime: Runtime,
    slots: BTreeMap<String, Arc<PluginSlot>>,
}

impl Plugins {
    /// Reads and compiles every plugin's wasm. Blocking (compiling a large
    /// component takes seconds): call it off the async runtime. Fails on
    /// the first plugin that cannot load, naming it and its file.
    pub fn load(
        runtime: Runtime,
        configs: &BTreeMap<String, PluginConfig>,
    ) -> anyhow::Result<Self> {
        Self::build(runtime, configs, BTreeMap::new(), &BTreeMap::new())
    }

    /// The registry after a configuration reload, on the same runtime:
    /// the plugins named in `keep` (their sections did not change) keep
    /// their slot, with its serving version, reload record and warm
    /// instances; every other one in `configs` loads from its file (and
    /// carries its reload counts on, so the metric never runs backwards).
    /// Blocking, like [`Plugins::load`]; fails naming the first plugin
    /// that cannot load, and then nothing has changed.
    pub fn reconfigured(
        &self,
        configs: &BTreeMap<String, PluginConfig>,
        keep: &BTreeSet<String>,
    ) -> anyhow::Result<Self> {
        let kept = self
            .slots
            .iter()
            .filter(|(name, _)| keep.contains(*name))
            .map(|(name, slot)| (name.clone(), Arc::clone(slot)))
            .collect();
        Self::build(self.runtime.clone(), configs, kept, &self.slots)
    }

    fn build(
        runtime: Runtime,
        configs: &BTreeMap<String, PluginConfig>,
        mut kept: BTreeMap<String, Arc<PluginSlot>>,
        previous: &BTreeMap<String, Arc<PluginSlot>>,
    ) -> anyhow::Result<Self> {
        let mut slots = BTreeMap::new();
        // One file may serve several plugins (other config, other grants):
        // compile it once.
        let mut compiled: std::collections::HashMap<String, LoadedPlugin> = Default::default();
        for (name, config) in configs {
            if let Some(slot) = kept.remove(name) {
                slots.insert(name.clone(), slot);
                continue;
            }
            let bytes = std::fs::read(&config.wasm).with_context(|| {
                format!("loading plugin `{name}`: reading {}", config.wasm.display())
            })?;
            let version = super::version_of(&bytes);
            let loaded = match compiled.get(&version) {
                Some(loaded) => loaded.clone(),
                None => {
                    let loaded = load_bytes(&runtime, &config.wasm, &bytes, config.warm_instances)
                        .with_context(|| format!("loading plugin `{name}`"))?;
                    compiled.insert(version, loaded.clone());
                    loaded
                }
            };
            tracing::info!(plugin = %name, version = %loaded.version, "Plugin loaded.");
            let counted = |count: fn(&PluginSlot) -> &AtomicU64| {
                previous
                    .get(name)
                    .map_or(0, |slot| count(slot).load(Ordering::Relaxed))
            };
            slots.insert(
                name.clone(),
                Arc::new(PluginSlot {
                    config: config.clone(),
                    current: RwLock::new(Arc::new(loaded)),
                    reloads: AtomicU64::new(counted(|slot| &slot.reloads)),
                    reload_failures: AtomicU64::new(counted(|slot| &slot.reload_failures)),
                    last_error: Mutex::new(None),
                }),
            );
        }
        Ok(Self { runtime, slots })
    }

    /// The runtime the plugins run on.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<PluginSlot>> {
        self.slots.get(name)
    }

    /// Every plugin, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<PluginSlot>)> {
        self.slots.iter()
    }
}

/// Compiles the bytes read from `wasm` (named in errors).
fn load_bytes(
    runtime: &Runtime,
    wasm: &Path,
    bytes: &[u8],
    warm_instances: usize,
) -> anyhow::Result<LoadedPlugin> {
    let loaded = runtime
        .load(bytes)
        .with_context(|| format!("{} is not a component of the plugin world", wasm.display()))?;
    Ok(loaded.with_warm_pool(warm_instances))
}
