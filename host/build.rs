//! Build-time chores: rebuild when a migration is added (`sqlx::migrate!`
//! embeds the folder but cannot tell Cargo to watch it), and build the
//! example plugins that router.toml names, so `cargo run --release --
//! serve` works on a fresh clone with no manual step.
//!
//! The plugins are their own workspace for `wasm32-wasip2` (`plugins/`),
//! built by a nested `cargo` into `plugins/target`. A failure there is a
//! warning, not an error: the router itself builds and runs without the
//! examples, and says which plugin file it cannot read at start.
//! `HOOKYARD_SKIP_PLUGIN_BUILD=1` skips it (packagers, offline builds).
//!
//! rust-toolchain.toml names the `wasm32-wasip2` target, but rustup adds a
//! toolchain's targets only when it installs the toolchain itself; on a
//! machine whose toolchain was there first (or with automatic installs
//! off) the target is missing, so this adds it (`rustup target add`) once.

use std::path::Path;
use std::process::Command;

mod outer_build_env;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=HOOKYARD_SKIP_PLUGIN_BUILD");
    if std::env::var_os("HOOKYARD_SKIP_PLUGIN_BUILD").is_some_and(|v| v != "0") {
        return;
    }
    let plugins = Path::new("../plugins");
    if !plugins.join("Cargo.toml").exists() {
        // Built outside the repository (a published crate): no examples.
        return;
    }
    watch_plugin_sources(plugins);
    ensure_wasm_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(plugins);
    // What the outer build set for the host must not leak into the wasm build.
    for var in outer_build_env::OUTER_BUILD_VARS {
        build.env_remove(var);
    }
    match build.output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().take(5).collect::<Vec<_>>();
            for line in last.into_iter().rev() {
                println!("cargo:warning=example plugins: {line}");
            }
            println!("cargo:warning=building plugins/ failed; router.toml's plugins will not load until it builds");
        }
        Err(error) => {
            println!("cargo:warning=could not run cargo for plugins/: {error}");
        }
    }
}

/// Adds the `wasm32-wasip2` target when the toolchain lacks it.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if libdir.is_some_and(|dir| Path::new(&dir).exists()) {
        return;
    }
    println!(
        "cargo:warning=adding the wasm32-wasip2 target (named by rust-toolchain.toml) with rustup"
    );
    match Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => println!(
            "cargo:warning=rustup target add wasm32-wasip2 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(error) => println!("cargo:warning=could not run rustup: {error}"),
    }
}

/// Reruns when a plugin, the SDK or the WIT changes; not on `plugins/target`,
/// which this build writes (watching it would rerun every build).
fn watch_plugin_sources(plugins: &Path) {
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", plugins.join(file).display());
    }
    if let Ok(entries) = std::fs::read_dir(plugins) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=../guest-sdk");
    println!("cargo:rerun-if-changed=../wit");
}
