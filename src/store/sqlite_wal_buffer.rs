//! The writer's SQLite VFS: the default `unix` VFS, except that writes to the WAL are gathered
//! in memory and reach the file in a few large writes (120 KiB each) when SQLite syncs it.
//!
//! Why: SQLite writes each WAL frame as two `pwrite`s (a 24-byte header, then the page), so a
//! commit of ~77 frames made ~150 system calls, and the kernel prepared and dirtied each 4 KiB
//! page of the WAL up to three times (a frame's header and page straddle two pages). That was a
//! quarter of the writer thread's CPU in the ingest benchmark (`bench/results/writer-commit.md`).
//!
//! Why it keeps every promise: nothing written to the WAL counts before SQLite syncs it, and the
//! sync writes the gathered bytes first. The writer runs with `synchronous = FULL`, where SQLite
//! syncs the WAL at every commit BEFORE it publishes the commit in the wal-index, so no reader
//! (another connection, or another process) can look for a frame that is still only in memory.
//! Every other operation on the WAL that could observe its contents or size (read, size,
//! truncate, close, a write that is not an append) writes the gathered bytes first. A crash
//! loses exactly what SQLite would have lost: an unsynced tail that no commit covers.
//!
//! Only the writer's own connection uses this VFS; every other connection uses `unix`, which
//! reads and locks the same files the same way.

use rusqlite::ffi;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The name connections open the VFS by.
pub(crate) const NAME: &CStr = c"mailroom-wal-buffer";

/// Past this many gathered bytes the buffer is written out even before a sync (a commit of
/// large messages), so its memory stays bounded.
const MAX_BUFFERED: usize = 4 << 20;

struct Registered {
    /// The `unix` VFS every call ends in.
    unix: *mut ffi::sqlite3_vfs,
}
// SAFETY: SQLite's VFS objects are global and used from any thread by design.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Option<Registered>> = OnceLock::new();
/// Writes the WAL saw through this VFS, and the writes SQLite asked for (tests compare them).
static FLUSHES: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

/// Registers the VFS once per process and says whether it is there to be used.
pub(crate) fn register() -> bool {
    // The page-cache wrapper must go first: registering a VFS initialises SQLite.
    super::sqlite_pcache::install();
    REGISTERED
        .get_or_init(|| unsafe {
            // SAFETY: a null name finds the default VFS, which SQLite keeps for the process.
            let unix = ffi::sqlite3_vfs_find(std::ptr::null());
            if unix.is_null() {
                return None;
            }
            // A copy of `unix` in every field, so its own methods (which get this struct as
            // their first argument) see the same path length and application data; only the
            // name, the size of a file object and `xOpen` differ.
            let mut vfs: ffi::sqlite3_vfs = *unix;
            vfs.pNext = std::ptr::null_mut();
            vfs.zName = NAME.as_ptr();
            vfs.szOsFile = (header_size() + (*unix).szOsFile as usize) as c_int;
            vfs.xOpen = Some(open);
            let vfs = Box::leak(Box::new(vfs));
            if ffi::sqlite3_vfs_register(vfs, 0) != ffi::SQLITE_OK {
                return None;
            }
            Some(Registered { unix })
        })
        .is_some()
}

/// (pwrites of the WAL, writes SQLite asked for) through this VFS so far.
#[cfg(test)]
pub(crate) fn counts() -> (u64, u64) {
    (FLUSHES.load(Ordering::Relaxed), WRITES.load(Ordering::Relaxed))
}

fn unix() -> *mut ffi::sqlite3_vfs {
    match REGISTERED.get() {
        Some(Some(r)) => r.unix,
        _ => unreachable!("the WAL-buffer VFS opened a file before it was registered"),
    }
}

/// A WAL file: the `unix` file object lives right after this header in SQLite's allocation.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    inner: *mut ffi::sqlite3_file,
    /// Bytes SQLite wrote at `offset..offset + buffer.len()`, not yet in the file.
    buffer: Vec<u8>,
    offset: i64,
}

fn header_size() -> usize {
    std::mem::size_of::<WalFile>().next_multiple_of(16)
}

