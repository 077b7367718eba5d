//! The store: SQLite through sqlx, with every piece of customer data sealed by `crypto`.
//!
//! Writes of new messages go through one writer task (`writer`) that commits them in batches:
//! SQLite has one writer at a time anyway, and sharing each fsync between all the messages that
//! arrived while the previous commit was being made is what lets durability keep up with the
//! network. Reads (admin commands, later the staff views) use the pool.

pub mod app_passwords;
pub mod approvals;
pub mod audit;
pub mod audit_anchor;
pub mod backup;
pub mod cases;
pub mod codec;
pub mod config;
pub mod copy;
pub mod crypto;
pub mod directory;
pub mod engine;
pub mod enrolment;
pub mod health;
pub mod holds;
pub mod leases;
mod listener;
pub mod mailbox;
pub mod mailbox_seen;
pub mod mailbox_view;
pub mod notifications;
pub mod outbox;
mod postgres;
pub mod preferences;
pub mod presence;
pub mod priority;
pub mod purge;
pub mod record;
pub mod roles;
pub mod rotation;
pub mod sessions;
mod sqlite;
mod sqlite_pcache;
mod sqlite_wal_buffer;
#[cfg(test)]
pub(crate) mod testing;
pub mod two_factor;
pub mod tx;
pub mod users;
pub mod writer;

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Row;

use engine::on_db;

pub use config::StoreOptions;
use crypto::{CryptoError, DataKey, KeyRing, aad};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// Not a registration number: the text given, and why (the format is intake's).
    #[error("{0}: {1}")]
    BadNumber(String, String),
    #[error("no message is registered as {0}")]
    NotFound(String),
    /// A tombstone: the registration exists, its content was destroyed (retention or erasure).
    #[error("{} (received {}) was purged on {} by {}: its content no longer exists", .0.number, millis_to_rfc3339(.0.received_at), millis_to_rfc3339(.0.purged_at), .0.purged_by)]
    Purged(Box<purge::Tombstone>),
    #[error("the store is shutting down")]
    Closed,
    #[error("commit failed, batch rolled back: {0}")]
    BatchFailed(String),
    #[error("data dir {path}: {reason}")]
    DataDir { path: PathBuf, reason: String },
}

/// One sealed column of a row with what opens it: `uid, key_id, wrapped_key` and the ciphertext.
type SealedColumn = (Vec<u8>, i64, Vec<u8>, Vec<u8>);

/// Shared handle to the database and the keys.
#[derive(Clone)]
pub struct Store {
    db: engine::Db,
    pub keys: Arc<KeyRing>,
    /// Where the files are and the `[storage]` section (the writer reads both).
    options: Arc<StoreOptions>,
    /// Bumped after every commit that changes what staff see (new mail, case actions), so
    /// IMAP sessions in IDLE and other watchers re-read at once instead of polling blindly.
    pub changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// The group-commit writer while it runs (set by `writer::spawn`), which appends staff
    /// reads' audit entries in its next batch ([`Store::append_audit`]).
    writer: Arc<std::sync::OnceLock<writer::WeakWriter>>,
    /// Other nodes' presence notes, as the listener hears them ([`Store::presence_notes`]).
    presence: tokio::sync::broadcast::Sender<presence::PresenceNote>,
}

/// One registration as listed for operators (no customer data).
#[derive(Debug, serde::Serialize)]
pub struct MessageSummary {
    pub number: String,
    pub received_at: String,
    pub size: i64,
    pub protocol: String,
    pub tls: Option<String>,
    pub parsed: bool,
    pub duplicate_count: i64,
    /// Queue of the message's first case.
    pub queue: String,
    /// Tags on the message (e.g. new-participant, invalid-registration-tag).
    pub tags: Vec<String>,
    /// SPF/DKIM/DMARC summary ("spf=pass dkim=none dmarc=pass"), when checks ran.
    pub auth: Option<String>,
    /// Every case the message opened or joined (none once purged).
    pub cases: Vec<CaseSummary>,
    /// A tombstone's `purged_by`: the retention policy, or `erasure` (`store::purge`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_by: Option<String>,
}

