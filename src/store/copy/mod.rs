//! `mailroom store copy`: moves a single-node SQLite store to PostgreSQL, all or nothing.
//!
//! The SQLite file is held exclusively (no server may run on it) and only read. The target is
//! migrated, must hold nothing of ours yet, and receives every table's rows in ONE transaction
//! that first takes the `sequencer` row lock (so a node started on the target meanwhile waits):
//! rows as they are, tables in foreign-key order. Before COMMIT the copy checks that every table
//! has as many rows as the source, moves the identity sequences past the copied ids, checks the
//! copied counters (message/UID, case, registration numbers) are ahead of every id in use, so the
//! next delivery continues the numbering without a gap, verifies the audit chain with the key
//! file and appends a `store.copy` entry to it. Nothing of customer content is logged or printed:
//! sealed columns are copied sealed.

mod rows;
mod source;
mod target;

use std::time::Instant;

use sqlx::PgConnection;

use super::audit::{self, AuditEntry, ChainCheck};
use super::config::redacted_url;
use super::crypto::KeyRing;
use super::engine::Conn;
use super::{StoreError, StoreOptions};

/// The name the copy's connections and its sequencer stamp carry.
const NODE: &str = "store-copy";

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0} is in use by another process: stop `mailroom serve` (and any admin command) on this data dir before copying its store")]
    SourceInUse(String),
    #[error("{0}")]
    Source(String),
    #[error("the target database is not empty: table {0} has rows (the copy writes only into a database that holds no mailroom data)")]
    TargetNotEmpty(String),
    #[error("schema: {0}")]
    Schema(String),
    #[error("check after copying failed, nothing was written: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// What was copied (table names and row counts only: no customer data).
#[derive(Debug)]
pub struct CopySummary {
    /// Every table copied, in the order it was written, with its row count.
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
    pub seconds: f64,
    /// Audit entries on the target after the copy (its own `store.copy` entry included).
    pub audit_entries: u64,
    /// The chain's head before the copy's own entry: the source's head.
    pub source_head: Vec<u8>,
    /// The target database, its password hidden.
    pub target: String,
}

/// Copies the SQLite store of `source` (its database file and key file) into the PostgreSQL
/// database at `url`; `actor` is who runs it, for the audit entry (`cli:NAME`).
pub async fn copy_to_postgres(source: &StoreOptions, url: &str, actor: &str) -> Result<CopySummary, CopyError> {
    let started = Instant::now();
    if source.storage.postgres_url().is_some() {
        return Err(CopyError::Source(
            "the configuration's [storage] database is already PostgreSQL: give the SQLite store's config".into(),
        ));
    }
    let target_name = redacted_url(url);
    if !["postgres://", "postgresql://"].iter().any(|scheme| url.starts_with(scheme)) {
        return Err(CopyError::Source(format!("--to {target_name}: give a postgres:// URL")));
    }
    // The key file only verifies the chain and extends it: without it nothing can be checked.
    let keys = KeyRing::load(&source.master_key_path).map_err(StoreError::from)?;
    let mut lite = source::open(&source.database_path).await?;
    let result = copy(&mut lite, &keys, url, actor).await;
    source::close(lite).await;
    let (tables, audit_entries, source_head) = result?;
    Ok(CopySummary {
        rows: tables.iter().map(|(_, n)| n).sum(),
        tables,
        seconds: started.elapsed().as_secs_f64(),
        audit_entries,
        source_head,
        target: target_name,
    })
}

type Copied = (Vec<(String, u64)>, u64, Vec<u8>);

async fn copy(lite: &mut sqlx::SqliteConnection, keys: &KeyRing, url: &str, actor: &str) -> Result<Copied, CopyError> {
    target::refuse_foreign(url).await?;
    // Connects as nodes do (durable commits, no statement timeout) and migrates.
    let pool = super::postgres::open(url, NODE).await?;
    let mut conn = Conn::PostgresWrite(super::postgres::begin_write(&pool).await?);
    let pg = postgres(&mut conn);
    let tables = target::tables(pg).await?;
    let source_tables = source::tables(lite).await?;
    let target_names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut sorted = target_names.clone();
    sorted.sort_unstable();
    if sorted != source_tables.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(CopyError::Schema(format!("the source has tables {source_tables:?}, the target {sorted:?}")));
    }
    target::claim_empty(pg, &tables).await?;

    let mut copied = Vec::with_capacity(tables.len());
    for table in &tables {
        let n = rows::copy_table(lite, pg, table).await.map_err(|e| CopyError::Schema(format!("copying table {}: {e}", table.name)))?;
        tracing::debug!(table = %table.name, rows = n, "table copied");
        copied.push((table.name.clone(), n));
    }
    for (table, n) in &copied {
        let (in_source, in_target) = (source::count(lite, table).await?, target::count(pg, table).await?);
        if in_source != in_target || in_target != *n as i64 {
            return Err(CopyError::Mismatch(format!("table {table}: {in_source} rows in the source, {in_target} in the target")));
        }
    }
    target::reset_sequences(pg).await?;
    target::check_counters(pg).await?;
    target::stamp_sequencer(pg, NODE, super::now_millis()).await?;

    let (entries, head) = match audit::verify(keys, &mut conn).await? {
        ChainCheck::Intact { entries, head } => (entries, head),
        ChainCheck::Broken { id, reason } => {
            return Err(CopyError::Mismatch(format!(
                "the audit chain is broken at entry {id}: {reason} (so is the source's: see `mailroom audit verify`)"
            )));
        }
    };
    let rows: u64 = copied.iter().map(|(_, n)| n).sum();
    let entry = AuditEntry {
        at: super::now_millis(),
        actor: actor.to_string(),
        action: "store.copy".into(),
        object: None,
        detail: Some(format!("from sqlite: {} tables, {rows} rows, {entries} audit entries", copied.len())),
    };
    audit::append(keys, &mut conn, &[entry]).await?;
    conn.commit().await?;
    pool.close().await;
    Ok((copied, entries + 1, head))
}

/// The PostgreSQL connection of the copy's write transaction.
fn postgres(conn: &mut Conn) -> &mut PgConnection {
    match conn {
        Conn::PostgresWrite(tx) => tx,
        _ => unreachable!("the copy's transaction is on PostgreSQL"),
    }
}

/// `name` as an SQL identifier (both engines: double quotes, `"` doubled). Table and column
/// names come from the schemas, never from input.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
