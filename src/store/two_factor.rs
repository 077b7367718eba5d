//! Second login factors: a user's TOTP secret (`user_totp`), sealed under a data key of its own
//! like customer data, and his one-time recovery codes (`user_recovery_codes`), stored as keyed
//! hashes. What counts as a valid code is `access::two_factor`'s business; here are the rows and
//! the single statements that make a code usable only once, on every node.

use zeroize::Zeroizing;

use super::crypto::{KeyRing, aad};
use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// A TOTP secret sealed for one user, ready to store.
pub struct SealedSecret {
    uid: Vec<u8>,
    key_id: i64,
    wrapped_key: Vec<u8>,
    secret: Vec<u8>,
}

/// The associated data names the user too, so a secret row copied to another user fails to open.
fn secret_kind(user_id: i64) -> String {
    format!("totp-secret/{user_id}")
}

/// Seals `secret` for `user_id` under a fresh data key.
pub fn seal_secret(keys: &KeyRing, user_id: i64, secret: &[u8]) -> Result<SealedSecret, StoreError> {
    let row = keys.new_row()?;
    let sealed = row.seal(&secret_kind(user_id), secret)?;
    Ok(SealedSecret { uid: row.uid.to_vec(), key_id: i64::from(row.key_id), wrapped_key: row.wrapped_key, secret: sealed })
}

/// A user's TOTP as stored, the secret opened.
pub struct StoredTotp {
    pub secret: Zeroizing<Vec<u8>>,
    /// False while the enrolment waits for its first code.
    pub confirmed: bool,
}

type TotpRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>, Option<i64>);

/// The user's TOTP secret (confirmed or pending), or None.
pub async fn totp(store: &Store, user_id: i64) -> Result<Option<StoredTotp>, StoreError> {
    let row: Option<TotpRow> = on_db!(store.db(), pool => {
        sqlx::query_as("SELECT uid, key_id, wrapped_key, secret, confirmed_at FROM user_totp WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
    });
    let Some((uid, key_id, wrapped_key, sealed, confirmed_at)) = row else { return Ok(None) };
    let key = store.row_key(&uid, key_id, &wrapped_key)?;
    let secret = Zeroizing::new(key.open(&aad(&secret_kind(user_id), &uid), &sealed)?);
    Ok(Some(StoredTotp { secret, confirmed: confirmed_at.is_some() }))
}

/// Whether the user has a confirmed TOTP (logins need a code).
pub async fn totp_enabled(store: &Store, user_id: i64) -> Result<bool, StoreError> {
    let found: Option<i64> = on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT user_id FROM user_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL")
            .bind(user_id)
            .fetch_optional(pool)
            .await?
    });
    Ok(found.is_some())
}

/// How many of the user's recovery codes are still unused.
pub async fn recovery_codes_left(store: &Store, user_id: i64) -> Result<i64, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM user_recovery_codes WHERE user_id = $1 AND used_at IS NULL")
            .bind(user_id)
            .fetch_one(pool)
            .await?
    }))
}

impl Tx {
    /// Starts (or restarts) an enrolment with a new secret; false, and nothing changed, when the
    /// user has a confirmed TOTP already (it must be disabled first).
    pub async fn start_totp(&mut self, user_id: i64, sealed: &SealedSecret, now: i64) -> Result<bool, StoreError> {
        let written: Option<i64> = on_conn!(self.engine(), c => sqlx::query_scalar(
            "INSERT INTO user_totp (user_id, uid, key_id, wrapped_key, secret, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (user_id) DO UPDATE SET uid = excluded.uid, key_id = excluded.key_id, wrapped_key = excluded.wrapped_key,
                 secret = excluded.secret, created_at = excluded.created_at, last_step = 0
             WHERE user_totp.confirmed_at IS NULL
             RETURNING user_id",
        )
        .bind(user_id)
        .bind(&sealed.uid)
        .bind(sealed.key_id)
        .bind(&sealed.wrapped_key)
        .bind(&sealed.secret)
        .bind(now)
        .fetch_optional(c)
        .await?);
        Ok(written.is_some())
    }

