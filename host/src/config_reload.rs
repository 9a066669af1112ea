//! Configuration reload (SIGHUP, `POST /api/config/reload`): reads
//! router.toml again, validates it with the code a start uses, and applies
//! what changed in sources, plugins and sinks while the router runs.
//!
//! - All or nothing: the file is validated, changed plugins compiled and
//!   changed sinks built before anything is swapped; a refusal names the
//!   reason and the running configuration stays, whole.
//! - Nothing in flight is dropped: a request, an event in a plugin and a
//!   send each keep the snapshot they started with; a replaced sink worker
//!   finishes its sends and hands back what it had not started.
//! - Applied in the order that never routes to something missing: sinks
//!   first, then plugins with the dispatch routes, then the sources
//!   ingest accepts, and the workers of removed sinks last.
//! - `[server]`, `[store]`, `[runtime]`, `[delivery]` and `[admin]` apply at
//!   the next start: a changed one is reported and logged, not applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::admin::metrics::ConfigReloadLabel;
use crate::admin::Metrics;
use crate::config::{self, Config, SourceConfig};
use crate::deliver::{BuiltSink, Deliverer};
use crate::dispatch::Routes;
use crate::live::Live;
use crate::plugin::reload::{self as plugin_reload, Reloader};

/// Sections that take effect only at a start.
const AT_START: [&str; 5] = ["server", "store", "runtime", "delivery", "admin"];

/// What the running router shares with a reload.
#[derive(Debug)]
pub struct ConfigReloader {
    /// router.toml, as given at start.
    pub path: PathBuf,
    /// The configuration running (the admin API shows it).
    pub config: Arc<Live<Config>>,
    /// What dispatch routes by.
    pub routes: Arc<Live<Routes>>,
    /// What ingest accepts.
    pub sources: Arc<Live<BTreeMap<String, SourceConfig>>>,
    /// The sink workers.
    pub deliverer: Arc<Deliverer>,
    /// Where reloads are counted.
    pub metrics: Arc<Metrics>,
    /// The router's stop: the plugin file watcher stops with it.
    pub stop: CancellationToken,
    /// The plugin file watcher of the running plugins. Its lock also
    /// keeps two reloads from interleaving.
    pub watcher: tokio::sync::Mutex<Option<(Reloader, CancellationToken)>>,
}

/// What one section kind's entries did in a reload.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// New names.
    pub added: Vec<String>,
    /// Names whose section was rewritten.
    pub changed: Vec<String>,
    /// Names no longer configured.
    pub removed: Vec<String>,
}

impl Changes {
    fn between(running: &Config, next: &Config, kind: &str, names: Names) -> Self {
        let (before, after) = (names(running), names(next));
        Self {
            added: after.difference(&before).cloned().collect(),
            changed: after
                .intersection(&before)
                .filter(|name| {
                    !running
                        .sections
                        .same(&next.sections, &format!("{kind}.{name}"))
                })
                .cloned()
                .collect(),
            removed: before.difference(&after).cloned().collect(),
        }
    }

    /// Added or changed: what needs building.
    fn fresh(&self) -> impl Iterator<Item = &String> {
        self.added.iter().chain(&self.changed)
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

type Names = fn(&Config) -> BTreeSet<String>;

/// What a reload applied.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// `[sources.*]`.
    pub sources: Changes,
    /// `[plugins.*]`.
    pub plugins: Changes,
    /// `[sinks.*]`.
    pub sinks: Changes,
    /// Sections that changed and apply at the next start.
    pub restart_required: Vec<String>,
}

impl ConfigReloader {
    /// Reloads router.toml. On `Err` nothing changed; the message says why
    /// (it names the key, never a secret's value).
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let mut watcher = self.watcher.lock().await;
        let result = self.apply(&mut watcher).await;
        let outcome = match &result {
            Ok(report) => {
                tracing::info!(
                    file = %self.path.display(),
                    sources = ?report.sources,
                    plugins = ?report.plugins,
                    sinks = ?report.sinks,
                    "Configuration reloaded."
                );
                for section in &report.restart_required {
                    tracing::warn!(%section, "Configuration section changed; it applies at the next start, the running one stays.");
                }
                "applied"
            }
            Err(error) => {
                tracing::error!(file = %self.path.display(), %error, "Configuration reload refused; the running configuration stays.");
                "refused"
            }
        };
        self.metrics
            .config_reloads
            .get_or_create(&ConfigReloadLabel {
                outcome: outcome.into(),
            })
            .inc();
        result
    }

