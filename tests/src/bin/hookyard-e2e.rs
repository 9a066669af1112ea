//! The real `hookyard` CLI, built inside the test crate so the end-to-end
//! tests run exactly the code users run (see `hookyard_tests::process::bin`).

/// The same allocator as the shipped binary (`host/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
