//! The example plugins, built from source for the tests (once per test
//! process, with the toolchain's wasm32-wasip2 target).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The repository's `plugins/` workspace.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

/// Builds every example plugin in release mode and returns the path of
/// `<name>.wasm` (crate name with `_`). Panics with cargo's output if the
/// build fails.
pub fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(workspace())
            // The outer `cargo test` may point these at the host build.
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo for plugins/");
        assert!(
            out.status.success(),
            "building plugins/ failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    workspace()
        .join("target/wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")))
}
