//! A thin wrapper around SQLite's own page cache that skips a full scan of the cache at every
//! commit.
//!
//! Why: at the end of each write transaction SQLite truncates its page cache to the database size
//! (`pager_end_transaction` → `xTruncate`). The default cache (`pcache1`) scans only the last hash
//! slots when no page above the limit was ever cached, and its whole hash table otherwise. But
//! `balance_nonroot`, to keep sibling pages in ascending order, parks a page for a moment at the
//! lock page's number (the page holding byte 2^30, page 262,145 at 4 KiB pages). That raises
//! pcache1's highest key to 262,145 for good, so from the first B-tree rebalance on, every commit of
//! the writer walked all 8,192–32,768 hash slots of its 64 MiB cache: 6% of the writer thread's CPU
//! in the ingest benchmark (`bench/results/writer-commit.md`).
//!
//! The wrapper keeps its own highest key, leaving out the lock page (no page lives there after
//! the rebalance that parked it), and passes a truncation on only when a page at or above the
//! limit may exist. Everything else is pcache1, unchanged.
//!
//! It must be installed before SQLite initialises (`sqlite3_config` is refused afterwards), so
//! every place that opens a SQLite database in this process calls [`install`] first. If SQLite
//! was initialised by something else first, the default cache stays, which is only slower.

use rusqlite::ffi;
use std::ffi::{c_int, c_uint};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// SQLite's default `PENDING_BYTE`: the lock page is the page that holds this byte.
const PENDING_BYTE: u32 = 0x4000_0000;

/// pcache1's methods, as SQLite reported them before ours replaced them.
struct Default(ffi::sqlite3_pcache_methods2);
// SAFETY: the methods are plain C function pointers and pcache1's global argument, which SQLite
// itself shares between threads.
unsafe impl Send for Default {}
unsafe impl Sync for Default {}

/// pcache1's methods, kept before ours are handed to SQLite: a connection opened on another
/// thread may call ours as soon as SQLite has them.
static PCACHE1: OnceLock<Default> = OnceLock::new();
/// Whether SQLite took ours (set once, by the first `install`).
static INSTALLED: OnceLock<bool> = OnceLock::new();
/// Truncations skipped because no page at or above the limit could exist (tests look at it).
static SKIPPED: AtomicU64 = AtomicU64::new(0);

/// One page cache: pcache1's, plus the highest page number really cached.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    lock_page: c_uint,
    /// The highest key ever fetched or moved to, other than the lock page, since the last
    /// truncation below it.
    max_key: c_uint,
    /// Pages currently parked at the lock page's number (0 outside `balance_nonroot`).
    at_lock_page: c_uint,
}

/// Installs the wrapper once per process; a no-op when SQLite is already initialised.
pub(crate) fn install() {
    INSTALLED.get_or_init(|| {
        let mut default: ffi::sqlite3_pcache_methods2 = unsafe { std::mem::zeroed() };
        // SAFETY: both calls take a pointer to a methods struct, as documented for these options;
        // SQLite copies ours, and the struct outlives the calls.
        unsafe {
            if ffi::sqlite3_config(ffi::SQLITE_CONFIG_GETPCACHE2, &mut default as *mut ffi::sqlite3_pcache_methods2) != ffi::SQLITE_OK {
                return false;
            }
            let pcache1 = PCACHE1.get_or_init(|| Default(default));
            let ours = ffi::sqlite3_pcache_methods2 {
                iVersion: 1,
                pArg: pcache1.0.pArg,
                xInit: pcache1.0.xInit,
                xShutdown: pcache1.0.xShutdown,
                xCreate: Some(create),
                xCachesize: Some(cachesize),
                xPagecount: Some(pagecount),
                xFetch: Some(fetch),
                xUnpin: Some(unpin),
                xRekey: Some(rekey),
                xTruncate: Some(truncate),
                xDestroy: Some(destroy),
                xShrink: Some(shrink),
            };
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_PCACHE2, &ours as *const ffi::sqlite3_pcache_methods2) == ffi::SQLITE_OK
        }
    });
}

/// Whether SQLite uses the wrapper in this process.
#[cfg(test)]
pub(crate) fn installed() -> bool {
    INSTALLED.get() == Some(&true)
}

/// How many truncations the wrapper has skipped so far.
#[cfg(test)]
pub(crate) fn skipped() -> u64 {
    SKIPPED.load(Ordering::Relaxed)
}

fn methods() -> &'static ffi::sqlite3_pcache_methods2 {
    match PCACHE1.get() {
        Some(d) => &d.0,
        // Our callbacks are handed to SQLite only after PCACHE1 holds pcache1's methods.
        None => unreachable!("page cache wrapper called before it was installed"),
    }
}

/// # Safety
/// `p` must be a pointer this module's `create` returned and `destroy` has not freed.
unsafe fn cache<'a>(p: *mut ffi::sqlite3_pcache) -> &'a mut Cache {
    unsafe { &mut *(p as *mut Cache) }
}

unsafe extern "C" fn create(page_size: c_int, extra: c_int, purgeable: c_int) -> *mut ffi::sqlite3_pcache {
    let inner = unsafe { (methods().xCreate.expect("pcache1 has xCreate"))(page_size, extra, purgeable) };
    if inner.is_null() {
        return std::ptr::null_mut();
    }
    let lock_page = PENDING_BYTE / page_size.max(1) as c_uint + 1;
    Box::into_raw(Box::new(Cache { inner, lock_page, max_key: 0, at_lock_page: 0 })) as *mut ffi::sqlite3_pcache
}

