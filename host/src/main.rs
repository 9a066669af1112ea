//! The `hookyard` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
