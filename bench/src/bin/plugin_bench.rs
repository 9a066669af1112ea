//! `plugin-bench`: what one event costs a plugin call, on a fresh instance
//! from the pool and on a reused one from a warm pool, measured in the same
//! run (see bench/README.md, "Plugin benchmark").
//!
//! Usage: `cargo run --release -p hookyard-bench --bin plugin-bench`.
//! Environment:
//! - `PLUGIN_BENCH_CALLS` (2000): timed calls per plugin and mode;
//! - `PLUGIN_BENCH_WARMUP` (200): untimed calls before them;
//! - `PLUGIN_BENCH_ROUNDS` (10): the calls are split into this many rounds,
//!   alternating fresh and warm, so a noisy neighbour hits both alike;
//! - `PLUGIN_BENCH_WASM`: more plugins, `name=path.wasm,...`, run on the
//!   same event after the Rust `github-router` (built from `plugins/`);
//! - `PLUGIN_BENCH_CONFIG`: their config, `name.key=value,...` (the
//!   github-router gets `repos=acme/api,route_push=archive`).
//!
//! The event is a GitHub `push` with a 1 KiB JSON body that the
//! github-router delivers (its longest path). Fuel metering is on (as in
//! the router), with the default limits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hookyard::plugin::{Limits, LoadedPlugin, PluginEvent, Runtime, RuntimeOptions};

#[path = "../../../host/outer_build_env.rs"]
mod outer_build_env;

/// One plugin under test.
struct Subject {
    name: String,
    wasm: PathBuf,
    config: Arc<BTreeMap<String, String>>,
}

/// One mode's figures.
struct Figures {
    median: Duration,
    p90: Duration,
    fuel: u64,
    warm_calls: usize,
}

fn main() -> anyhow::Result<()> {
    let calls = env_usize("PLUGIN_BENCH_CALLS", 2000)?;
    let warmup = env_usize("PLUGIN_BENCH_WARMUP", 200)?;
    let rounds = env_usize("PLUGIN_BENCH_ROUNDS", 10)?.clamp(1, calls.max(1));
    let subjects = subjects()?;
    let event = event();
    let before = memory_report();
    let runtime = Runtime::new().context("starting the runtime")?;
    println!(
        "{} timed calls per row ({rounds} interleaved rounds, {warmup} warm-up), \
         body {} bytes, fuel on\n",
        calls,
        event.body.len()
    );
    println!("| plugin | mode | median µs | p90 µs | fuel used | warm/fresh (median) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for subject in &subjects {
        let wasm = std::fs::read(&subject.wasm)
            .with_context(|| format!("reading {}", subject.wasm.display()))?;
        let fresh = runtime
            .load(&wasm)
            .with_context(|| format!("loading {}", subject.wasm.display()))?;
        let warm = fresh.clone().with_warm_pool(1);
        let call = |plugin: &LoadedPlugin| -> anyhow::Result<(Duration, u64, bool)> {
            let started = Instant::now();
            let call = runtime.call(
                &subject.name,
                plugin,
                &subject.config,
                Limits::default(),
                &event,
            );
            let took = started.elapsed();
            if let Err(error) = &call.result {
                bail!("{}: {error}", subject.name);
            }
            Ok((took, call.fuel_used, call.warm))
        };
        for _ in 0..warmup {
            call(&fresh)?;
            call(&warm)?;
        }
        let mut samples = [Vec::with_capacity(calls), Vec::with_capacity(calls)];
        for round in 0..rounds {
            let share = calls / rounds + usize::from(round < calls % rounds);
            for (mode, plugin) in [&fresh, &warm].into_iter().enumerate() {
                for _ in 0..share {
                    samples[mode].push(call(plugin)?);
                }
            }
        }
        let [fresh_figures, warm_figures] = samples.map(|s| figures(&s));
        let ratio = warm_figures.median.as_secs_f64() / fresh_figures.median.as_secs_f64();
        for (mode, f, ratio) in [
            ("fresh", &fresh_figures, String::new()),
            ("warm", &warm_figures, format!("{ratio:.2}")),
        ] {
            println!(
                "| {} | {mode} | {:.1} | {:.1} | {} | {ratio} |",
                subject.name,
                micros(f.median),
                micros(f.p90),
                f.fuel,
            );
            // A warm row whose calls were not all warm would measure nothing.
            if mode == "warm" && f.warm_calls != calls {
                bail!(
                    "only {} of {calls} warm calls reused an instance",
                    f.warm_calls
                );
            }
        }
        load_times(&subject.name, &wasm)?;
    }
    println!("\nprocess memory before the runtime: {before}");
    println!(
        "with one runtime (default options), the plugins above loaded: {}",
        memory_report()
    );
    Ok(())
}

