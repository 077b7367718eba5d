//! `mailroom restore FILE --data-dir DIR`: a verified backup becomes DIR's database.
//!
//! The key is not in the backup, and a store without its key file is unreadable, so restore
//! refuses to run until the operator has put the key file (kept apart from the backups) where
//! DIR's configuration expects it: it verifies the backup with that very file, so a server
//! started afterwards opens everything. (A warning instead would leave a store that the first
//! `serve` would meet with a freshly generated, wrong key.)

use std::path::{Path, PathBuf};

use super::{BackupError, POSTGRES_REFUSAL, VerifySummary, file, verify};
use crate::store::audit::AuditEntry;
use crate::store::{Store, StoreOptions, now_millis, prepare_data_dir};

/// What was restored where.
#[derive(Debug)]
pub struct RestoreSummary {
    pub database: PathBuf,
    pub verified: VerifySummary,
}

/// Places the backup `backup` as the database of `options` (its data dir), after verifying it
/// with the key file found there; appends a `store.restore` audit entry (as `actor`) to it.
pub async fn restore(backup: &Path, options: &StoreOptions, actor: &str) -> Result<RestoreSummary, BackupError> {
    if options.storage.postgres_url().is_some() {
        return Err(BackupError::Refused(POSTGRES_REFUSAL.into()));
    }
    let dir = &options.data_dir;
    let key = &options.master_key_path;
    if !dir.is_dir() {
        return Err(BackupError::Refused(format!(
            "no data dir at {}: create it (mode 0700) and put the key file in it as {} (the key is not in the backup), \
             then restore",
            dir.display(),
            key.display()
        )));
    }
    prepare_data_dir(dir)?;
    let database = &options.database_path;
    // Any of these is (a trace of) a store: its -wal may hold its latest commits.
    for existing in [database.clone(), suffixed(database, "-wal"), suffixed(database, "-shm"), suffixed(database, "-journal")] {
        if std::fs::symlink_metadata(&existing).is_ok() {
            return Err(BackupError::Refused(format!(
                "{} already holds a store ({} exists): restore only into a data dir without one (move it away first)",
                dir.display(),
                existing.display()
            )));
        }
    }
    if !key.exists() {
        return Err(BackupError::Refused(format!(
            "no key file at {}: the key is not in the backup; copy the key file you keep apart from the backups there \
             (mode 0600), then restore again (without it nothing in the backup can be read)",
            key.display()
        )));
    }
    if !backup.is_file() {
        return Err(BackupError::Refused(format!("no backup file at {}", backup.display())));
    }

    // Verified where it will live, so that what was checked is what the server opens.
    let partial = file::partial_path(database)?;
    let placed = place_verified(backup, &partial, database, key).await;
    let _ = std::fs::remove_file(&partial);
    let verified = placed?;

    let store = Store::open_as(options.clone(), "mailroom-cli:restore").await?;
    let entry = AuditEntry {
        at: now_millis(),
        actor: actor.into(),
        action: "store.restore".into(),
        object: None,
        detail: Some(format!("from={} messages={} audit_entries={}", backup.display(), verified.messages, verified.audit_entries)),
    };
    let appended = store.append_audit(vec![entry]).await;
    store.close().await;
    appended?;
    Ok(RestoreSummary { database: database.clone(), verified })
}

async fn place_verified(backup: &Path, partial: &Path, database: &Path, key: &Path) -> Result<VerifySummary, BackupError> {
    file::create_private(partial)?;
    let copy = || -> std::io::Result<()> {
        let mut from = std::fs::File::open(backup)?;
        let mut to = std::fs::OpenOptions::new().write(true).truncate(true).open(partial)?;
        std::io::copy(&mut from, &mut to)?;
        to.sync_all()
    };
    copy().map_err(BackupError::io(format!("copying {} to {}", backup.display(), partial.display())))?;
    let verified = verify(partial, key).await.map_err(|e| match e {
        // Name the file the operator gave, not the copy.
        BackupError::Invalid { reason, .. } => BackupError::Invalid { file: backup.display().to_string(), reason },
        other => other,
    })?;
    file::place(partial, database)?;
    Ok(verified)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.to_path_buf().into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}
