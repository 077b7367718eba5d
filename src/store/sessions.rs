//! HTTP sessions and bearer tokens (`sessions`): only a hash of each token is stored.

use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// A session as stored (times in unix ms).
#[derive(sqlx::FromRow)]
pub struct Session {
    pub user_id: i64,
    /// "cookie" or "bearer".
    pub kind: String,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

pub async fn insert(store: &Store, token_hash: &[u8], session: &Session, now: i64) -> Result<(), StoreError> {
    on_db!(store.db(), pool => sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, kind, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token_hash)
    .bind(session.user_id)
    .bind(&session.kind)
    .bind(now)
    .bind(session.expires_at)
    .bind(session.last_seen_at)
    .execute(pool)
    .await
    .map(|_| ())?);
    Ok(())
}

pub async fn find(store: &Store, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_as("SELECT user_id, kind, expires_at, last_seen_at FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
    }))
}

pub async fn delete(store: &Store, token_hash: &[u8]) -> Result<(), StoreError> {
    on_db!(store.db(), pool => {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await.map(|_| ())?
    });
    Ok(())
}

pub async fn touch(store: &Store, token_hash: &[u8], now: i64) -> Result<(), StoreError> {
    on_db!(store.db(), pool => {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2").bind(now).bind(token_hash).execute(pool).await.map(|_| ())?
    });
    Ok(())
}

/// Drops sessions that expired by `now` or were last seen by `idle_cutoff`; how many.
pub async fn purge(store: &Store, now: i64, idle_cutoff: i64) -> Result<u64, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_cutoff)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}

impl Tx {
    /// Ends every session of a user.
    pub async fn end_sessions(&mut self, user_id: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(c).await.map(|_| ())?
        });
        Ok(())
    }
}