    /// Switches a pending enrolment on with the time step of its first code; false when there was
    /// none pending.
    pub async fn confirm_totp(&mut self, user_id: i64, step: i64, now: i64) -> Result<bool, StoreError> {
        let done = on_conn!(self.engine(), c => sqlx::query(
            "UPDATE user_totp SET confirmed_at = $2, last_step = $3 WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user_id)
        .bind(now)
        .bind(step)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Accepts a code of time step `step` once: true when it is later than every step accepted
    /// before (one statement, so two logins racing with the same code cannot both pass).
    pub async fn accept_totp_step(&mut self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        let done = on_conn!(self.engine(), c => sqlx::query(
            "UPDATE user_totp SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
        )
        .bind(user_id)
        .bind(step)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// Switches TOTP off: the secret and every recovery code go. True when there was a secret
    /// (confirmed or still being enrolled).
    pub async fn remove_totp(&mut self, user_id: i64) -> Result<bool, StoreError> {
        let removed = on_conn!(self.engine(), c => {
            sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *c).await?;
            sqlx::query("DELETE FROM user_totp WHERE user_id = $1").bind(user_id).execute(&mut *c).await?.rows_affected()
        });
        Ok(removed > 0)
    }

    /// Replaces the user's recovery codes by these hashes.
    pub async fn set_recovery_codes(&mut self, user_id: i64, hashes: &[Vec<u8>]) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => {
            sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *c).await?;
            for hash in hashes {
                sqlx::query("INSERT INTO user_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *c)
                    .await?;
            }
        });
        Ok(())
    }

    /// Uses up the recovery code with this hash: true the first time, false ever after.
    pub async fn use_recovery_code(&mut self, user_id: i64, hash: &[u8], now: i64) -> Result<bool, StoreError> {
        let done = on_conn!(self.engine(), c => sqlx::query(
            "UPDATE user_recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(hash)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(done == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store;

    #[tokio::test]
    async fn a_secret_is_sealed_confirmed_once_and_each_step_and_code_accepted_once() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        let anna = tx.insert_user("anna", "hash", 1).await.unwrap().unwrap();
        let bert = tx.insert_user("bert", "hash", 1).await.unwrap().unwrap();
        tx.commit().await.unwrap();

        let sealed = seal_secret(&store.keys, anna, b"12345678901234567890").unwrap();
        assert!(!sealed.secret.windows(20).any(|w| w == b"12345678901234567890"), "sealed, not in clear");
        let mut tx = store.begin_write().await.unwrap();
        assert!(tx.start_totp(anna, &sealed, 2).await.unwrap());
        // The same sealed row under another user does not open: the user is in the associated data.
        assert!(tx.start_totp(bert, &sealed, 2).await.unwrap());
        tx.commit().await.unwrap();
        let stored = totp(&store, anna).await.unwrap().unwrap();
        assert_eq!(stored.secret.as_slice(), b"12345678901234567890");
        assert!(!stored.confirmed && !totp_enabled(&store, anna).await.unwrap());
        assert!(totp(&store, bert).await.is_err());

        let mut tx = store.begin_write().await.unwrap();
        assert!(!tx.accept_totp_step(anna, 5).await.unwrap(), "not confirmed yet");
        assert!(tx.confirm_totp(anna, 10, 3).await.unwrap());
        assert!(!tx.confirm_totp(anna, 11, 3).await.unwrap(), "confirmed once");
        assert!(!tx.start_totp(anna, &seal_secret(&store.keys, anna, b"x").unwrap(), 4).await.unwrap(), "no silent replacement");
        assert!(!tx.accept_totp_step(anna, 10).await.unwrap(), "the confirming code's step is used");
        assert!(tx.accept_totp_step(anna, 11).await.unwrap());
        assert!(!tx.accept_totp_step(anna, 11).await.unwrap(), "replay");
        assert!(!tx.accept_totp_step(anna, 9).await.unwrap(), "older");
        tx.set_recovery_codes(anna, &[vec![1; 32], vec![2; 32]]).await.unwrap();
        assert!(tx.use_recovery_code(anna, &[1; 32], 5).await.unwrap());
        assert!(!tx.use_recovery_code(anna, &[1; 32], 5).await.unwrap(), "once");
        assert!(!tx.use_recovery_code(bert, &[2; 32], 5).await.unwrap(), "another user's");
        tx.commit().await.unwrap();
        assert!(totp_enabled(&store, anna).await.unwrap());
        assert_eq!(recovery_codes_left(&store, anna).await.unwrap(), 1);

        let mut tx = store.begin_write().await.unwrap();
        tx.remove_totp(anna).await.unwrap();
        tx.commit().await.unwrap();
        assert!(totp(&store, anna).await.unwrap().is_none());
        assert_eq!(recovery_codes_left(&store, anna).await.unwrap(), 0);
    }
}