/// Median, p90, the fuel of the last call and the count of warm calls.
fn figures(samples: &[(Duration, u64, bool)]) -> Figures {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Figures {
        median: at(0.5),
        p90: at(0.9),
        fuel: samples.last().map_or(0, |s| s.1),
        warm_calls: samples.iter().filter(|s| s.2).count(),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Prints how long loading takes: compiling, and mapping from the cache.
fn load_times(name: &str, wasm: &[u8]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let runtime = Runtime::with_options(RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeOptions::default()
    })?;
    let started = Instant::now();
    let compiled = runtime.load(wasm)?;
    let compile = started.elapsed();
    let started = Instant::now();
    let cached = runtime.load(wasm)?;
    let from_cache = started.elapsed();
    if compiled.from_cache || !cached.from_cache {
        bail!("{name}: the second load did not hit the cache");
    }
    eprintln!(
        "{name}: load {:.1} ms compiling (and writing the cache), {:.2} ms from the cache",
        compile.as_secs_f64() * 1e3,
        from_cache.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The process's virtual size and resident memory (Linux).
fn memory_report() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| ["VmSize:", "VmRSS:"].iter().any(|k| l.starts_with(k)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The github-router, built from source, then `PLUGIN_BENCH_WASM`.
fn subjects() -> anyhow::Result<Vec<Subject>> {
    let mut configs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    configs.insert(
        "github-router".into(),
        [("repos", "acme/api"), ("route_push", "archive")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    );
    for item in list("PLUGIN_BENCH_CONFIG") {
        let (key, value) = item
            .split_once('=')
            .context("PLUGIN_BENCH_CONFIG: name.key=value")?;
        let (name, key) = key
            .split_once('.')
            .context("PLUGIN_BENCH_CONFIG: name.key=value")?;
        configs
            .entry(name.into())
            .or_default()
            .insert(key.into(), value.into());
    }
    let mut subjects = vec![Subject {
        name: "github-router".into(),
        wasm: build_github_router()?,
        config: Arc::default(),
    }];
    for item in list("PLUGIN_BENCH_WASM") {
        let (name, path) = item
            .split_once('=')
            .context("PLUGIN_BENCH_WASM: name=path.wasm")?;
        subjects.push(Subject {
            name: name.into(),
            wasm: path.into(),
            config: Arc::default(),
        });
    }
    for subject in &mut subjects {
        subject.config = Arc::new(configs.remove(&subject.name).unwrap_or_default());
    }
    Ok(subjects)
}

/// Builds `plugins/` for wasm32-wasip2 (as the tests do) and returns the
/// github-router component.
fn build_github_router() -> anyhow::Result<PathBuf> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "github-router",
        ])
        .current_dir(&plugins);
    // The outer cargo may point these at the host build (as host/build.rs).
    for var in outer_build_env::OUTER_BUILD_VARS {
        build.env_remove(var);
    }
    let status = build.status().context("running cargo for plugins/")?;
    if !status.success() {
        bail!("building plugins/github-router failed");
    }
    Ok(plugins.join("target/wasm32-wasip2/release/github_router.wasm"))
}

/// A GitHub push to acme/api with a 1 KiB JSON body.
fn event() -> PluginEvent {
    let mut body = String::from(
        r#"{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","#,
    );
    body.push_str(r#""repository":{"id":1296269,"full_name":"acme/api","private":false},"#);
    body.push_str(r#""pusher":{"name":"octocat","email":"octocat@example.com"},"commits":["#);
    let mut n = 0;
    while body.len() < 800 {
        body.push_str(&format!(
            r#"{{"id":"{n:040x}","message":"Commit {n}","author":"octocat"}},"#
        ));
        n += 1;
    }
    body.pop();
    body.push_str("],\"head_commit\":null,\"padding\":\"");
    while body.len() < 1024 - 2 {
        body.push('x');
    }
    body.push_str("\"}");
    assert_eq!(body.len(), 1024);
    PluginEvent {
        id: "evt_01JBENCH0000000000000000".into(),
        source: "github".into(),
        received_at: 1_700_000_000_000,
        method: "POST".into(),
        path: "/webhooks/github".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-github-event".into(), "push".into()),
            (
                "x-github-delivery".into(),
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
        ],
        body: body.into_bytes(),
    }
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value.parse().with_context(|| format!("{name}={value}")),
        Err(_) => Ok(default),
    }
}

/// The comma-separated items of environment variable `name`.
fn list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}