/// A case as listed for operators: routing and SLA, no customer data.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CaseSummary {
    pub case: i64,
    pub opening: String,
    pub queue: String,
    pub status: String,
    pub category: Option<String>,
    pub priority: String,
    pub due_at: Option<String>,
    pub tags: Vec<String>,
    pub spam: bool,
    /// The sender's customer tier when the case was opened.
    pub tier: Option<String>,
}

/// Everything mailroom creates from now on is private to its user: files 0600, directories
/// 0700 (the database with its -wal and -shm, certificates, keys, listeners.json). Process-wide;
/// `serve` and the admin commands call it before they create anything.
pub fn private_umask() {
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the data dir (0700) when it is missing, and refuses one that group or others may
/// read, write or enter: it holds the database, the master key and the TLS key.
pub fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |reason: String| StoreError::DataDir { path: dir.to_path_buf(), reason };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| fail(format!("cannot create: {e}")))?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Err(fail("is not a directory".into()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "is accessible by group or others (mode {mode:04o}); mailroom refuses to start: run `chmod 700 {}`",
            dir.display()
        )));
    }
    Ok(())
}

/// Tightens what an older version created with looser modes: the database files to 0600, the
/// generated certificate directory to 0700 (the data dir itself has been checked).
pub(crate) fn tighten(paths: &[PathBuf]) -> Result<(), StoreError> {
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(path) else { continue };
        let mode = meta.permissions().mode() & 0o7777;
        let private = if meta.is_dir() { 0o700 } else { 0o600 };
        if meta.file_type().is_symlink() || mode & 0o077 == 0 {
            continue;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & private)).map_err(|e| StoreError::DataDir {
            path: path.clone(),
            reason: format!("cannot restrict mode {mode:04o} to {:04o}: {e}", mode & private),
        })?;
    }
    Ok(())
}

