//! Wiring: open the store, build the routes, serve (plain or TLS) until the
//! shutdown future completes, then drain: stop accepting, let in-flight
//! requests finish (their commits included) within the deadline, and close
//! the store so every queued insert is committed before exit.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState, Metrics};
use crate::backlog::BacklogWatch;
use crate::config::{AdminConfig, Config};
use crate::config_reload::ConfigReloader;
use crate::deliver::{Deliverer, DeliveryOptions};
use crate::dispatch::{Dispatcher, Routes};
use crate::ingest::{self, IngestState, PeerAddr};
use crate::live::Live;
use crate::plugin::registry::Plugins;
use crate::plugin::reload;
use crate::plugin::{Runtime, RuntimeOptions};
use crate::store;

/// Runs the router on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = store::open(&config.store)
        .await
        .context("opening the store")?;
    warn_about_development_defaults(&config);
    // Building a sink does no I/O (sinks connect on first use), so a broker
    // that is down delays its deliveries, not the router's start.
    let mut sinks = std::collections::BTreeMap::new();
    for (name, sink) in &config.sinks {
        let built = crate::sinks::build(sink).context("building the sinks")?;
        sinks.insert(name.clone(), (sink.clone(), built));
    }

    // Compiling components takes seconds: off the async threads.
    let plugin_configs = config.plugins.clone();
    let options = runtime_options(&config);
    let plugins = tokio::task::spawn_blocking(move || {
        let runtime = Runtime::with_options(options).context("starting the plugin runtime")?;
        Plugins::load(runtime, &plugin_configs)
    })
    .await
    .context("plugin loading task")??;
    let plugins = Arc::new(plugins);
    let routes = Arc::new(Live::new(Routes::new(&config, plugins.clone())));
    let metrics = Arc::new(Metrics::new());
    let deliverer = Arc::new(Deliverer::start(
        store.clone(),
        sinks,
        DeliveryOptions {
            poll: config.delivery.poll,
            lease: config.delivery.lease,
            grace: config.server.shutdown_timeout,
        },
        metrics.clone(),
    ));
    let dispatcher = Dispatcher::start(
        store.clone(),
        routes.clone(),
        deliverer.handoff(),
        metrics.clone(),
    )
    .context("starting the dispatch workers")?;
    let sources = Arc::new(Live::new(config.sources.clone()));
    let backlog = Arc::new(BacklogWatch::new(config.server.max_backlog));

    let state = IngestState {
        sources: sources.clone(),
        store: store.clone(),
        max_body_bytes: config.server.max_body_bytes,
        scheme: if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        },
        trusted_proxies: Arc::new(config.server.trusted_proxies.clone()),
        dispatch: Some(dispatcher.handle()),
        metrics: metrics.clone(),
        backlog: Some(backlog.clone()),
    };
    let app: Router = ingest::router(state);

    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });

    let counting = tokio::spawn(
        backlog
            .clone()
            .run(store.clone(), BACKLOG_EVERY, token.clone()),
    );
    let watch_stop = token.child_token();
    let watcher = reload::watch(plugins, watch_stop.clone()).context("watching plugin files")?;
    let live = Arc::new(ConfigReloader {
        path: config.file.clone(),
        config: Arc::new(Live::new(config.clone())),
        routes,
        sources,
        deliverer: deliverer.clone(),
        metrics: metrics.clone(),
        stop: token.clone(),
        watcher: tokio::sync::Mutex::new(Some((watcher, watch_stop))),
    });
    let hangups = reload_on_hangup(live.clone(), token.clone());
    let admin = match &config.admin {
        Some(admin) => Some(
            serve_admin(
                admin,
                AdminState {
                    token: admin.token.clone().map(Arc::new),
                    store: store.clone(),
                    metrics: metrics.clone(),
                    backlog: backlog.clone(),
                    dispatch: Some(dispatcher.handle()),
                    live: live.clone(),
                },
                token.clone(),
            )
            .await?,
        ),
        None => None,
    };

    // Retention runs beside ingest and stops with it (a purge in progress
    // finishes its current chunk's statement first).
    let purges = tokio::spawn(store::run_purges(
        store.clone(),
        config.store.retention.clone(),
        token.clone(),
    ));

    let served = serve(&config, listener, app, token.clone());
    let deadline = async {
        token.cancelled().await;
        tokio::time::sleep(config.server.shutdown_timeout).await;
    };
    tokio::select! {
        result = served => result?,
        () = deadline => tracing::warn!(
            timeout_s = config.server.shutdown_timeout.as_secs(),
            "Shutdown deadline passed with requests still open; closing."
        ),
    }
    token.cancel();
    let _ = purges.await;
    let _ = counting.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let _ = hangups.await;
    // A reload in progress finishes first (it holds the lock).
    if let Some((watcher, _)) = live.watcher.lock().await.take() {
        watcher.join().await;
    }
    // Outcomes already computed are written; events still queued stay
    // `received` and are dispatched at the next start.
    dispatcher.stop().await;
    // Sends in flight finish (or are released) and every result is written.
    deliverer.stop().await;
    // Every acknowledged request has committed; this commits whatever an
    // unacknowledged one left queued and closes the connections cleanly.
    store.close().await;
    tracing::info!("Stopped.");
    Ok(())
}