/// The `unix` file's methods, which every call ends in.
///
/// # Safety
/// `inner` must be an open `unix` file.
unsafe fn inner_methods<'a>(inner: *mut ffi::sqlite3_file) -> &'a ffi::sqlite3_io_methods {
    unsafe { &*(*inner).pMethods }
}

/// # Safety
/// `file` must be a WAL file this VFS opened and has not closed.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> &'a mut WalFile {
    unsafe { &mut *(file as *mut WalFile) }
}

/// The most one call of `unix`'s xWrite takes: it masks the length to 17 bits (128 KiB − 1).
const UNIX_MAX_WRITE: usize = 120 << 10;

/// Writes the gathered bytes out. The buffer is emptied even when the write fails: SQLite then
/// fails the transaction, and stale bytes must not reach the file later.
fn flush(f: &mut WalFile) -> c_int {
    let mut rc = ffi::SQLITE_OK;
    let mut offset = f.offset;
    for chunk in f.buffer.chunks(UNIX_MAX_WRITE) {
        FLUSHES.fetch_add(1, Ordering::Relaxed);
        rc = unsafe {
            (inner_methods(f.inner).xWrite.expect("unix has xWrite"))(
                f.inner,
                chunk.as_ptr() as *const c_void,
                chunk.len() as c_int,
                offset,
            )
        };
        if rc != ffi::SQLITE_OK {
            break;
        }
        offset += chunk.len() as i64;
    }
    f.buffer.clear();
    if f.buffer.capacity() > 2 * MAX_BUFFERED {
        f.buffer.shrink_to(MAX_BUFFERED);
    }
    rc
}

/// The WAL file with its gathered bytes written out first, for every call that could observe the
/// file's contents or size; the error of writing them otherwise.
///
/// # Safety
/// As [`wal`].
unsafe fn flushed<'a>(file: *mut ffi::sqlite3_file) -> Result<&'a mut WalFile, c_int> {
    let f = unsafe { wal(file) };
    match flush(f) {
        ffi::SQLITE_OK => Ok(f),
        rc => Err(rc),
    }
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let unix = unix();
    let unix_open = unsafe { (*unix).xOpen.expect("unix has xOpen") };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Not a WAL: the `unix` file object takes the whole allocation, with its own methods.
        return unsafe { unix_open(unix, name, file, flags, out_flags) };
    }
    let inner = unsafe { (file as *mut u8).add(header_size()) as *mut ffi::sqlite3_file };
    let rc = unsafe { unix_open(unix, name, inner, flags, out_flags) };
    if rc != ffi::SQLITE_OK {
        // SQLite does not close a file whose open failed, as long as pMethods is null.
        unsafe { (*file).pMethods = std::ptr::null() };
        return rc;
    }
    unsafe {
        std::ptr::write(
            file as *mut WalFile,
            WalFile { base: ffi::sqlite3_file { pMethods: &WAL_METHODS }, inner, buffer: Vec::new(), offset: 0 },
        )
    };
    ffi::SQLITE_OK
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    // Version 1: no shared memory and no memory mapping, which SQLite never asks of a WAL.
    iVersion: 1,
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
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let f = unsafe { wal(file) };
    let flushed = flush(f);
    let closed = unsafe { (inner_methods(f.inner).xClose.expect("unix has xClose"))(f.inner) };
    // SAFETY: written by `open`; SQLite closes a file once and never uses it afterwards.
    unsafe { std::ptr::drop_in_place(file as *mut WalFile) };
    if flushed != ffi::SQLITE_OK { flushed } else { closed }
}

unsafe extern "C" fn read(file: *mut ffi::sqlite3_file, data: *mut c_void, amount: c_int, offset: i64) -> c_int {
    let Ok(f) = (unsafe { flushed(file) }) else { return ffi::SQLITE_IOERR_READ };
    unsafe { (inner_methods(f.inner).xRead.expect("unix has xRead"))(f.inner, data, amount, offset) }
}

