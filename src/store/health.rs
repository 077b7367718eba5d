//! What the metrics listener asks the store (`telemetry`): the counts behind its gauges (queue
//! names, statuses and numbers only, never customer data), the store's size and the room left
//! under `storage.max_database_size`, and whether a write gets through the writer.

use super::engine::{Db, on_db};
use super::{Store, StoreError};

/// Cases, overdue cases and outbox rows, counted by fixed columns.
#[derive(Debug, Default, Clone)]
pub struct OperationalCounts {
    /// (queue, status, cases) for the active statuses (new, open, waiting).
    pub cases: Vec<(String, String, i64)>,
    /// (queue, cases) new or open and past their due time.
    pub overdue: Vec<(String, i64)>,
    /// (status, rows): pending, sending, failed.
    pub outbox: Vec<(String, i64)>,
}

/// How big the store is.
#[derive(Debug, Clone, Copy)]
pub struct StoreSize {
    /// On disk: SQLite's file and its WAL; PostgreSQL's `pg_database_size`.
    pub bytes: u64,
    /// In use: SQLite's pages less its free list (what `max_database_size` counts); PostgreSQL:
    /// `bytes`.
    pub used_bytes: u64,
    /// `storage.max_database_size` (SQLite only).
    pub max_bytes: Option<u64>,
}

impl StoreSize {
    /// Bytes that may still be written under the cap, when there is one.
    pub fn room(&self) -> Option<u64> {
        self.max_bytes.map(|max| max.saturating_sub(self.used_bytes))
    }
}

impl Store {
    /// Three grouped counts, each over an index (`cases_due`: status, due_at; `outbox_due`).
    pub async fn operational_counts(&self, now: i64) -> Result<OperationalCounts, StoreError> {
        Ok(on_db!(self.db(), pool => OperationalCounts {
            cases: sqlx::query_as(
                "SELECT queue, status, COUNT(*) FROM cases WHERE status IN ('new', 'open', 'waiting') GROUP BY queue, status",
            )
            .fetch_all(pool)
            .await?,
            overdue: sqlx::query_as(
                "SELECT queue, COUNT(*) FROM cases WHERE status IN ('new', 'open') AND due_at < $1 GROUP BY queue",
            )
            .bind(now)
            .fetch_all(pool)
            .await?,
            outbox: sqlx::query_as(
                "SELECT status, COUNT(*) FROM outbox WHERE status IN ('pending', 'sending', 'failed') GROUP BY status",
            )
            .fetch_all(pool)
            .await?,
        }))
    }

    pub async fn size(&self) -> Result<StoreSize, StoreError> {
        match self.db() {
            Db::Sqlite(pool) => {
                let (pages, free, page_size) = super::sqlite::pages(pool).await?;
                let path = &self.options.database_path;
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                let on_disk = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                Ok(StoreSize {
                    bytes: on_disk(path) + on_disk(std::path::Path::new(&wal)),
                    used_bytes: ((pages - free).max(0) * page_size) as u64,
                    max_bytes: self.options.storage.max_database_size,
                })
            }
            Db::Postgres(pool) => {
                let bytes = super::postgres::database_size(pool).await?.max(0) as u64;
                Ok(StoreSize { bytes, used_bytes: bytes, max_bytes: None })
            }
        }
    }

    /// Whether a write gets through: an empty batch through the running writer, which begins
    /// and commits a write transaction like every registration batch (SQLite's write lock,
    /// PostgreSQL's `sequencer` row). `Closed` when no writer runs.
    pub async fn check_writable(&self) -> Result<(), StoreError> {
        let writer = self.writer.get().and_then(super::writer::WeakWriter::upgrade).ok_or(StoreError::Closed)?;
        writer.audit(Vec::new()).await
    }
}