impl Store {
    /// Opens (creating when missing) the database and the key file, and runs migrations. `serve`
    /// and the admin commands have checked the data dir first ([`prepare_data_dir`]). On
    /// PostgreSQL the connections are named after the program (see [`Store::open_as`]).
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_as(options, "mailroom").await
    }

    /// [`Store::open`] for node `node` (`[server] node`), whose name PostgreSQL shows as the
    /// connections' `application_name`. The key file is in the data dir on every engine (each
    /// node has its copy).
    pub async fn open_as(options: StoreOptions, node: &str) -> Result<Store, StoreError> {
        tighten(&[options.data_dir.join("certs"), options.data_dir.join("certs/cert.pem")])?;
        let db = match options.storage.postgres_url() {
            Some(url) => engine::Db::Postgres(postgres::open(url, node).await?),
            None => engine::Db::Sqlite(sqlite::open(&options.database_path).await?),
        };
        let keys = Arc::new(KeyRing::load_or_create(&options.master_key_path)?);
        let store = Store {
            db,
            keys,
            options: Arc::new(options),
            changes: Arc::new(tokio::sync::watch::channel(0).0),
            writer: Arc::default(),
            presence: presence::channel(),
        };
        // Only SQLite databases from before issue #8 hold clear tags (a PostgreSQL one is newer).
        if matches!(store.db, engine::Db::Sqlite(_)) {
            let sealed = store.seal_clear_tags().await?;
            if sealed > 0 {
                tracing::info!(cases = sealed, "sealed the tags that earlier versions stored in clear");
            }
        }
        Ok(store)
    }

    /// The engine the store runs on ("sqlite" or "postgres"), for logs.
    pub fn engine(&self) -> &'static str {
        self.db.engine()
    }

    /// Tells watchers that staff-visible data changed (callable from any thread).
    pub fn changed(&self) {
        self.changes.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Closes every pooled connection (waits for those in use to come back).
    pub async fn close(&self) {
        self.db.close().await;
    }

    /// The engine's pool, for [`engine::on_db!`].
    pub(crate) fn db(&self) -> &engine::Db {
        &self.db
    }

    /// The SQLite pool, for unit tests that look at SQLite's rows directly (panics on
    /// PostgreSQL). Every store operation runs through `engine::on_db!`.
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> &sqlx::SqlitePool {
        match &self.db {
            engine::Db::Sqlite(pool) => pool,
            engine::Db::Postgres(_) => panic!("this unit test reads SQLite directly and needs a SQLite store"),
        }
    }

    /// Moves committed WAL pages into the database file without ever blocking the writer
    /// (PASSIVE); the writer restarts the WAL once a checkpoint has caught up. Nothing on
    /// PostgreSQL.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(sqlite::checkpoint(&self.db).await?)
    }

    pub async fn list(&self, limit: i64) -> Result<Vec<MessageSummary>, StoreError> {
        // The one statement written in each engine's dialect (JSON aggregation).
        let sql = match &self.db {
            engine::Db::Sqlite(_) => sqlite::LIST_MESSAGES,
            engine::Db::Postgres(_) => postgres::LIST_MESSAGES,
        };
        let mut list: Vec<MessageSummary> = on_db!(&self.db, pool => {
            sqlx::query(sql).bind(limit).fetch_all(pool).await?.into_iter().map(|r| MessageSummary {
                number: r.get(0),
                received_at: millis_to_rfc3339(r.get(1)),
                size: r.get(2),
                protocol: r.get(3),
                tls: r.get(4),
                parsed: r.get::<i64, _>(5) != 0,
                duplicate_count: r.get(6),
                queue: r.get(7),
                tags: serde_json::from_str(r.get::<&str, _>(8)).unwrap_or_default(),
                auth: r.get(9),
                cases: parse_cases(r.get::<Option<&str>, _>(10).unwrap_or("[]")),
                purged_by: r.get(11),
            })
            .collect()
        });
        // Case tags are sealed: opened here, for the operator on the host (who holds the key).
        let ids: Vec<i64> = list.iter().flat_map(|m| m.cases.iter().map(|c| c.case)).collect();
        let mut tags = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            tags.extend(self.case_tags_many(chunk).await?);
        }
        for case in list.iter_mut().flat_map(|m| m.cases.iter_mut()) {
            case.tags = tags.get(&case.case).cloned().unwrap_or_default();
        }
        Ok(list)
    }

    /// Decrypts the message registered as (`counter_year`, `seq`) (our trace header + the bytes
    /// received) and audits the read; `None` when there is none.
    pub async fn read_raw(&self, counter_year: i32, seq: u64, actor: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(id) = self.message_id_by_registration(counter_year, seq).await? else { return Ok(None) };
        let (number, raw) = self.open_message(id).await?;
        let read =
            audit::AuditEntry { at: now_millis(), actor: actor.into(), action: "message.read".into(), object: Some(number), detail: None };
        self.append_audit(vec![read]).await?;
        Ok(Some(raw))
    }

    /// Decrypts message `id` (by row id): its registration number and the bytes as stored (our
    /// trace header + the bytes received). Does NOT audit: every caller that shows the content
    /// to a person must authorise and audit the read itself.
    pub async fn open_message(&self, id: i64) -> Result<(String, Vec<u8>), StoreError> {
        type Columns = (String, Vec<u8>, i64, Vec<u8>, Vec<u8>, Vec<u8>);
        let row: Option<Columns> = on_db!(&self.db, pool => sqlx::query_as(
            "SELECT m.number, m.uid, m.key_id, m.wrapped_key, m.trace_ct, b.raw_ct
             FROM messages m JOIN message_blobs b ON b.message_id = m.id WHERE m.id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?);
        let Some((number, uid, key_id, wrapped_key, trace_ct, raw_ct)) = row else {
            return Err(match self.tombstone(id).await? {
                Some(tombstone) => StoreError::Purged(Box::new(tombstone)),
                None => StoreError::NotFound(format!("message #{id}")),
            });
        };
        let data_key = self.row_key(&uid, key_id, &wrapped_key)?;
        let mut raw = data_key.open(&aad("trace", &uid), &trace_ct)?;
        raw.extend_from_slice(&codec::unpack(data_key.open(&aad("raw", &uid), &raw_ct)?)?);
        Ok((number, raw))
    }

    /// The extracted record of message `id` (from, to, subject, dates …), decrypted. Not audited
    /// (see `open_message`).
    pub async fn open_fields(&self, id: i64) -> Result<record::Record, StoreError> {
        let row: Option<SealedColumn> = on_db!(&self.db, pool => {
            sqlx::query_as("SELECT uid, key_id, wrapped_key, fields_ct FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        let (uid, key_id, wrapped_key, fields_ct) = row.ok_or_else(|| StoreError::NotFound(format!("message #{id}")))?;
        self.open_record(&uid, key_id, &wrapped_key, &fields_ct)
    }

    /// The data key of a sealed row: wrapped by master key `key_id`, bound to the row's `uid`
    /// (messages, case entries: every `(uid, key_id, wrapped_key)` triple).
    pub fn row_key(&self, uid: &[u8], key_id: i64, wrapped_key: &[u8]) -> Result<DataKey, StoreError> {
        Ok(self.keys.unwrap(key_id as u32, wrapped_key, &aad("dek", uid))?)
    }

    /// A message's extracted record from its row's `uid, key_id, wrapped_key, fields_ct`.
    pub fn open_record(&self, uid: &[u8], key_id: i64, wrapped_key: &[u8], fields_ct: &[u8]) -> Result<record::Record, StoreError> {
        let fields = zeroize::Zeroizing::new(self.row_key(uid, key_id, wrapped_key)?.open(&aad("fields", uid), fields_ct)?);
        serde_json::from_slice(&fields).map_err(|e| StoreError::BatchFailed(format!("stored record unreadable: {e}")))
    }
}

fn parse_cases(json: &str) -> Vec<CaseSummary> {
    #[derive(serde::Deserialize)]
    struct Raw {
        case: i64,
        opening: String,
        queue: String,
        status: String,
        category: Option<String>,
        priority: String,
        due_at: Option<i64>,
        spam: i64,
        tier: Option<String>,
    }
    let raw: Vec<Raw> = serde_json::from_str(json).unwrap_or_default();
    raw.into_iter()
        .map(|r| CaseSummary {
            case: r.case,
            opening: r.opening,
            queue: r.queue,
            status: r.status,
            category: r.category,
            priority: r.priority,
            due_at: r.due_at.map(millis_to_rfc3339),
            tags: Vec::new(),
            spam: r.spam != 0,
            tier: r.tier,
        })
        .collect()
}

impl Store {
    /// Checks the audit chain (read-only).
    pub async fn verify_audit(&self) -> Result<audit::ChainCheck, StoreError> {
        let mut conn = self.db.begin_read().await?;
        Ok(audit::verify(&self.keys, &mut conn).await?)
    }

    /// Appends audit entries of their own (a staff read, an export), durably, before returning:
    /// in the writer's next batch while it runs — a read then takes no write transaction (on
    /// PostgreSQL, no turn at the sequencer lock) of its own —, otherwise (admin commands, tests,
    /// a stopping server) in a transaction of their own. Never call it holding a write unit: the
    /// writer would wait for that unit's lock.
    pub async fn append_audit(&self, entries: Vec<audit::AuditEntry>) -> Result<(), StoreError> {
        if let Some(writer) = self.writer.get().and_then(writer::WeakWriter::upgrade) {
            return writer.audit(entries).await;
        }
        let mut tx = self.db.begin_write().await?;
        audit::append(&self.keys, &mut tx, &entries).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the key file is the one this database was written with, as far as the newest
    /// audit entry can tell (see [`audit::head_verifies`]).
    pub async fn audit_head_verifies(&self) -> Result<bool, StoreError> {
        let mut conn = self.db.begin_read().await?;
        Ok(audit::head_verifies(&self.keys, &mut conn).await?)
    }
}

pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn millis_to_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}