    async fn apply(
        &self,
        watcher: &mut Option<(Reloader, CancellationToken)>,
    ) -> Result<ReloadReport, String> {
        let path = self.path.clone();
        let mut next = tokio::task::spawn_blocking(move || config::load(&path))
            .await
            .map_err(|_| "the reload task failed".to_string())?
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
        let running = self.config.get();
        let report = ReloadReport {
            sources: Changes::between(&running, &next, "sources", |c| {
                c.sources.keys().cloned().collect()
            }),
            plugins: Changes::between(&running, &next, "plugins", |c| {
                c.plugins.keys().cloned().collect()
            }),
            sinks: Changes::between(&running, &next, "sinks", |c| {
                c.sinks.keys().cloned().collect()
            }),
            restart_required: AT_START
                .iter()
                .filter(|key| !running.sections.same(&next.sections, key))
                .map(|key| (*key).to_string())
                .collect(),
        };
        // What applies only at a start keeps running as it is, and is
        // recorded as it is, so the next reload reports it again.
        for key in AT_START {
            next.sections.keep(&running.sections, key);
        }
        next.server = running.server.clone();
        next.store = running.store.clone();
        next.runtime = running.runtime.clone();
        next.delivery = running.delivery;
        next.admin = running.admin.clone();

        let routes = self.routes.get();
        fits_the_engine(&next, routes.plugins.runtime())?;
        let mut sinks: BTreeMap<String, BuiltSink> = BTreeMap::new();
        for name in report.sinks.fresh() {
            let config = &next.sinks[name];
            let sink =
                crate::sinks::build(config).map_err(|e| format!("sinks.{name}: {}", e.reason))?;
            sinks.insert(name.clone(), (config.clone(), sink));
        }
        let plugins = if report.plugins.is_empty() {
            Arc::clone(&routes.plugins)
        } else {
            let keep: BTreeSet<String> = next
                .plugins
                .keys()
                .filter(|name| !report.plugins.changed.contains(*name))
                .cloned()
                .collect();
            let (current, configs) = (Arc::clone(&routes.plugins), next.plugins.clone());
            let built = tokio::task::spawn_blocking(move || current.reconfigured(&configs, &keep))
                .await
                .map_err(|_| "the plugin loading task failed".to_string())?
                .map_err(|e| format!("{e:#}"))?;
            Arc::new(built)
        };
        let plugins_changed = !Arc::ptr_eq(&plugins, &routes.plugins);
        let next_watcher = if plugins_changed {
            let stop = self.stop.child_token();
            let started = plugin_reload::watch(Arc::clone(&plugins), stop.clone())
                .map_err(|e| format!("watching the plugin files: {e:#}"))?;
            Some((started, stop))
        } else {
            None
        };

        // Everything is built: from here on nothing can fail.
        self.deliverer.reconfigure(sinks, &[]);
        self.routes.set(Arc::new(Routes::new(&next, plugins)));
        self.sources.set(Arc::new(next.sources.clone()));
        self.deliverer
            .reconfigure(BTreeMap::new(), &report.sinks.removed);
        crate::app::warn_about_development_defaults(&next);
        self.config.set(Arc::new(next));
        if let Some(started) = next_watcher {
            if let Some((old, stop)) = watcher.replace(started) {
                stop.cancel();
                old.join().await;
            }
        }
        Ok(report)
    }
}

/// The engine was sized at start for the largest memory cap and the warm
/// pools then configured; a reload asking for more needs a restart.
fn fits_the_engine(next: &Config, runtime: &crate::plugin::Runtime) -> Result<(), String> {
    let needed = crate::app::runtime_options(next);
    if let Some(plugin) = next
        .plugins
        .values()
        .find(|p| p.limits.memory_bytes > runtime.max_memory_bytes())
    {
        return Err(format!(
            "plugins.{}.memory_mb: {} MiB is more than the {} MiB the running engine was sized for at start; restart the router to apply it",
            plugin.name,
            plugin.limits.memory_bytes >> 20,
            runtime.max_memory_bytes() >> 20
        ));
    }
    if needed.max_instances > runtime.max_instances() {
        return Err(format!(
            "the plugins' warm_instances need {} instance slots and the running engine has {}; restart the router to apply them",
            needed.max_instances,
            runtime.max_instances()
        ));
    }
    Ok(())
}
