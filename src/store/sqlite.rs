//! What only SQLite needs: connection options and PRAGMAs, and how a write transaction starts.
//! A second engine gets a sibling file with the same functions; nothing outside `store` sees
//! either.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, Transaction};

pub(crate) fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: the WAL is fsynced at every commit, so a 250 survives power loss, not just a crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
        // Sorting and temp indexes stay in memory: no clear-text scratch files on disk.
        .pragma("temp_store", "MEMORY")
        .disable_statement_logging()
}

/// Starts a transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
/// read-then-write sequence cannot fail half-way with SQLITE_BUSY on the upgrade and two
/// writers serialise at the start instead of deadlocking.
pub(crate) async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}
