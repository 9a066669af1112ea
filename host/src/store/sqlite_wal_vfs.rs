//! A SQLite VFS for the writer's connection that gathers the WAL frames of
//! one commit into one `pwrite`, instead of SQLite's two per frame.
//!
//! Why: SQLite appends each WAL frame as two writes (its 24-byte header,
//! then the page). On this machine's virtual disk a `pwrite` costs
//! ~1.5-3.5 µs of kernel time whatever its size, so a commit of 30 frames
//! spent ~60 of them on a job one call does (measured by hand: 2.8-4.7 µs
//! per frame as two writes, 1.0 µs as part of one). The ingest path writes
//! ~1.5 frames per event and the whole delivery path 6-9.
//!
//! How, and why it is safe: this VFS wraps the default one (`unix`). For
//! a WAL file it keeps consecutive writes in a buffer and writes them out
//! as one call before anything that could observe the file: a read, a
//! size or truncate, a sync, a close, or a write elsewhere in the file.
//! The writer runs `synchronous = FULL`, so SQLite syncs the WAL at every
//! COMMIT *before* it publishes the new frames in the wal-index (where
//! other connections look for them): that sync is where a commit's frames
//! reach the kernel, and a failure there fails the COMMIT, as any write
//! error does. The sync itself is not done here: [`super::wal_sync`]'s
//! thread makes it, pipelined, before any waiter is answered (under
//! `synchronous = "normal"` nobody does, which is what NORMAL means).
//! Checkpoints must still sync the WAL before they copy it into the
//! database file: the connection sets `checkpoint_fullfsync`, which makes
//! SQLite ask for those syncs as `SQLITE_SYNC_FULL`, and only those are
//! made: by the fsync thread's next fsync while one runs for this WAL
//! ([`super::checkpoint_sync`]), else here. Every other file (the
//! database, the shared memory, temp files) goes straight to `unix`, but
//! for one hint: when a checkpoint's copy into the database file ends, that
//! file's writeback is started ([`super::db_writeback`]), so the fsync
//! that lets the WAL restart does not arrive as one burst.
//!
//! The writer's connection and the checkpointer's use this VFS (by name,
//! at open), both with `checkpoint_fullfsync`; the checkpointer writes no
//! frames, so for it only the checkpoint syncs change. Readers use `unix`
//! and see the WAL only through what the wal-index publishes.

#![allow(
    unsafe_code,
    reason = "a SQLite VFS is a table of C callbacks over raw file objects; \
              each function states what it relies on"
)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use std::os::unix::ffi::OsStrExt;

use rusqlite::ffi;

use super::checkpoint_sync::{self, Waited};
use super::db_writeback;

/// The name connections open this VFS by.
pub(super) const NAME: &str = "hookyard-wal-batch";
const NAME_C: &CStr = c"hookyard-wal-batch";

/// A buffer past this size is written out even before a sync: a large
/// transaction that spills pages must not grow memory without bound.
const FLUSH_AT_BYTES: usize = 8 << 20;
/// Capacity kept between commits (a typical commit is well under it).
const KEEP_CAPACITY: usize = 1 << 20;
/// Most bytes handed to the unix VFS in one write: it masks a write's
/// length with 0x1ffff (`seekAndWriteFd`), so a longer one would be cut
/// short (and one of exactly 128 KiB would write nothing and report the
/// disk full). 124 KiB: whole pages, under the mask.
const MAX_WRITE_BYTES: usize = 124 << 10;

/// Registers the VFS (once per process) and returns its name, or SQLite's
/// error code if there is no default VFS to wrap or registration failed.
pub(super) fn register() -> Result<&'static str, c_int> {
    static REGISTERED: OnceLock<Result<(), c_int>> = OnceLock::new();
    REGISTERED.get_or_init(register_once).map(|()| NAME)
}

