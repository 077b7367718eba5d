//! The two database engines behind one store: SQLite (embedded, the default) and PostgreSQL
//! (several nodes on one database). An enum over sqlx's native pools and connections, not
//! `sqlx::Any`: each engine keeps its own typed binds and decoding.
//!
//! Shared SQL is written once (`$N` placeholders, types both engines accept) and run through
//! [`on_db!`] / [`on_conn!`], which expand the same code once per engine. What differs between the
//! engines lives in `sqlite.rs` and `postgres.rs` only.

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// The connection pool of the engine the store runs on.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One connection taken from the pool: a write transaction or a plain read connection.
pub enum Conn {
    SqliteWrite(Transaction<'static, Sqlite>),
    SqliteRead(PoolConnection<Sqlite>),
    PostgresWrite(Transaction<'static, Postgres>),
    PostgresRead(PoolConnection<Postgres>),
}

impl Db {
    /// Which engine, for logs and error messages.
    pub fn engine(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Starts a write transaction holding the engine's single-writer lock: SQLite's
    /// `BEGIN IMMEDIATE`, PostgreSQL's row lock on `sequencer` (see `postgres::begin_write`).
    pub async fn begin_write(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Conn::SqliteWrite(super::sqlite::begin_write(pool).await?),
            Db::Postgres(pool) => Conn::PostgresWrite(super::postgres::begin_write(pool).await?),
        })
    }

    /// A write transaction for rows that no counter, number or audit entry depends on (the
    /// outbox worker's own rows): SQLite's `BEGIN IMMEDIATE` (it has one writer anyway), a plain
    /// transaction on PostgreSQL, so that such updates from several nodes do not queue behind the
    /// `sequencer` row lock of every registration batch.
    pub async fn begin_unsequenced(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Conn::SqliteWrite(super::sqlite::begin_write(pool).await?),
            Db::Postgres(pool) => Conn::PostgresWrite(pool.begin().await?),
        })
    }

    /// A connection for a sequence of reads (no lock, no transaction).
    pub async fn begin_read(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Db::Sqlite(pool) => Conn::SqliteRead(pool.acquire().await?),
            Db::Postgres(pool) => Conn::PostgresRead(pool.acquire().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

impl Conn {
    /// Keeps what a write transaction did (a read connection has nothing to keep).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Conn::SqliteWrite(tx) => tx.commit().await,
            Conn::PostgresWrite(tx) => tx.commit().await,
            Conn::SqliteRead(_) | Conn::PostgresRead(_) => Ok(()),
        }
    }

    /// Makes the commit of this write transaction wake the other nodes' watchers (PostgreSQL's
    /// NOTIFY, delivered on commit); nothing on SQLite, where every writer is on this node.
    /// Call it in transactions after which the caller runs `Store::changed()`.
    pub async fn notify_changes(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Conn::PostgresWrite(tx) => super::postgres::notify_changes(tx).await,
            Conn::SqliteWrite(_) | Conn::SqliteRead(_) | Conn::PostgresRead(_) => Ok(()),
        }
    }
}

/// Runs `$body` with `$pool` bound to the store's pool, once written, expanded for each engine:
/// `on_db!(&store.db, pool => sqlx::query(SQL).bind(x).fetch_all(pool).await?.iter().map(...))`.
/// Rows differ in type between the engines, so decode them inside `$body`.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::engine::Db::Sqlite($pool) => $body,
            $crate::store::engine::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to `&mut` the engine's connection (inside its transaction, if
/// it has one), expanded for each engine as [`on_db!`].
macro_rules! on_conn {
    ($target:expr, $conn:ident => $body:expr) => {
        match $target {
            $crate::store::engine::Conn::SqliteWrite(tx) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *tx;
                $body
            }
            $crate::store::engine::Conn::SqliteRead(c) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *c;
                $body
            }
            $crate::store::engine::Conn::PostgresWrite(tx) => {
                let $conn: &mut sqlx::PgConnection = &mut *tx;
                $body
            }
            $crate::store::engine::Conn::PostgresRead(c) => {
                let $conn: &mut sqlx::PgConnection = &mut *c;
                $body
            }
        }
    };
}

pub(crate) use {on_conn, on_db};
