//! What only SQLite needs: connection options and PRAGMAs, how a write transaction starts, and
//! statements written in SQLite's own dialect (JSON aggregation). The maintenance PRAGMAs take
//! either engine and do nothing on PostgreSQL, so callers need no engine switch of their own.
//! A second engine gets a sibling file with the same functions; nothing outside `store` sees
//! either.
//!
//! Placeholders are `$1, $2 …` everywhere (PostgreSQL's form). sqlx binds `$N` by its number,
//! but SQLite itself treats `$N` as a named parameter numbered by FIRST APPEARANCE, and rusqlite's
//! positional `params![…]` binds by that order: in statements run through rusqlite (the writer),
//! write the placeholders in ascending order of first appearance (a repeated `$1` is fine).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, Transaction};

use super::engine::{Conn, Db};

/// Opens the pool on the database file (created when missing, 0600 like its -wal and -shm, also
/// when an older version made them looser) and brings its schema up to date.
pub(crate) async fn open(path: &Path) -> Result<SqlitePool, super::StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(sqlx::Error::Io)?;
    }
    let suffixed = |suffix: &str| {
        let mut name = path.to_path_buf().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    super::tighten(&[path.to_path_buf(), suffixed("-wal"), suffixed("-shm")])?;
    let pool = SqlitePoolOptions::new().max_connections(4).connect_with(connect_options(path)).await?;
    super::MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Every SQLite connection's options start here: the page-cache wrapper must be in place before
/// the first connection initialises SQLite (`sqlite_pcache`).
fn new_options() -> SqliteConnectOptions {
    super::sqlite_pcache::install();
    SqliteConnectOptions::new()
}

pub(crate) fn connect_options(path: &Path) -> SqliteConnectOptions {
    new_options()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: the WAL is fsynced at every commit, so a 250 survives power loss, not just a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        // Sorting and temp indexes stay in memory: no clear-text scratch files on disk.
        .pragma("temp_store", "MEMORY")
        // Every connection (and the writer's) zeroes what it frees: deleted or moved cells and
        // freed pages. Without it a page split leaves old copies of rows (sealed data, wrapped
        // keys) in unused page space, where erasure (`store::purge`) could not reach them.
        .pragma("secure_delete", "ON")
        .disable_statement_logging()
}

/// The options `store copy` reads a stopped store with: exclusive locking mode (the first read
/// fails at once, instead of waiting, while any other process has the database open, and no
/// other process can open it until this connection closes) and `query_only` (this connection
/// cannot change it). Never creates the file.
pub(crate) fn exclusive_read_options(path: &Path) -> SqliteConnectOptions {
    new_options()
        .filename(path)
        .create_if_missing(false)
        .locking_mode(sqlx::sqlite::SqliteLockingMode::Exclusive)
        .busy_timeout(Duration::ZERO)
        .pragma("query_only", "ON")
        .pragma("temp_store", "MEMORY")
        .disable_statement_logging()
}

/// Starts a transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
/// read-then-write sequence cannot fail half-way with SQLITE_BUSY on the upgrade and two
/// writers serialise at the start instead of deadlocking.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Makes SQLite zero the contents of deleted or overwritten rows on this connection, so clear
/// text that is being sealed, or a key being destroyed, does not linger in free pages (every
/// connection has it on since issue #12; the callers that need it say so). Nothing on PostgreSQL
/// (no such setting; its old row versions wait for VACUUM).
pub(crate) async fn secure_delete(conn: &mut Conn, on: bool) -> Result<(), sqlx::Error> {
    let sql = if on { "PRAGMA secure_delete = ON" } else { "PRAGMA secure_delete = OFF" };
    match conn {
        Conn::SqliteWrite(tx) => sqlx::query(sql).execute(&mut **tx).await.map(|_| ()),
        Conn::SqliteRead(c) => sqlx::query(sql).execute(&mut **c).await.map(|_| ()),
        Conn::PostgresWrite(_) | Conn::PostgresRead(_) => Ok(()),
    }
}

/// Copies the whole WAL into the database file and truncates it (what it held is gone from disk).
/// It waits (busy timeout) for readers on older snapshots, and tries a few times more when one
/// still holds it back; false when the WAL could not be truncated. Nothing on PostgreSQL (its
/// WAL is the server's).
pub(crate) async fn truncate_wal(db: &Db) -> Result<bool, sqlx::Error> {
    let Db::Sqlite(pool) = db else { return Ok(true) };
    for _ in 0..5 {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(pool).await?;
        if busy == 0 {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(false)
}

/// The writer's checkpoints on its own rusqlite connection: PASSIVE between commits (never
/// blocks), TRUNCATE when it stops (a clean stop leaves one file).
pub(crate) fn checkpoint_sync(conn: &rusqlite::Connection, truncate: bool) -> rusqlite::Result<()> {
    conn.query_row(if truncate { "PRAGMA wal_checkpoint(TRUNCATE)" } else { "PRAGMA wal_checkpoint(PASSIVE)" }, [], |_| Ok(()))
}

/// Moves committed WAL pages into the database file without ever blocking the writer (PASSIVE).
/// Nothing on PostgreSQL (its WAL is the server's).
pub(crate) async fn checkpoint(db: &Db) -> Result<(), sqlx::Error> {
    match db {
        Db::Sqlite(pool) => sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await.map(|_| ()),
        Db::Postgres(_) => Ok(()),
    }
}

/// Registrations for operators, oldest first, `$1` at most: each message with its first case's
/// queue and, as one JSON array, every case it opened or joined (SQLite's JSON aggregation).
pub(crate) const LIST_MESSAGES: &str =
    "SELECT m.number, m.received_at, m.size, m.protocol, m.tls, m.parsed, m.duplicate_count, c.queue, m.tags, m.auth,
            (SELECT json_group_array(json_object('case', k.id, 'opening', k.opening_number, 'queue', k.queue, 'status', k.status,
                     'category', k.category, 'priority', k.priority, 'due_at', k.due_at, 'spam', k.spam, 'tier', k.tier))
             FROM message_cases mc JOIN cases k ON k.id = mc.case_id WHERE mc.message_id = m.id),
            m.purged_by
     FROM messages m JOIN cases c ON c.id = m.case_id ORDER BY m.id LIMIT $1";

/// The outbox worker's claim (`outbox::claim`): up to `$3` due rows, oldest first, taken in one
/// statement under the write lock, conditional on their status.
/// A page of a mailbox's UIDs (queue $1, above $2, at most $3) as one comma-separated text: a
/// million rows one by one cost sqlx far more than SQLite takes to read them (`Store::mailbox_uids_after`).
pub(crate) const MAILBOX_UID_PAGE: &str =
    "SELECT group_concat(uid) FROM (SELECT uid FROM message_cases WHERE queue = $1 AND uid > $2 ORDER BY uid LIMIT $3)";

pub(crate) const CLAIM_OUTBOX: &str = "UPDATE outbox SET status = 'sending', next_attempt_at = $1
     WHERE id IN (SELECT id FROM outbox WHERE status IN ('pending', 'sending') AND next_attempt_at <= $2
                  ORDER BY next_attempt_at, id LIMIT $3)
       AND status IN ('pending', 'sending') AND next_attempt_at <= $2
     RETURNING id, kind, attempts, uid, key_id, wrapped_key, mail_ct";

/// The database's pages: (page_count, freelist_count, page_size), as the last commit left them.
pub(crate) async fn pages(pool: &SqlitePool) -> Result<(i64, i64, i64), sqlx::Error> {
    let count: i64 = sqlx::query_scalar("PRAGMA page_count").fetch_one(pool).await?;
    let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(pool).await?;
    let size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(pool).await?;
    Ok((count, free, size))
}

/// The options `mailroom backup` reads the live database with: read-only (it never writes the
/// store), never created, waiting like any reader while another connection starts a checkpoint.
pub(crate) fn snapshot_source_options(path: &Path) -> SqliteConnectOptions {
    new_options()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .pragma("temp_store", "MEMORY")
        .disable_statement_logging()
}

/// Writes a consistent copy of the database `conn` reads into `target` (which must not exist,
/// or be empty) with `VACUUM INTO`.
///
/// Why `VACUUM INTO` and not the online backup API: in WAL mode the statement is ONE read
/// transaction, so the copy is the database as of one commit and the writer never waits for it
/// (readers do not block the writer; only checkpoints cannot pass the snapshot until it ends,
/// and the server's checkpoints are PASSIVE). The backup API copies in steps and restarts from
/// the first page whenever another connection commits between two steps — under steady mail it
/// might never finish — unless it copies in one step, which is the same one read transaction
/// without VACUUM's advantages: the copy is compacted and carries no free pages, so nothing the
/// store deleted (old clear tags, removed rows) lingers in a backup. The copy is in rollback
/// (DELETE) journal mode, one self-contained file; SQLite does not fsync it: the caller does.
pub(crate) async fn snapshot_into(conn: &mut sqlx::SqliteConnection, target: &Path) -> Result<(), sqlx::Error> {
    let target = target.to_str().ok_or_else(|| sqlx::Error::Protocol("the backup path is not UTF-8".into()))?;
    sqlx::query("VACUUM INTO $1").bind(target).execute(conn).await.map(|_| ())
}

/// The options a backup file is checked with: read-only and immutable (no lock, no -journal,
/// -wal or -shm next to it: the file is only read, and nobody else writes a backup).
pub(crate) fn backup_read_options(path: &Path) -> SqliteConnectOptions {
    new_options()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .immutable(true)
        .pragma("temp_store", "MEMORY")
        .disable_statement_logging()
}

/// SQLite's own check of every page, index and constraint of the file: empty when it is sound,
/// else its first complaints.
pub(crate) async fn integrity_problems(pool: &SqlitePool) -> Result<Vec<String>, sqlx::Error> {
    let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)").fetch_all(pool).await?;
    Ok(if lines.len() == 1 && lines[0] == "ok" { Vec::new() } else { lines })
}
