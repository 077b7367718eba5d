//! The SQLite store being moved: opened so that nothing else can use it while it is read (SQLite's
//! exclusive locking mode: the first read fails at once if any other process, a running
//! `mailroom serve` or an admin command, has the database open) and so that this connection
//! cannot change it (`query_only`).

use std::path::Path;

use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::CopyError;

/// Opens `path` exclusively and read-only, and checks that its schema is the one this version
/// writes (every migration applied, none unknown) and holds no tags still in clear.
pub(super) async fn open(path: &Path) -> Result<SqliteConnection, CopyError> {
    if !path.is_file() {
        return Err(CopyError::Source(format!("no mailroom database at {} (wrong --from?)", path.display())));
    }
    let options = super::super::sqlite::exclusive_read_options(path);
    let in_use = |e: sqlx::Error| match &e {
        sqlx::Error::Database(db) if db.message().contains("locked") || db.code().as_deref() == Some("5") => {
            CopyError::SourceInUse(path.display().to_string())
        }
        _ => CopyError::Db(e),
    };
    let mut conn = options.connect().await.map_err(in_use)?;
    // The first read takes the exclusive lock (held until the connection closes).
    let applied: (Option<i64>, i64) =
        sqlx::query_as("SELECT MAX(version), COUNT(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut conn).await.map_err(in_use)?;
    let expected = super::super::MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).count() as i64;
    let newest = super::super::MIGRATOR.iter().map(|m| m.version).max();
    if applied != (newest, expected) {
        return Err(CopyError::Source(format!(
            "{} has schema version {} ({} migrations); this mailroom writes version {} ({expected}): \
             open it once with this version (e.g. `mailroom audit verify --data-dir …`) before copying",
            path.display(),
            applied.0.unwrap_or(0),
            applied.1,
            newest.unwrap_or(0)
        )));
    }
    let clear_tags: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases_clear_tags").fetch_one(&mut conn).await?;
    if clear_tags > 0 {
        return Err(CopyError::Source(format!(
            "{} still holds {clear_tags} cases with tags in clear: open it once with this version \
             (e.g. `mailroom audit verify --data-dir …`), which seals them, before copying",
            path.display()
        )));
    }
    Ok(conn)
}

/// The tables of the store (without SQLite's and sqlx's own), by name.
pub(super) async fn tables(conn: &mut SqliteConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(conn)
    .await
}

/// Rows in `table`.
pub(super) async fn count(conn: &mut SqliteConnection, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", super::quoted(table)))).fetch_one(conn).await
}

/// Ends the exclusive hold (the server may start again).
pub(super) async fn close(conn: SqliteConnection) {
    let _ = conn.close().await;
}
