//! The on-disk cache of compiled plugins, so a restart maps machine code
//! instead of compiling every plugin again (seconds for a Python one).
//!
//! An entry is `<dir>/<sha256 of the wasm>-<engine>.cwasm`, the bytes of
//! `Component::serialize`, beside `<same>.cwasm.sha256`, the SHA-256 of
//! those bytes. `<engine>` hashes `Engine::precompile_compatibility_hash`,
//! which covers the wasmtime version, the target CPU's features and every
//! setting that changes generated code (fuel, epochs, memory reservation),
//! so a different build or configuration never sees another's files.
//!
//! Files are written to a temporary name and renamed into place, so a
//! reader never sees half a file; write failures are logged and otherwise
//! ignored (the next load compiles again). An entry that is missing its
//! checksum, does not match it, or that wasmtime refuses is compiled again
//! and replaced. Nothing is evicted: entries of plugin versions or engine
//! settings no longer in use stay until removed by hand (any file may be
//! deleted at any time; it is then a miss).

use std::fs;
use std::hash::Hasher;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// Bumped when the layout of an entry changes, so old entries are ignored.
const FORMAT: &str = "hookyard-cwasm-1";

/// A cache directory for one engine configuration.
#[derive(Debug)]
pub(super) struct CompiledCache {
    dir: PathBuf,
    /// Hex digest of the engine's compatibility hash and [`FORMAT`].
    engine: String,
}

/// Feeds `Hash` output into SHA-256: the same engine gives the same key in
/// every process and Rust version (std's `DefaultHasher` promises neither).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl CompiledCache {
    /// The cache in `dir` for components compiled by `engine`.
    pub(super) fn new(dir: PathBuf, engine: &Engine) -> Self {
        use std::hash::Hash;
        let mut hasher = Sha256Hasher(Sha256::new());
        FORMAT.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        // 64 bits tell configurations apart; the name stays readable.
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Self {
            dir,
            engine: engine_key,
        }
    }

    /// The entry for the wasm whose SHA-256 is `wasm_sha256` (hex).
    pub(super) fn path(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine))
    }

    /// The component for `wasm`, from the cache when it has a good entry
    /// (`true`) or compiled and then stored (`false`).
    pub(super) fn load(
        &self,
        engine: &Engine,
        wasm_sha256: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, bool)> {
        let path = self.path(wasm_sha256);
        match read(engine, &path) {
            Ok(Some(component)) => return Ok((component, true)),
            Ok(None) => {}
            Err(error) => tracing::warn!(
                path = %path.display(),
                error = format!("{error:#}"),
                "Cached plugin is unusable; compiling it again."
            ),
        }
        let component = Component::new(engine, wasm)?;
        if let Err(error) = write(&self.dir, &path, &component) {
            tracing::warn!(
                path = %path.display(),
                error = format!("{error:#}"),
                "Could not cache the compiled plugin; the next load compiles it again."
            );
        }
        Ok((component, false))
    }
}

/// The checksum file beside `entry`.
fn checksum_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// The component stored at `path`, `None` if there is no complete entry.
fn read(engine: &Engine, path: &Path) -> wasmtime::Result<Option<Component>> {
    let expected = match fs::read_to_string(checksum_path(path)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    if hex::encode(Sha256::digest(&bytes)) != expected.trim() {
        wasmtime::bail!("the file does not match its checksum");
    }
    drop(bytes);
    // SAFETY: `deserialize_file` maps the file and runs its machine code
    // unchecked, so it must hold what `Component::serialize` wrote and not
    // change while mapped. Both hold here: the directory is the router's own
    // (`RuntimeOptions::cache_dir`); its files are only ever written by
    // `write` below, whole, under a temporary name and then renamed, so a
    // file at this path is never modified in place (a rename leaves an
    // existing mapping on the old file); and the bytes were just checked
    // against the SHA-256 recorded when they were written, which catches a
    // truncated, damaged or foreign file. Wasmtime itself refuses a file
    // from another version or configuration.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize_file(engine, path)? };
    Ok(Some(component))
}

/// Stores `component` at `path` (in `dir`), then its checksum.
fn write(dir: &Path, path: &Path, component: &Component) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    fs::create_dir_all(dir)?;
    replace(dir, path, &bytes)?;
    // The checksum goes last: until it is there, the entry is a miss.
    replace(
        dir,
        &checksum_path(path),
        hex::encode(Sha256::digest(&bytes)).as_bytes(),
    )?;
    Ok(())
}

/// Writes `bytes` to a new file in `dir` and renames it to `path`.
fn replace(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    // On disk before the name is: after a crash the entry is whole or absent.
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
