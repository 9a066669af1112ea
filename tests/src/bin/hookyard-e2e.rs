//! The real `hookyard` CLI, built inside the test crate so the end-to-end
//! tests run exactly the code users run (see `hookyard_tests::process::bin`).

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