unsafe extern "C" fn cachesize(p: *mut ffi::sqlite3_pcache, n: c_int) {
    unsafe { (methods().xCachesize.expect("pcache1 has xCachesize"))(cache(p).inner, n) }
}

unsafe extern "C" fn pagecount(p: *mut ffi::sqlite3_pcache) -> c_int {
    unsafe { (methods().xPagecount.expect("pcache1 has xPagecount"))(cache(p).inner) }
}

unsafe extern "C" fn fetch(p: *mut ffi::sqlite3_pcache, key: c_uint, create: c_int) -> *mut ffi::sqlite3_pcache_page {
    let c = unsafe { cache(p) };
    let page = unsafe { (methods().xFetch.expect("pcache1 has xFetch"))(c.inner, key, create) };
    if !page.is_null() && key != c.lock_page {
        c.max_key = c.max_key.max(key);
    }
    page
}

unsafe extern "C" fn unpin(p: *mut ffi::sqlite3_pcache, page: *mut ffi::sqlite3_pcache_page, discard: c_int) {
    unsafe { (methods().xUnpin.expect("pcache1 has xUnpin"))(cache(p).inner, page, discard) }
}

unsafe extern "C" fn rekey(p: *mut ffi::sqlite3_pcache, page: *mut ffi::sqlite3_pcache_page, old: c_uint, new: c_uint) {
    let c = unsafe { cache(p) };
    unsafe { (methods().xRekey.expect("pcache1 has xRekey"))(c.inner, page, old, new) };
    if old == c.lock_page {
        c.at_lock_page = c.at_lock_page.saturating_sub(1);
    }
    if new == c.lock_page {
        c.at_lock_page += 1;
    } else {
        c.max_key = c.max_key.max(new);
    }
}

unsafe extern "C" fn truncate(p: *mut ffi::sqlite3_pcache, limit: c_uint) {
    let c = unsafe { cache(p) };
    if c.at_lock_page == 0 && limit > c.max_key {
        // No cached page has a number at or above `limit`: nothing to drop.
        SKIPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    unsafe { (methods().xTruncate.expect("pcache1 has xTruncate"))(c.inner, limit) };
    c.max_key = c.max_key.min(limit.saturating_sub(1));
    if limit <= c.lock_page {
        c.at_lock_page = 0;
    }
}

unsafe extern "C" fn destroy(p: *mut ffi::sqlite3_pcache) {
    // SAFETY: `p` came from `create`'s Box::into_raw and SQLite destroys a cache once.
    let c = unsafe { Box::from_raw(p as *mut Cache) };
    unsafe { (methods().xDestroy.expect("pcache1 has xDestroy"))(c.inner) }
}

unsafe extern "C" fn shrink(p: *mut ffi::sqlite3_pcache) {
    unsafe { (methods().xShrink.expect("pcache1 has xShrink"))(cache(p).inner) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// Random keys into an index force `balance_nonroot` to reorder sibling pages (the case that
    /// parks a page at the lock page); rollbacks and a VACUUM shrink the database, which needs
    /// real truncations. The data must come back whole, and the wrapper must have skipped the
    /// truncations that had nothing to drop.
    #[test]
    fn the_cache_stays_correct_while_commits_skip_the_scan() {
        install();
        if !installed() {
            // Another test of this process initialised SQLite first: nothing here to check.
            eprintln!("SQLite was initialised before the wrapper: skipped");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.pragma_update(None, "cache_size", -16 * 1024).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB NOT NULL, v BLOB NOT NULL); CREATE INDEX t_k ON t (k);")
            .unwrap();
        let before = skipped();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for batch in 0..200 {
            let tx = conn.unchecked_transaction().unwrap();
            for _ in 0..20 {
                let key = next().to_le_bytes();
                tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", rusqlite::params![&key[..], vec![batch as u8; 700]]).unwrap();
            }
            if batch % 10 == 9 {
                // Grow the file inside a transaction, then roll it back: the cache must drop the
                // pages above the restored size, or a later read would see them.
                tx.execute("INSERT INTO t (k, v) SELECT k || x'00', v FROM t", []).unwrap();
                tx.rollback().unwrap();
            } else {
                tx.commit().unwrap();
            }
        }
        let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 180 * 20);
        // VACUUM shrinks the file: a truncation the wrapper passes on (SQLite would also zero a
        // stale cached page it allocates again, so this checks the data, not that order).
        conn.execute_batch("DELETE FROM t WHERE id % 4 != 0; VACUUM;").unwrap();
        for batch in 0..50u8 {
            let tx = conn.unchecked_transaction().unwrap();
            for _ in 0..20 {
                let key = next().to_le_bytes();
                tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", rusqlite::params![&key[..], vec![200 + batch % 50; 700]]).unwrap();
            }
            tx.commit().unwrap();
        }
        let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 180 * 20 / 4 + 50 * 20);
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        // A fresh connection reads the same through the WAL.
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        let rows: i64 = other.query_row("SELECT count(*) FROM t INDEXED BY t_k WHERE k > x''", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 180 * 20 / 4 + 50 * 20);
        let check: String = other.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        assert!(skipped() > before + 100, "commits skipped {} truncations", skipped() - before);
    }
}
