//! Hot reload: a plugin whose wasm file changes is compiled again off the
//! event path and swapped in atomically; a broken file never replaces a
//! working version.
//!
//! The watch is on each file's directory, not the file: replacing a file
//! by rename (how `cargo` and most deploy tools write) gives it a new
//! inode, which a watch on the old one would never report. Changes are
//! debounced, so a file copied over in several writes is read once, when
//! it is quiet; a read that still catches it half-written fails to
//! compile, keeps the old version, and the write's last event retries it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::registry::{Plugins, Reloaded};

/// Quiet time after the last change before a file is read.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The running watcher; dropping it stops the watch.
pub struct Reloader {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl Reloader {
    /// Waits for the reload task to end (after `stop` was cancelled).
    pub async fn join(self) {
        let _ = self.task.await;
    }
}

/// `dir/file` with `dir` made absolute and canonical, as the watcher reports paths.
fn watched_path(file: &Path) -> anyhow::Result<PathBuf> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .with_context(|| format!("{} names no file", file.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    Ok(dir.join(name))
}

/// Starts watching every plugin's file until `stop` is cancelled.
pub fn watch(plugins: Arc<Plugins>, stop: CancellationToken) -> anyhow::Result<Reloader> {
    // One file may serve several plugins (the same component, other config).
    let mut by_path: HashMap<PathBuf, Vec<String>> = HashMap::new();
    for (name, slot) in plugins.iter() {
        let path = watched_path(&slot.config.wasm)?;
        by_path.entry(path).or_default().push(name.clone());
    }
    let (changes, mut changed) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                for path in event.paths {
                    let _ = changes.send(path);
                }
            }
            Err(error) => tracing::warn!(%error, "Plugin file watcher reported an error."),
        })
        .context("starting the plugin file watcher")?;
    let dirs: BTreeSet<PathBuf> = by_path
        .keys()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", dir.display()))?;
    }
    let task = tokio::spawn(async move {
        loop {
            let mut due = BTreeSet::new();
            tokio::select! {
                () = stop.cancelled() => return,
                path = changed.recv() => match path {
                    Some(path) => due.extend(by_path.get(&path).into_iter().flatten().cloned()),
                    None => return,
                },
            }
            // Gather until quiet.
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(DEBOUNCE) => break,
                    path = changed.recv() => match path {
                        Some(path) => due.extend(by_path.get(&path).into_iter().flatten().cloned()),
                        None => return,
                    },
                }
            }
            for name in due {
                reload_logged(&plugins, &name).await;
            }
        }
    });
    Ok(Reloader {
        _watcher: watcher,
        task,
    })
}

/// Reloads plugin `name` off the async threads and logs what happened.
pub async fn reload_logged(plugins: &Arc<Plugins>, name: &str) -> Option<anyhow::Result<Reloaded>> {
    let plugins = Arc::clone(plugins);
    let name = name.to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let slot = plugins.get(&name)?;
        let result = slot.reload(plugins.runtime());
        match &result {
            Ok(Reloaded::Swapped { from, to }) => {
                tracing::info!(plugin = %name, %from, %to, "Plugin reloaded; new events run the new version.");
            }
            Ok(Reloaded::Unchanged) => {
                tracing::debug!(plugin = %name, "Plugin file changed but holds the serving version.");
            }
            Err(error) => tracing::error!(
                plugin = %name,
                serving = %slot.current().version,
                error = format!("{error:#}"),
                "Plugin reload refused; the serving version stays."
            ),
        }
        Some(result)
    })
    .await;
    outcome.ok().flatten()
}
