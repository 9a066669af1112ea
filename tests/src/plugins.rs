//! The example plugins, built from source for the tests (once per test
//! process): the Rust ones with the toolchain's wasm32-wasip2 target, the
//! Python and JavaScript routers of `examples/` with their own tools.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[path = "../../host/outer_build_env.rs"]
mod outer_build_env;

/// The repository's `plugins/` workspace.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Builds every example plugin in release mode and returns the path of
/// `<name>.wasm` (crate name with `_`). Panics with cargo's output if the
/// build fails.
pub fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--release", "--target", "wasm32-wasip2"])
            .current_dir(workspace());
        // The outer `cargo test` may point these at the host build (CI sets
        // the flags and a clippy wrapper); the same list as host/build.rs.
        for var in outer_build_env::OUTER_BUILD_VARS {
            build.env_remove(var);
        }
        let out = build.output().expect("run cargo for plugins/");
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

/// Builds `examples/python-router` with componentize-py (on `PATH`, from
/// its `requirements.txt`) and returns the path of `python_router.wasm`.
/// Panics with the tool's output if it is missing or the build fails.
pub fn python_router() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = examples().join("python-router");
            build(&dir, "python_router.wasm", |out| {
                let mut command = Command::new("componentize-py");
                command
                    .args(["-d", "../../wit", "-w", "plugin"])
                    .args(["componentize", "app", "-o"])
                    .arg(out);
                command
            })
        })
        .clone()
}

/// Builds `examples/js-router` with its pinned ComponentizeJS (installed by
/// `npm ci` there) and returns the path of `js_router.wasm`. Panics with the
/// tool's output if it is missing or the build fails.
pub fn js_router() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = examples().join("js-router");
            build(&dir, "js_router.wasm", |out| {
                // The same command as package.json's `build` script, with
                // its own output file.
                let mut command = Command::new(dir.join("node_modules/.bin/componentize-js"));
                command
                    .args(["router.js", "--wit", "../../wit", "--world-name", "plugin"])
                    .args(["--disable", "http", "fetch-event", "--out"])
                    .arg(out);
                command
            })
        })
        .clone()
}

/// Runs the command that `tool` makes for an output file in `dir`, into a
/// file of this process's own, then renames it to `name`: test processes
/// building at the same time never read a half-written component.
fn build(dir: &Path, name: &str, tool: impl FnOnce(&Path) -> Command) -> PathBuf {
    let target = dir.join(name);
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let mut command = tool(&partial);
    let described = format!("{command:?}");
    let out: Output = command.current_dir(dir).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {described} in {}: {e} (see its README)",
            dir.display()
        )
    });
    assert!(
        out.status.success() && partial.exists(),
        "{described} in {} failed ({}):\n{}\n{}",
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &target)
        .unwrap_or_else(|e| panic!("rename {} to {name}: {e}", partial.display()));
    target
}

/// `base` with a custom section carrying `n` appended: the same plugin,
/// behaving the same, with another hash (a new version), as a hot
/// reload test writes it.
pub fn version_bytes(base: &[u8], n: u32) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"hookyard-test-version";
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(&n.to_le_bytes());
    let mut out = base.to_vec();
    out.push(0); // custom section
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}