unsafe extern "C" fn write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    let f = unsafe { wal(file) };
    WRITES.fetch_add(1, Ordering::Relaxed);
    let amount_bytes = amount.max(0) as usize;
    let appends = !f.buffer.is_empty() && offset == f.offset + f.buffer.len() as i64;
    if !appends || f.buffer.len() + amount_bytes > MAX_BUFFERED {
        let rc = flush(f);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        f.offset = offset;
    }
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    f.buffer.extend_from_slice(unsafe { std::slice::from_raw_parts(data as *const u8, amount_bytes) });
    ffi::SQLITE_OK
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    let f = match unsafe { flushed(file) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    unsafe { (inner_methods(f.inner).xTruncate.expect("unix has xTruncate"))(f.inner, size) }
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    let f = match unsafe { flushed(file) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    unsafe { (inner_methods(f.inner).xSync.expect("unix has xSync"))(f.inner, flags) }
}

unsafe extern "C" fn file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    let f = match unsafe { flushed(file) } {
        Ok(f) => f,
        Err(rc) => return rc,
    };
    unsafe { (inner_methods(f.inner).xFileSize.expect("unix has xFileSize"))(f.inner, size) }
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xLock.expect("unix has xLock"))(f.inner, level) }
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xUnlock.expect("unix has xUnlock"))(f.inner, level) }
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xCheckReservedLock.expect("unix has xCheckReservedLock"))(f.inner, out) }
}

unsafe extern "C" fn file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xFileControl.expect("unix has xFileControl"))(f.inner, op, arg) }
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xSectorSize.expect("unix has xSectorSize"))(f.inner) }
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    let f = unsafe { wal(file) };
    unsafe { (inner_methods(f.inner).xDeviceCharacteristics.expect("unix has xDeviceCharacteristics"))(f.inner) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{Connection, OpenFlags};

    /// Commits through the buffering VFS are whole and visible to a plain `unix` connection,
    /// including frames SQLite rewrites and reads back within a transaction; a rolled-back
    /// transaction leaves nothing; and the WAL saw far fewer writes than SQLite made.
    #[test]
    fn commits_are_whole_visible_and_gathered() {
        assert!(register());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), NAME).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.pragma_update(None, "synchronous", "full").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        // A tiny cache makes SQLite spill dirty pages into the WAL mid-transaction and read them
        // back, the case where a read must see bytes still gathered.
        conn.pragma_update(None, "cache_size", 10).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);").unwrap();
        let reader = Connection::open(&path).unwrap();
        let (flushes_before, writes_before) = counts();
        for round in 0..60i64 {
            let tx = conn.unchecked_transaction().unwrap();
            for i in 0..(1 + round % 7) {
                tx.execute("INSERT INTO t (v) VALUES (?1)", [vec![(round + i) as u8; 3000 + 500 * i as usize]]).unwrap();
            }
            if round % 20 == 5 {
                // One commit far larger than a single write of the `unix` VFS.
                tx.execute("INSERT INTO t (v) VALUES (randomblob(1500000))", []).unwrap();
            }
            if round % 10 == 9 {
                tx.execute("UPDATE t SET v = zeroblob(10)", []).unwrap();
                tx.rollback().unwrap();
            } else {
                tx.commit().unwrap();
            }
            let seen: i64 = reader.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
            let committed: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(seen, committed, "round {round}");
        }
        let sum: i64 = reader.query_row("SELECT sum(length(v)) FROM t", [], |r| r.get(0)).unwrap();
        let zeroed: i64 = reader.query_row("SELECT count(*) FROM t WHERE length(v) = 10", [], |r| r.get(0)).unwrap();
        assert_eq!(zeroed, 0, "a rolled-back update is visible");
        assert!(sum > 0);
        let check: String = reader.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        // A checkpoint through the plain connection copies what the buffered one wrote.
        reader.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        drop(conn);
        let again = Connection::open(&path).unwrap();
        let after: i64 = again.query_row("SELECT sum(length(v)) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(after, sum);
        let (flushes, writes) = counts();
        let (flushes, writes) = (flushes - flushes_before, writes - writes_before);
        assert!(writes > 4 * flushes, "{writes} writes reached the WAL as {flushes} pwrites");
    }
}