fn register_once() -> Result<(), c_int> {
    // SAFETY: sqlite3_vfs_find initialises SQLite if needed and returns the
    // default VFS, which lives for the whole process.
    let base = unsafe { ffi::sqlite3_vfs_find(std::ptr::null()) };
    if base.is_null() {
        return Err(ffi::SQLITE_ERROR);
    }
    // SAFETY: `base` is a valid registered VFS (checked non-null above).
    let base_ref = unsafe { &*base };
    let vfs = Box::new(ffi::sqlite3_vfs {
        iVersion: base_ref.iVersion.min(3),
        szOsFile: c_int::try_from(SHIM_SIZE).unwrap_or(c_int::MAX) + base_ref.szOsFile,
        mxPathname: base_ref.mxPathname,
        pNext: std::ptr::null_mut(),
        zName: NAME_C.as_ptr(),
        pAppData: base.cast(),
        xOpen: Some(open),
        xDelete: Some(delete),
        xAccess: Some(access),
        xFullPathname: Some(full_pathname),
        xDlOpen: Some(dl_open),
        xDlError: Some(dl_error),
        xDlSym: Some(dl_sym),
        xDlClose: Some(dl_close),
        xRandomness: Some(randomness),
        xSleep: Some(sleep),
        xCurrentTime: Some(current_time),
        xGetLastError: Some(get_last_error),
        xCurrentTimeInt64: Some(current_time_int64),
        xSetSystemCall: None,
        xGetSystemCall: None,
        xNextSystemCall: None,
    });
    // SAFETY: the VFS is leaked, so it outlives every connection; SQLite
    // keeps the pointer in its list. 0: not the default VFS.
    let rc = unsafe { ffi::sqlite3_vfs_register(Box::into_raw(vfs), 0) };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rc)
    }
}

/// What SQLite allocates for each file of this VFS: this header, then the
/// wrapped VFS's own file object (at [`SHIM_SIZE`], 8-aligned).
#[repr(C)]
struct ShimFile {
    /// Must come first: SQLite sees a `sqlite3_file*`.
    base: ffi::sqlite3_file,
    /// The wrapped VFS's file, inside the same allocation.
    real: *mut ffi::sqlite3_file,
    /// Write buffer; non-null only for WAL files.
    pending: *mut Pending,
    /// The main database file's descriptor in the unix VFS, for the
    /// writeback hint at the end of a checkpoint; -1 for other files.
    db_fd: c_int,
}

/// Size of [`ShimFile`] rounded up to 8, where the wrapped file starts.
const SHIM_SIZE: usize = std::mem::size_of::<ShimFile>().div_ceil(8) * 8;

/// A WAL file's state: consecutive writes not yet made, starting at file
/// offset `start`, and the file's canonical path, by which a checkpoint's
/// sync finds the sync thread of this WAL (`None`: it could not be
/// resolved at open, and such syncs are made here).
struct Pending {
    start: i64,
    data: Vec<u8>,
    canonical: Option<std::path::PathBuf>,
}

// What a test can count, per thread: WAL writes SQLite asked for, and
// flushes that wrote them out.
#[cfg(test)]
thread_local! {
    pub(super) static WAL_WRITES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    pub(super) static FLUSHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// The wrapped VFS, from our VFS's app data.
///
/// SAFETY (caller): `vfs` is this module's registered VFS.
unsafe fn base_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData.cast()
}

/// The wrapped file and its methods.
///
/// SAFETY (caller): `file` was opened by [`open`] successfully (SQLite calls
/// io methods only on such files), so `real` is an open file of the base VFS.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let real = (*file.cast::<ShimFile>()).real;
    (real, &*(*real).pMethods)
}