/// Reloads the configuration on each SIGHUP until `stop` (the outcome is
/// logged and counted by the reload itself). The handler is installed
/// before this returns: a SIGHUP once the router listens never kills it.
fn reload_on_hangup(
    live: Arc<ConfigReloader>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::warn!(%error, "Cannot listen for SIGHUP; reload through the admin API instead.");
                return tokio::spawn(async {});
            }
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    received = hangups.recv() => {
                        if received.is_none() {
                            return;
                        }
                        tracing::info!("SIGHUP received; reloading the configuration.");
                        let _ = live.reload().await;
                    }
                }
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (live, stop);
        tokio::spawn(async {})
    }
}

/// How often the undelivered backlog is counted (backpressure, metrics).
const BACKLOG_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds the admin listener and serves it until `token` is cancelled.
async fn serve_admin(
    config: &AdminConfig,
    state: AdminState,
    token: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(config.listen).await.with_context(|| {
        format!(
            "binding the admin listener on {} (admin.listen)",
            config.listen
        )
    })?;
    if config.token.is_none() {
        tracing::warn!(listen = %config.listen, "Admin API open without a token (loopback only); set admin.token to require one.");
    }
    tracing::info!(listen = %config.listen, "Admin listener up.");
    let app = admin::router(state);
    Ok(tokio::spawn(async move {
        let stopped = async move { token.cancelled().await };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                "Admin listener failed."
            );
        }
    }))
}

async fn serve(
    config: &Config,
    listener: TcpListener,
    app: Router,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let signal = async move { token.cancelled().await };
    match &config.server.tls {
        Some(tls) => {
            let tls_config = crate::tls::server_config(tls).context("setting up TLS")?;
            let listener = crate::tls::TlsListener::new(listener, tls_config)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<PeerAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await?;
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<PeerAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await?
        }
    }
    Ok(())
}

/// The engine sized for the configured plugins: memory slots as large as
/// the largest memory cap, and enough instances for every dispatch worker
/// plus every warm pool, whatever `runtime.max_instances` says.
pub(crate) fn runtime_options(config: &Config) -> RuntimeOptions {
    let defaults = RuntimeOptions::default();
    let largest = config.plugins.values().map(|p| p.limits.memory_bytes).max();
    let warm: usize = config.plugins.values().map(|p| p.warm_instances).sum();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let needed = u32::try_from(workers + warm + 2).unwrap_or(u32::MAX);
    RuntimeOptions {
        cache_dir: config.runtime.cache_dir.clone(),
        max_memory_bytes: largest.unwrap_or(defaults.max_memory_bytes),
        max_instances: config.runtime.max_instances.max(needed),
        ..defaults
    }
}

/// A secret from `${NAME:-default}` is in the repository for anyone to read.
pub(crate) fn warn_about_development_defaults(config: &Config) {
    for source in config.sources.values().filter(|s| s.uses_dev_default) {
        tracing::warn!(
            source = %source.name,
            "Source uses a development default secret from the config file; set its environment variable before exposing this router."
        );
    }
}
