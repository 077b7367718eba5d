//! `/readyz`: whether this node should be sent mail. Ready when the writer runs, a write
//! transaction commits through it, the database has room under `storage.max_database_size` for
//! one more message of the largest size accepted, and the data dir's filesystem has at least
//! `metrics.min_free_disk` bytes free.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::Telemetry;
use crate::store::StoreError;

/// A probe that waits longer than this for the writer counts the store as not writable.
const WRITE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize)]
pub struct Readiness {
    /// "ready" or "not ready".
    pub status: &'static str,
    /// The first failed check's explanation (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<Check>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    /// writer, store, database_size, disk.
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

pub(super) async fn readiness(t: &Telemetry) -> Readiness {
    let mut checks = Vec::new();
    let check = |name, ok, detail: String| Check { name, ok, detail };
    match tokio::time::timeout(WRITE_CHECK_TIMEOUT, t.store.check_writable()).await {
        Ok(Ok(())) => {
            checks.push(check("writer", true, "running".into()));
            checks.push(check("store", true, "a write transaction committed".into()));
        }
        Ok(Err(StoreError::Closed)) => {
            checks.push(check("writer", false, "the writer is not running: new mail gets 451".into()));
        }
        Ok(Err(e)) => {
            checks.push(check("writer", true, "running".into()));
            checks.push(check("store", false, format!("a write transaction failed: {e}")));
        }
        Err(_) => {
            checks.push(check("writer", true, "running".into()));
            let waited = WRITE_CHECK_TIMEOUT.as_secs();
            checks.push(check("store", false, format!("a write transaction did not commit within {waited} s")));
        }
    }
    match t.store.size().await {
        Ok(size) => {
            if let (Some(room), Some(max)) = (size.room(), size.max_bytes) {
                let used = size.used_bytes;
                let largest = t.max_message_size;
                if room < largest {
                    let detail = format!(
                        "storage.max_database_size reached: {used} of {max} bytes in use, less room than one message of \
                         limits.max_message_size ({largest} bytes); new mail gets 451"
                    );
                    checks.push(check("database_size", false, detail));
                } else {
                    checks.push(check("database_size", true, format!("{used} of {max} bytes in use")));
                }
            }
        }
        Err(e) => checks.push(check("database_size", false, format!("reading the store's size failed: {e}"))),
    }
    if let Some(min) = t.min_free_disk {
        match free_disk(&t.data_dir) {
            Ok(free) if free < min => checks.push(check(
                "disk",
                false,
                format!("{free} bytes free on the data dir's filesystem, below metrics.min_free_disk ({min} bytes)"),
            )),
            Ok(free) => checks.push(check("disk", true, format!("{free} bytes free on the data dir's filesystem"))),
            Err(e) => checks.push(check("disk", false, format!("statvfs on the data dir failed: {e}"))),
        }
    }
    let failed = checks.iter().find(|c| !c.ok).map(|c| c.detail.clone());
    Readiness { status: if failed.is_none() { "ready" } else { "not ready" }, reason: failed, checks }
}

/// Bytes an unprivileged process may still write on the filesystem holding `path`.
pub fn free_disk(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a struct statvfs fills; nothing is kept.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::writer::{self, Numbering};

    struct Plain;
    impl Numbering for Plain {
        fn counter_year(&self, calendar_year: i32) -> i32 {
            calendar_year
        }
        fn format(&self, year: i32, seq: u64) -> String {
            format!("{year}-{seq}")
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn not_ready_until_the_writer_runs_and_again_once_it_stopped() {
        let (dir, store) = crate::store::testing::store().await;
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let t = Telemetry::new(handle, store.clone(), None, vec![], vec![], dir.path().into(), Some(1), 1024, shutdown);
        let before = readiness(&t).await;
        assert!(!before.ready());
        assert_eq!(before.reason.as_deref(), Some("the writer is not running: new mail gets 451"));

        let (writer, thread) = writer::spawn(store.clone(), Arc::new(Plain), Duration::from_secs(60)).unwrap();
        let running = readiness(&t).await;
        assert!(running.ready(), "{running:?}");
        let names: Vec<&str> = running.checks.iter().map(|c| c.name).collect();
        assert_eq!(names, ["writer", "store", "disk"], "no cap configured: no database_size check");
        assert_eq!(crate::store::testing::audit_log(&store).await.len(), 0, "a probe writes nothing");

        drop(writer);
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap();
        assert_eq!(readiness(&t).await.reason.as_deref(), Some("the writer is not running: new mail gets 451"));
    }

    #[test]
    fn free_disk_reads_the_filesystem() {
        let free = free_disk(Path::new("/")).unwrap();
        assert!(free > 0);
        assert!(free_disk(Path::new("/no/such/dir")).is_err());
    }
}
