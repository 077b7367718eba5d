//! Per-device app passwords for IMAP (`app_passwords`): argon2id hashes like the users' own
//! passwords, a device name the user chose, when it was made and last used.

use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// One app password as listed (no hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub id: i64,
    pub device: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// The user's app passwords, oldest first.
pub async fn list(store: &Store, user_id: i64) -> Result<Vec<Listed>, StoreError> {
    let rows: Vec<(i64, String, i64, Option<i64>)> = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT id, device, created_at, last_used_at FROM app_passwords WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(pool)
            .await?
    });
    Ok(rows.into_iter().map(|(id, device, created_at, last_used_at)| Listed { id, device, created_at, last_used_at }).collect())
}

/// (id, device, hash) of each of the user's app passwords, for a login to check.
pub async fn hashes(store: &Store, user_id: i64) -> Result<Vec<(i64, String, String)>, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_as("SELECT id, device, password_hash FROM app_passwords WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(pool)
            .await?
    }))
}

impl Tx {
    /// A new app password; None when the user has one for this device name already.
    pub async fn insert_app_password(&mut self, user_id: i64, device: &str, hash: &str, now: i64) -> Result<Option<i64>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_scalar(
            "INSERT INTO app_passwords (user_id, device, password_hash, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, device) DO NOTHING RETURNING id",
        )
        .bind(user_id)
        .bind(device)
        .bind(hash)
        .bind(now)
        .fetch_optional(c)
        .await?))
    }

    /// Revokes one of the user's app passwords; its device name, or None when there is no such.
    pub async fn revoke_app_password(&mut self, user_id: i64, id: i64) -> Result<Option<String>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_scalar("DELETE FROM app_passwords WHERE user_id = $1 AND id = $2 RETURNING device")
            .bind(user_id)
            .bind(id)
            .fetch_optional(c)
            .await?))
    }

    /// Revokes every app password of the user; how many there were.
    pub async fn revoke_all_app_passwords(&mut self, user_id: i64) -> Result<u64, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query("DELETE FROM app_passwords WHERE user_id = $1")
            .bind(user_id)
            .execute(c)
            .await?
            .rows_affected()))
    }

    pub async fn app_password_used(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE app_passwords SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }
}
