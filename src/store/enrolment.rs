//! One-time enrolment codes on `users` rows: only a keyed MAC of the code, its expiry and its
//! issuer are stored. `access::enrolment` makes and checks the codes.

use super::StoreError;
use super::engine::on_conn;
use super::tx::Tx;

/// What an enrolment attempt is checked against.
pub struct Pending {
    pub user_id: i64,
    pub mac: Option<Vec<u8>>,
    pub expires_at: Option<i64>,
    pub locked: bool,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
}

/// `id, enrolment_mac, enrolment_expires_at, locked, failed_logins, locked_until` of a `users` row.
type PendingRow = (i64, Option<Vec<u8>>, Option<i64>, i64, i64, Option<i64>);

/// A fresh code for a user.
pub struct Issue<'a> {
    /// The hash of a discarded secret: no password works until the code is used.
    pub unusable_hash: &'a str,
    pub mac: &'a [u8],
    pub expires_at: i64,
    pub issuer: &'a str,
}

impl Tx {
    /// Gives user `user_id` a fresh code: the old password and any older code stop working, a
    /// lockout is lifted (so the user can enrol).
    pub async fn issue_code(&mut self, user_id: i64, code: &Issue<'_>, now: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, password_issuer = NULL, enrolment_mac = $3,
                    enrolment_expires_at = $4, enrolment_issuer = $5, failed_logins = 0, locked_until = NULL WHERE id = $6",
        )
        .bind(code.unusable_hash)
        .bind(now)
        .bind(code.mac)
        .bind(code.expires_at)
        .bind(code.issuer)
        .bind(user_id)
        .execute(c)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn pending_enrolment(&mut self, name: &str) -> Result<Option<Pending>, StoreError> {
        let row: Option<PendingRow> = on_conn!(self.engine(), c => {
            sqlx::query_as("SELECT id, enrolment_mac, enrolment_expires_at, locked, failed_logins, locked_until FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(c)
                .await?
        });
        Ok(row.map(|(user_id, mac, expires_at, locked, failed_logins, locked_until)| Pending {
            user_id,
            mac,
            expires_at,
            locked: locked != 0,
            failed_logins,
            locked_until,
        }))
    }

    /// The pending code's MAC and expiry of user `user_id` (None: no such user).
    pub async fn enrolment_of(&mut self, user_id: i64) -> Result<Option<(Option<Vec<u8>>, Option<i64>)>, StoreError> {
        Ok(on_conn!(self.engine(), c => {
            sqlx::query_as("SELECT enrolment_mac, enrolment_expires_at FROM users WHERE id = $1").bind(user_id).fetch_optional(c).await?
        }))
    }

    /// Sets the password with the code whose MAC is `mac`, only if it is still the user's
    /// unexpired code and the account is not locked (a concurrent use wins once). Whether it did.
    pub async fn enrol(&mut self, name: &str, mac: &[u8], password_hash: &str, now: i64) -> Result<bool, StoreError> {
        let changed = on_conn!(self.engine(), c => sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, password_issuer = enrolment_issuer, enrolment_mac = NULL,
                    enrolment_expires_at = NULL, enrolment_issuer = NULL, failed_logins = 0, locked_until = NULL
             WHERE name = $3 AND enrolment_mac = $4 AND enrolment_expires_at > $5 AND locked = 0",
        )
        .bind(password_hash)
        .bind(now)
        .bind(name)
        .bind(mac)
        .bind(now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    /// A wrong code: the user's failure count, and the end of the lockout it starts (if any).
    pub async fn count_enrol_failure(&mut self, user_id: i64, failed_logins: i64, lock_until: Option<i64>) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE users SET failed_logins = $1, locked_until = COALESCE($2, locked_until) WHERE id = $3")
            .bind(failed_logins)
            .bind(lock_until)
            .bind(user_id)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;

    #[tokio::test]
    async fn a_code_enrols_once_and_only_before_it_expires() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        let id = tx.insert_user("anna", "old", 1).await.unwrap().unwrap();
        tx.issue_code(id, &Issue { unusable_hash: "x", mac: b"mac", expires_at: 100, issuer: "user:olga" }, 10).await.unwrap();
        assert_eq!(tx.enrolment_of(id).await.unwrap(), Some((Some(b"mac".to_vec()), Some(100))));
        assert!(!tx.enrol("anna", b"mac", "new", 100).await.unwrap(), "expired");
        assert!(!tx.enrol("anna", b"other", "new", 50).await.unwrap(), "another code");
        assert!(tx.enrol("anna", b"mac", "new", 50).await.unwrap());
        assert!(!tx.enrol("anna", b"mac", "newer", 50).await.unwrap(), "used once");
        assert_eq!(tx.password_issuer(id).await.unwrap().as_deref(), Some("user:olga"));
        let pending = tx.pending_enrolment("anna").await.unwrap().unwrap();
        assert!(pending.mac.is_none() && pending.expires_at.is_none());
        tx.commit().await.unwrap();
    }
}
