//! Backup and restore of a SQLite store: `mailroom backup --to FILE` (an online snapshot while
//! mail flows), `mailroom backup verify FILE` (everything in it opens with the key file) and
//! `mailroom restore FILE --data-dir DIR`.
//!
//! A backup is one SQLite file holding exactly what the database holds: customer data only as
//! ciphertext, and never the key file, which is backed up separately (without it nothing in a
//! backup can be read). PostgreSQL stores are backed up with PostgreSQL's own tools.

mod file;
mod restore;
mod verify;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::{ConnectOptions, Connection};

use super::audit::AuditEntry;
use super::{Store, StoreError, sqlite};

pub use restore::{RestoreSummary, restore};
pub use verify::{VerifySummary, verify};

/// What an operator is told when the store is on PostgreSQL.
pub const POSTGRES_REFUSAL: &str = "the store is on PostgreSQL ([storage] database is a postgres:// URL): back it up with \
     PostgreSQL's own tools — pg_basebackup with WAL archiving (point-in-time recovery) or pg_dump — and the key file \
     separately; see the section \"Backup\" of docs/deploy-postgres.md. `mailroom backup` and `mailroom restore` handle \
     SQLite stores only";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not done, nothing written: why, and what to do instead.
    #[error("{0}")]
    Refused(String),
    /// The backup file is not a sound, complete mailroom store readable with the key file.
    #[error("backup {file} fails verification: {reason}")]
    Invalid { file: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

impl BackupError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
        let what = what.into();
        move |error| BackupError::Io { what, error }
    }
}

/// What `mailroom backup` wrote (counts and numbers only: no customer data).
#[derive(Debug)]
pub struct BackupSummary {
    pub file: PathBuf,
    pub bytes: u64,
    pub messages: i64,
    /// The newest registration number in the backup.
    pub last_number: Option<String>,
    pub audit_entries: i64,
    /// How long the snapshot's read transaction ran (the writer does not wait for it).
    pub snapshot: Duration,
    /// How long appending the `store.backup` audit entry took: the one moment the command holds
    /// the write lock, so the longest the server's writer can have waited for it.
    pub audit_append: Duration,
}

impl Store {
    /// Writes a consistent snapshot of the SQLite store to `to` while the server may run and take
    /// mail, then audits a `store.backup` entry (as `actor`). Refuses an existing `to` (checked
    /// first, and again when the finished file is put in place, which never replaces a file).
    pub async fn backup_to(&self, to: &Path, actor: &str) -> Result<BackupSummary, BackupError> {
        if self.options.storage.postgres_url().is_some() {
            return Err(BackupError::Refused(POSTGRES_REFUSAL.into()));
        }
        if std::fs::symlink_metadata(to).is_ok() {
            return Err(BackupError::Refused(format!("{} already exists: give a new file (a backup never replaces one)", to.display())));
        }
        let partial = file::partial_path(to)?;
        let result = self.snapshot(to, &partial).await;
        let _ = std::fs::remove_file(&partial);
        let (bytes, snapshot) = result?;
        let (messages, last_number, audit_entries) = match verify::contents(to).await {
            Ok(contents) => contents,
            Err(e) => {
                let _ = std::fs::remove_file(to);
                return Err(e);
            }
        };
        let detail = format!(
            "to={} bytes={bytes} messages={messages} last={} audit_entries={audit_entries} snapshot_ms={}",
            to.display(),
            last_number.as_deref().unwrap_or("-"),
            snapshot.as_millis()
        );
        let entry =
            AuditEntry { at: super::now_millis(), actor: actor.into(), action: "store.backup".into(), object: None, detail: Some(detail) };
        let started = Instant::now();
        if let Err(e) = self.append_audit(vec![entry]).await {
            // Unaudited, the backup does not count: the operator runs it again.
            let _ = std::fs::remove_file(to);
            return Err(e.into());
        }
        let audit_append = started.elapsed();
        Ok(BackupSummary { file: to.to_path_buf(), bytes, messages, last_number, audit_entries, snapshot, audit_append })
    }

    /// The snapshot into `partial` (private, synced), then put in place as `to`: its size and
    /// how long the read transaction ran.
    async fn snapshot(&self, to: &Path, partial: &Path) -> Result<(u64, Duration), BackupError> {
        file::create_private(partial)?;
        let mut conn = sqlite::snapshot_source_options(&self.options.database_path).connect().await?;
        let started = Instant::now();
        let copied = sqlite::snapshot_into(&mut conn, partial).await;
        let snapshot = started.elapsed();
        let _ = conn.close().await;
        copied?;
        file::sync(partial)?;
        file::place(partial, to)?;
        let bytes = std::fs::metadata(to).map_err(BackupError::io(format!("reading {}", to.display())))?.len();
        Ok((bytes, snapshot))
    }
}
