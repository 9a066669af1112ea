//! The `hookyard` binary: everything is in the library's `cli` module.

/// mimalloc instead of glibc malloc: the ingest path allocates per request
/// from several threads (bodies, headers, JSON), and glibc's arenas showed
/// up as a tenth of the router's CPU in `bench/` profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