/// Writes out a WAL file's buffered writes as one write; no-op for other
/// files or an empty buffer. The buffer is emptied either way: after a
/// failed write SQLite abandons the transaction, and its frames are
/// rewritten by the next one.
///
/// SAFETY (caller): as for [`real`].
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    let pending = (*file.cast::<ShimFile>()).pending;
    if pending.is_null() || (*pending).data.is_empty() {
        return ffi::SQLITE_OK;
    }
    let pending = &mut *pending;
    let (real, methods) = real(file);
    let Some(write) = methods.xWrite else {
        pending.data.clear();
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut rc = ffi::SQLITE_OK;
    let mut offset = pending.start;
    for chunk in pending.data.chunks(MAX_WRITE_BYTES) {
        // Both fit: a chunk is under 128 KiB.
        let len = chunk.len() as c_int;
        rc = write(real, chunk.as_ptr().cast(), len, offset);
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += len as i64;
    }
    #[cfg(test)]
    FLUSHES.with(|n| n.set(n.get() + 1));
    pending.data.clear();
    if pending.data.capacity() > KEEP_CAPACITY {
        pending.data.shrink_to(KEEP_CAPACITY);
    }
    rc
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let base = base_vfs(vfs);
    let shim = file.cast::<ShimFile>();
    // SQLite allocated szOsFile bytes: our header, then the base's file.
    let real = file.cast::<u8>().add(SHIM_SIZE).cast::<ffi::sqlite3_file>();
    (*shim).base.pMethods = std::ptr::null();
    (*shim).real = real;
    (*shim).pending = std::ptr::null_mut();
    (*shim).db_fd = -1;
    let Some(base_open) = (*base).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let rc = base_open(base, name, real, flags, out_flags);
    if (*real).pMethods.is_null() {
        // Ours stays null too: SQLite will not call xClose.
        return rc;
    }
    // A failed open that left a file object still gets xClose (SQLite's
    // contract), which must reach the wrapped file; it gets no buffer.
    if rc == ffi::SQLITE_OK && flags & ffi::SQLITE_OPEN_WAL != 0 {
        let canonical = (!name.is_null())
            .then(|| {
                let path = std::ffi::OsStr::from_bytes(CStr::from_ptr(name).to_bytes());
                std::fs::canonicalize(path).ok()
            })
            .flatten();
        (*shim).pending = Box::into_raw(Box::new(Pending {
            start: 0,
            data: Vec::new(),
            canonical,
        }));
    }
    if rc == ffi::SQLITE_OK
        && flags & ffi::SQLITE_OPEN_MAIN_DB != 0
        && !name.is_null()
        && CStr::from_ptr((*base).zName) == c"unix"
    {
        (*shim).db_fd = db_writeback::unix_fd(real, CStr::from_ptr(name)).unwrap_or(-1);
    }
    (*shim).base.pMethods = &METHODS;
    rc
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let shim = file.cast::<ShimFile>();
    if !(*shim).pending.is_null() {
        drop(Box::from_raw((*shim).pending));
        (*shim).pending = std::ptr::null_mut();
    }
    let (real, methods) = real(file);
    let closed = methods.xClose.map_or(ffi::SQLITE_OK, |f| f(real));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods
        .xRead
        .map_or(ffi::SQLITE_IOERR_READ, |f| f(real, buf, amount, offset))
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    let pending = (*file.cast::<ShimFile>()).pending;
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    if pending.is_null() {
        let (real, methods) = real(file);
        return methods
            .xWrite
            .map_or(ffi::SQLITE_IOERR_WRITE, |f| f(real, buf, amount, offset));
    }
    #[cfg(test)]
    WAL_WRITES.with(|n| n.set(n.get() + 1));
    let contiguous = {
        let p = &*pending;
        i64::try_from(p.data.len()).is_ok_and(|n| p.start + n == offset)
    };
    if !contiguous {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        (*pending).start = offset;
    }
    (*pending)
        .data
        .extend_from_slice(std::slice::from_raw_parts(buf.cast::<u8>(), len));
    if (*pending).data.len() >= FLUSH_AT_BYTES {
        return flush(file);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods
        .xTruncate
        .map_or(ffi::SQLITE_IOERR_TRUNCATE, |f| f(real, size))
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    // A WAL's commit-time sync (SQLITE_SYNC_NORMAL) stops at the kernel:
    // the fsync thread makes it durable before anyone is answered. A
    // checkpoint's (SQLITE_SYNC_FULL, from checkpoint_fullfsync) is the
    // fsync thread's next fsync when one runs for this WAL (see
    // `checkpoint_sync`), else made here. Every other file's sync goes
    // through.
    let pending = (*file.cast::<ShimFile>()).pending;
    if !pending.is_null() {
        if flags & 0x0f != ffi::SQLITE_SYNC_FULL {
            return ffi::SQLITE_OK;
        }
        if let Some(wal) = &(*pending).canonical {
            match checkpoint_sync::wait_for_sync(wal) {
                Waited::Synced => return ffi::SQLITE_OK,
                Waited::Failed => return ffi::SQLITE_IOERR_FSYNC,
                Waited::NoThread => {}
            }
        }
    }
    let (real, methods) = real(file);
    methods
        .xSync
        .map_or(ffi::SQLITE_IOERR_FSYNC, |f| f(real, flags))
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    methods
        .xFileSize
        .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(real, size))
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (real, methods) = real(file);
    methods
        .xLock
        .map_or(ffi::SQLITE_IOERR_LOCK, |f| f(real, level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let (real, methods) = real(file);
    methods
        .xUnlock
        .map_or(ffi::SQLITE_IOERR_UNLOCK, |f| f(real, level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let (real, methods) = real(file);
    methods
        .xCheckReservedLock
        .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f| f(real, out))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    // Whatever the control does (size hints, persistence), it sees the file
    // as written.
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let db_fd = (*file.cast::<ShimFile>()).db_fd;
    if op == ffi::SQLITE_FCNTL_CKPT_DONE && db_fd >= 0 {
        db_writeback::start(db_fd);
    }
    let (real, methods) = real(file);
    methods
        .xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |f| f(real, op, arg))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let (real, methods) = real(file);
    methods.xSectorSize.map_or(4096, |f| f(real))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let (real, methods) = real(file);
    methods.xDeviceCharacteristics.map_or(0, |f| f(real))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (real, methods) = real(file);
    methods.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |f| {
        f(real, page, page_size, extend, out)
    })
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    let (real, methods) = real(file);
    methods
        .xShmLock
        .map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| f(real, offset, n, flags))
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    let (real, methods) = real(file);
    if let Some(f) = methods.xShmBarrier {
        f(real);
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let (real, methods) = real(file);
    methods
        .xShmUnmap
        .map_or(ffi::SQLITE_OK, |f| f(real, delete))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return rc;
    }
    let (real, methods) = real(file);
    match methods.xFetch {
        Some(f) => f(real, offset, amount, out),
        None => {
            *out = std::ptr::null_mut();
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    page: *mut c_void,
) -> c_int {
    let (real, methods) = real(file);
    methods
        .xUnfetch
        .map_or(ffi::SQLITE_OK, |f| f(real, offset, page))
}

// The VFS-level calls go to the wrapped VFS unchanged.

unsafe extern "C" fn delete(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    sync_dir: c_int,
) -> c_int {
    let base = base_vfs(vfs);
    (*base)
        .xDelete
        .map_or(ffi::SQLITE_IOERR_DELETE, |f| f(base, name, sync_dir))
}

unsafe extern "C" fn access(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    flags: c_int,
    out: *mut c_int,
) -> c_int {
    let base = base_vfs(vfs);
    (*base)
        .xAccess
        .map_or(ffi::SQLITE_IOERR_ACCESS, |f| f(base, name, flags, out))
}

unsafe extern "C" fn full_pathname(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let base = base_vfs(vfs);
    (*base)
        .xFullPathname
        .map_or(ffi::SQLITE_CANTOPEN, |f| f(base, name, n, out))
}

unsafe extern "C" fn dl_open(vfs: *mut ffi::sqlite3_vfs, name: *const c_char) -> *mut c_void {
    let base = base_vfs(vfs);
    (*base)
        .xDlOpen
        .map_or(std::ptr::null_mut(), |f| f(base, name))
}

unsafe extern "C" fn dl_error(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) {
    let base = base_vfs(vfs);
    if let Some(f) = (*base).xDlError {
        f(base, n, out);
    }
}

unsafe extern "C" fn dl_sym(
    vfs: *mut ffi::sqlite3_vfs,
    handle: *mut c_void,
    symbol: *const c_char,
) -> Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)> {
    let base = base_vfs(vfs);
    (*base).xDlSym.and_then(|f| f(base, handle, symbol))
}

unsafe extern "C" fn dl_close(vfs: *mut ffi::sqlite3_vfs, handle: *mut c_void) {
    let base = base_vfs(vfs);
    if let Some(f) = (*base).xDlClose {
        f(base, handle);
    }
}

unsafe extern "C" fn randomness(vfs: *mut ffi::sqlite3_vfs, n: c_int, out: *mut c_char) -> c_int {
    let base = base_vfs(vfs);
    (*base).xRandomness.map_or(0, |f| f(base, n, out))
}

unsafe extern "C" fn sleep(vfs: *mut ffi::sqlite3_vfs, micros: c_int) -> c_int {
    let base = base_vfs(vfs);
    (*base).xSleep.map_or(0, |f| f(base, micros))
}

unsafe extern "C" fn current_time(vfs: *mut ffi::sqlite3_vfs, out: *mut f64) -> c_int {
    let base = base_vfs(vfs);
    (*base)
        .xCurrentTime
        .map_or(ffi::SQLITE_ERROR, |f| f(base, out))
}

unsafe extern "C" fn get_last_error(
    vfs: *mut ffi::sqlite3_vfs,
    n: c_int,
    out: *mut c_char,
) -> c_int {
    let base = base_vfs(vfs);
    (*base).xGetLastError.map_or(0, |f| f(base, n, out))
}

unsafe extern "C" fn current_time_int64(vfs: *mut ffi::sqlite3_vfs, out: *mut i64) -> c_int {
    let base = base_vfs(vfs);
    (*base)
        .xCurrentTimeInt64
        .map_or(ffi::SQLITE_ERROR, |f| f(base, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection through this VFS, set up as the writer's is.
    fn writer(path: &std::path::Path, autocheckpoint: u32) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags_and_vfs(
            path,
            rusqlite::OpenFlags::default(),
            register().unwrap(),
        )
        .unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
             PRAGMA checkpoint_fullfsync = ON; PRAGMA wal_autocheckpoint = {autocheckpoint}; \
             CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, body BLOB);"
        ))
        .unwrap();
        conn
    }

    fn flushes() -> u64 {
        FLUSHES.with(std::cell::Cell::get)
    }

    fn wal_writes() -> u64 {
        WAL_WRITES.with(std::cell::Cell::get)
    }

    /// The point of the VFS: a commit's frames (two writes each from
    /// SQLite) reach the file in one go (one write per 124 KiB), whole:
    /// this commit is ~250 KB, past the unix VFS's per-write limit.
    #[test]
    fn a_commit_of_many_frames_is_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = writer(&dir.path().join("one.db"), 1000);
        let (before, asked_before) = (flushes(), wal_writes());
        let tx = conn.transaction().unwrap();
        for i in 0..100 {
            tx.execute(
                "INSERT INTO t (k, body) VALUES (?1, ?2)",
                rusqlite::params![format!("key-{i}"), vec![b'x'; 2000]],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let frames: i64 = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .unwrap();
        // ~60 table and index pages: ~120 writes without the VFS.
        assert!(frames >= 50, "only {frames} frames written");
        let (writes, asked) = (flushes() - before, wal_writes() - asked_before);
        assert!(asked >= 2 * 50, "SQLite asked for only {asked} WAL writes");
        assert!(
            (1..=2).contains(&writes),
            "{asked} WAL writes of {frames} frames took {writes} flushes"
        );
        let (rows, bytes): (i64, i64) = rusqlite::Connection::open(dir.path().join("one.db"))
            .unwrap()
            .query_row("SELECT COUNT(*), SUM(LENGTH(body)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((rows, bytes), (100, 200_000));
    }

    /// Every commit is in the file, whole, by the time COMMIT returns: a
    /// reader on the default VFS sees each one at once, also across WAL
    /// restarts (checkpoints every few commits), and the file stays sound.
    #[test]
    fn readers_see_every_commit_as_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("readers.db");
        let mut conn = writer(&path, 20);
        let reader = rusqlite::Connection::open(&path).unwrap();
        for i in 0..300 {
            let tx = conn.transaction().unwrap();
            for j in 0..3 {
                tx.execute(
                    "INSERT INTO t (k, body) VALUES (?1, ?2)",
                    rusqlite::params![format!("key-{i}-{j}"), vec![(i % 251) as u8; 1500]],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            let (rows, last): (i64, Vec<u8>) = reader
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM t), (SELECT body FROM t ORDER BY id DESC LIMIT 1)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(rows, (i + 1) * 3);
            assert_eq!(last, vec![(i % 251) as u8; 1500]);
        }
        drop(conn);
        let check: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// The end of a checkpoint's copy starts the database file's writeback,
    /// on the descriptor found (and checked) at open; commits alone do not.
    #[test]
    fn a_checkpoint_starts_the_database_files_writeback() {
        let hints = || db_writeback::HINTS.with(std::cell::Cell::get);
        let dir = tempfile::tempdir().unwrap();
        // 0: no automatic checkpoint, so only the one asked for below runs.
        let mut conn = writer(&dir.path().join("writeback.db"), 0);
        let before = hints();
        for i in 0..50 {
            let tx = conn.transaction().unwrap();
            tx.execute(
                "INSERT INTO t (k, body) VALUES (?1, ?2)",
                rusqlite::params![format!("key-{i}"), vec![b'w'; 3000]],
            )
            .unwrap();
            tx.commit().unwrap();
        }
        assert_eq!(hints(), before, "a commit gave a writeback hint");
        let (busy, frames, copied): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            (busy, copied),
            (0, frames),
            "the checkpoint copied every frame"
        );
        assert_eq!(hints(), before + 1);
    }

    /// A transaction that spills pages before its commit, and then commits:
    /// the spilled frames are read back and rewritten through the buffer.
    #[test]
    fn a_transaction_larger_than_the_page_cache_commits_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill.db");
        let mut conn = writer(&path, 1000);
        conn.execute_batch("PRAGMA cache_size = 10").unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..2000 {
            tx.execute(
                "INSERT INTO t (k, body) VALUES (?1, ?2)",
                rusqlite::params![format!("key-{i}"), vec![b'y'; 3000]],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        drop(conn);
        let reader = rusqlite::Connection::open(&path).unwrap();
        let (rows, bytes, check): (i64, i64, String) = reader
            .query_row(
                "SELECT COUNT(*), SUM(LENGTH(body)), (SELECT integrity_check FROM pragma_integrity_check) FROM t",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!((rows, bytes, check.as_str()), (2000, 6_000_000, "ok"));
    }
}
