//! A unit of work on the staff tables (users, roles, grants, sessions, pending changes, audit)
//! that the caller drives through typed methods and never sees as SQL.
//!
//! Access decides (who may do what, approval rules, throttling) between the statements of one
//! change, so the store hands it a [`Tx`] instead of doing the whole unit itself; the methods live
//! next to their tables (`users`, `roles`, `approvals`, `sessions`). A write unit holds the write
//! lock from its start (see `engine::Db::begin_write`), so read-then-write sequences are serialised.

use std::sync::Arc;

use super::audit::{self, AuditEntry};
use super::crypto::KeyRing;
use super::engine::Conn;
use super::{Store, StoreError};

/// A write transaction (or a plain read connection) over the staff tables.
pub struct Tx {
    conn: Conn,
    keys: Arc<KeyRing>,
}

impl Store {
    /// Starts a write unit: the write lock is taken at once; nothing is kept unless
    /// [`Tx::commit`] is called.
    pub async fn begin_write(&self) -> Result<Tx, StoreError> {
        Ok(Tx { conn: self.db.begin_write().await?, keys: self.keys.clone() })
    }

    /// A connection for a sequence of reads (no lock, no transaction).
    pub async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(Tx { conn: self.db.begin_read().await?, keys: self.keys.clone() })
    }
}

impl Tx {
    /// The engine's connection, for [`super::engine::on_conn!`].
    pub(super) fn engine(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Appends audit entries in this transaction (the change and its record commit together).
    pub async fn audit(&mut self, entries: &[AuditEntry]) -> Result<(), StoreError> {
        let keys = self.keys.clone();
        Ok(audit::append(&keys, &mut self.conn, entries).await?)
    }

    /// Keeps everything done in this unit (a read unit has nothing to keep).
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.conn.commit().await?)
    }
}
