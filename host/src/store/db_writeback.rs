//! Starts the database file's writeback at the end of every checkpoint, so
//! that the fsync SQLite makes when a checkpoint reaches the end of the WAL
//! has little left to write.
//!
//! Why: the checkpointer copies WAL frames into the database file every
//! 100 rows, but SQLite syncs the database file only when a checkpoint has
//! copied the whole WAL (then the WAL may restart), a few times a second
//! under load. With 24 GiB of RAM the kernel's own writeback waits 30 s,
//! so each of those fsyncs wrote everything copied since the last one
//! (~1 MB, 8.7 ms on average, up to 25 ms), and the WAL's commit fsyncs
//! queued behind it on the disk: every waiting webhook's answer with them.
//! Measured with `perf trace` at c64: WAL `fdatasync`s up to 19.5 ms with
//! the burst, 8 ms without; the database fsync 2.8 ms on average. p99 ack
//! latency halved (bench/README.md, "The database file's writeback").
//!
//! How: `sync_file_range(SYNC_FILE_RANGE_WRITE)` on the whole file when a
//! checkpoint's copy ends (`SQLITE_FCNTL_CKPT_DONE`, which SQLite sends to
//! the database file of the checkpointing connection). It only starts
//! writing dirty pages and waits for nothing; durability is unchanged:
//! SQLite still syncs the file before the WAL can restart, and a failed
//! write surfaces there.
//!
//! The descriptor is the unix VFS's own (`unixFile.h`, the fourth field of
//! SQLite's private file struct): another descriptor of the file would
//! drop this process's POSIX locks on it when closed. It is used only
//! after checking that it names the file SQLite opened (same device and
//! inode); otherwise no hint is given.

#![allow(
    unsafe_code,
    reason = "reads the descriptor out of SQLite's unix file object and makes \
              one syscall on it; each block states what it relies on"
)]

use std::ffi::{c_int, c_void, CStr, OsStr};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rusqlite::ffi;

// The WAL sync thread's check of the same thing: device and inode of a
// path, asking for nothing else.
use super::wal_sync::identity_of;

/// The leading fields of SQLite's `struct unixFile` (os_unix.c), up to
/// the descriptor. Stable since SQLite 3.7; checked at every open anyway.
#[repr(C)]
struct UnixFilePrefix {
    methods: *const c_void,
    vfs: *mut c_void,
    inode: *mut c_void,
    fd: c_int,
}

// Hints given, per thread, for tests.
#[cfg(test)]
thread_local! {
    pub(super) static HINTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The descriptor of a database file the unix VFS just opened as `name`,
/// or `None` when it cannot be confirmed to be that file.
///
/// SAFETY (caller): `real` is a file the `unix` VFS opened successfully
/// (so it is a `unixFile` and stays open while the caller uses the
/// result), and `name` is the path it was opened by.
pub(super) unsafe fn unix_fd(real: *mut ffi::sqlite3_file, name: &CStr) -> Option<c_int> {
    let fd = (*real.cast::<UnixFilePrefix>()).fd;
    if fd < 0 {
        return None;
    }
    // SAFETY: if the layout matched, `fd` is open for the file's lifetime;
    // if not, fstat on an arbitrary number fails or names another file,
    // and either way the value is rejected below without other use.
    let opened = rustix::fs::fstat(BorrowedFd::borrow_raw(fd)).ok()?;
    let named = identity_of(Path::new(OsStr::from_bytes(name.to_bytes()))).ok()?;
    (named == (opened.st_dev, opened.st_ino)).then_some(fd)
}

/// Starts writeback of the file's dirty pages without waiting for it. A
/// hint: failures are ignored (the checkpoint's own fsync reports them).
pub(super) fn start(fd: c_int) {
    #[cfg(test)]
    HINTS.with(|n| n.set(n.get() + 1));
    // SAFETY: `fd` came from `unix_fd` for a file that is still open (the
    // caller is one of that file's io methods); the call reads no memory.
    unsafe {
        libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database file's `sqlite3_file` of a plain connection (unix VFS).
    fn main_file(conn: &rusqlite::Connection) -> *mut ffi::sqlite3_file {
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        // SAFETY: a live connection's handle; FILE_POINTER writes the
        // pointer to the main database's file object into `file`.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                std::ptr::from_mut(&mut file).cast(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        file
    }

    /// The descriptor read out of SQLite's file object is the database
    /// file's; the same object checked against another path is refused.
    #[test]
    fn the_descriptor_is_taken_only_when_it_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fd.db");
        let other = dir.path().join("other.db");
        std::fs::write(&other, b"").unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        let file = main_file(&conn);
        let name = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: `file` is the unix VFS's open file of `conn`, alive here.
        let fd = unsafe { unix_fd(file, &name(&path)) }.expect("the database's descriptor");
        // SAFETY: as above; `fd` is open while `conn` is.
        let stat = rustix::fs::fstat(unsafe { BorrowedFd::borrow_raw(fd) }).unwrap();
        assert_eq!(stat.st_ino, rustix::fs::stat(&path).unwrap().st_ino);
        // SAFETY: as above.
        assert_eq!(unsafe { unix_fd(file, &name(&other)) }, None);
    }
}
