//! The backup as a file: written beside its final name, private, synced, put in place without
//! ever replacing a file; and the SQLite header read before anything opens it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::BackupError;

/// Where a file is written before it appears as `to`: beside it (so that putting it in place is
/// a link within one file system), hidden, named after this process.
pub(super) fn partial_path(to: &Path) -> Result<PathBuf, BackupError> {
    let name = to.file_name().ok_or_else(|| BackupError::Refused(format!("{}: not a file name", to.display())))?;
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::Refused(format!("{}: no such directory", dir.display())));
    }
    let mut partial = std::ffi::OsString::from(".");
    partial.push(name);
    partial.push(format!(".partial-{}", std::process::id()));
    Ok(dir.join(partial))
}

/// Creates `path` empty with mode 0600, failing if it exists.
pub(super) fn create_private(path: &Path) -> Result<(), BackupError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(BackupError::io(format!("creating {}", path.display())))
}

/// fsync of the file's contents (SQLite does not sync what `VACUUM INTO` writes).
pub(super) fn sync(path: &Path) -> Result<(), BackupError> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(BackupError::io(format!("syncing {}", path.display())))
}

/// Makes the finished `partial` appear as `to` (a hard link: fails if `to` exists meanwhile,
/// never replaces it), removes `partial`, and syncs the directory so the name survives a crash.
pub(super) fn place(partial: &Path, to: &Path) -> Result<(), BackupError> {
    match std::fs::hard_link(partial, to) {
        Ok(()) => {
            let _ = std::fs::remove_file(partial);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(BackupError::Refused(format!("{} already exists: it was not replaced", to.display())));
        }
        // A file system without hard links (some network mounts): a rename, guarded by the
        // existence check just before it.
        Err(_) if std::fs::symlink_metadata(to).is_err() => {
            std::fs::rename(partial, to).map_err(BackupError::io(format!("placing {}", to.display())))?;
        }
        Err(e) => return Err(BackupError::Io { what: format!("placing {}", to.display()), error: e }),
    }
    let dir = match to.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(BackupError::io(format!("syncing {}", dir.display())))
}

/// Checks the first 100 bytes (SQLite's database header) against the file's size: a SQLite
/// database, self-contained (rollback journal, not WAL: a WAL-mode file is a live database whose
/// latest commits may be in its -wal file), and as long as its header says (not truncated).
pub(super) fn check_header(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot read: {e}"))?.len();
    let mut header = [0u8; 100];
    if len < 100 {
        return Err(format!("{len} bytes: too short to be a database (truncated?)"));
    }
    file.read_exact(&mut header).map_err(|e| format!("cannot read: {e}"))?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err("not a SQLite database (wrong file?)".into());
    }
    if header[18] == 2 || header[19] == 2 {
        return Err("a database in WAL mode: a live database file, not a backup made by `mailroom backup` \
                    (its latest commits may be in a -wal file beside it)"
            .into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes(header[28..32].try_into().expect("4 bytes")));
    // The page count in the header is valid when its "version valid for" equals the change counter.
    let counted = header[92..96] == header[24..28];
    if page_size < 512 || (counted && len < pages * page_size) || len % page_size != 0 {
        return Err(format!(
            "truncated: {len} bytes, but its header says {} pages of {page_size} bytes",
            if counted { pages.to_string() } else { "whole".into() }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header of `pages` pages of 4096 bytes, WAL or rollback mode, with a valid page count.
    fn header(pages: u32, wal: bool) -> Vec<u8> {
        let mut h = vec![0u8; 100];
        h[..16].copy_from_slice(b"SQLite format 3\0");
        h[16..18].copy_from_slice(&4096u16.to_be_bytes());
        let mode = if wal { 2 } else { 1 };
        (h[18], h[19]) = (mode, mode);
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[92..96].copy_from_slice(&7u32.to_be_bytes());
        h
    }

    fn check(bytes: &[u8]) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db");
        std::fs::write(&path, bytes).unwrap();
        check_header(&path)
    }

    #[test]
    fn the_header_tells_a_whole_backup_from_a_short_a_foreign_and_a_live_file() {
        let mut whole = header(3, false);
        whole.resize(3 * 4096, 0);
        assert_eq!(check(&whole), Ok(()));
        let cut = &whole[..2 * 4096];
        assert!(check(cut).unwrap_err().contains("truncated: 8192 bytes, but its header says 3 pages"), "{:?}", check(cut));
        assert!(check(&whole[..5000]).unwrap_err().starts_with("truncated"));
        assert!(check(&whole[..50]).unwrap_err().contains("too short"));
        let mut live = header(3, true);
        live.resize(3 * 4096, 0);
        assert!(check(&live).unwrap_err().contains("WAL mode"));
        let mut foreign = whole.clone();
        foreign[..6].copy_from_slice(b"PK\x03\x04zz");
        assert!(check(&foreign).unwrap_err().contains("not a SQLite database"));
    }
}
