//! Variables an outer cargo build sets for the host that must not leak
//! into the nested wasm32-wasip2 build of `plugins/`: a target dir, target
//! or flags meant for the host, and CI's clippy wrapper (see `.ci/run`).
//! Shared by `host/build.rs`, the tests' plugin builds
//! (`tests/src/plugins.rs`) and `plugin-bench` (both through `#[path]`), so
//! every build of `plugins/` sees the same environment and none
//! invalidates another's artefacts.

/// Removed from the nested build's environment.
pub(crate) const OUTER_BUILD_VARS: [&str; 6] = [
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
];
