//! Changes waiting for a second person (`access_changes`), and an approved reset's code kept
//! sealed in its row until the requester collects it. `access::approvals` owns the rules.

use super::engine::{on_conn, on_db};
use super::tx::Tx;
use super::{Store, StoreError};

/// `SELECT <every column of ChangeRow, by its field names> FROM access_changes <rest>` as one literal.
macro_rules! select_changes {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, role, user_id, user_name, queue, permissions, requester_id, requester, requested_at, status, decided_by,
                    decided_at, code_ct IS NOT NULL AS code_sealed, code_expires_at, code_collected_at
             FROM access_changes ",
            $rest
        )
    };
}

/// A change as stored. `role` is "" for a reset; `permissions` a comma-separated list.
#[derive(sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub kind: String,
    pub role: String,
    pub user_id: Option<i64>,
    pub user_name: Option<String>,
    pub queue: Option<String>,
    pub permissions: Option<String>,
    pub requester_id: i64,
    pub requester: String,
    pub requested_at: i64,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    /// A reset's sealed code still waits for the requester (`IS NOT NULL`: an integer in SQLite,
    /// a boolean in PostgreSQL; both decode as bool).
    pub code_sealed: bool,
    pub code_expires_at: Option<i64>,
    pub code_collected_at: Option<i64>,
}

/// What identifies a request: an identical one already pending is not stored twice.
pub struct Request<'a> {
    pub kind: &'a str,
    pub role: &'a str,
    pub user_id: Option<i64>,
    pub user_name: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub permissions: Option<&'a str>,
}

/// A sealed code as kept in its change's row.
pub struct SealedCode {
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The kind of change `id`, read before any write transaction (an approved reset prepares its
/// code first).
pub async fn kind(store: &Store, id: i64) -> Result<Option<String>, StoreError> {
    Ok(on_db!(store.db(), pool => {
        sqlx::query_scalar("SELECT kind FROM access_changes WHERE id = $1").bind(id).fetch_optional(pool).await?
    }))
}

impl Tx {
    pub async fn change(&mut self, id: i64) -> Result<Option<ChangeRow>, StoreError> {
        Ok(on_conn!(self.engine(), c => sqlx::query_as(select_changes!("WHERE id = $1")).bind(id).fetch_optional(c).await?))
    }

    /// Changes with `status` (every change when None), oldest first.
    pub async fn changes(&mut self, status: Option<&str>) -> Result<Vec<ChangeRow>, StoreError> {
        Ok(on_conn!(self.engine(), c => {
            sqlx::query_as(select_changes!("WHERE $1 IS NULL OR status = $1 ORDER BY id")).bind(status).fetch_all(c).await?
        }))
    }

    /// Stores a request unless the identical one is pending; its id, and whether it is new.
    pub async fn hold_change(
        &mut self,
        request: &Request<'_>,
        requester_id: i64,
        requester: &str,
        now: i64,
    ) -> Result<(i64, bool), StoreError> {
        on_conn!(self.engine(), c => {
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM access_changes
                 WHERE status = 'pending' AND kind = $1 AND role = $2 AND user_id IS NOT DISTINCT FROM $3
                   AND queue IS NOT DISTINCT FROM $4 AND permissions IS NOT DISTINCT FROM $5",
            )
            .bind(request.kind)
            .bind(request.role)
            .bind(request.user_id)
            .bind(request.queue)
            .bind(request.permissions)
            .fetch_optional(&mut *c)
            .await?;
            if let Some(id) = existing {
                return Ok((id, false));
            }
            let id = sqlx::query_scalar(
                "INSERT INTO access_changes (kind, role, user_id, user_name, queue, permissions, requester_id, requester, requested_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(request.kind)
            .bind(request.role)
            .bind(request.user_id)
            .bind(request.user_name)
            .bind(request.queue)
            .bind(request.permissions)
            .bind(requester_id)
            .bind(requester)
            .bind(now)
            .fetch_one(c)
            .await?;
            Ok((id, true))
        })
    }

    /// Records the decision (`approved` or `rejected`).
    pub async fn decide_change(&mut self, id: i64, status: &str, decided_by: &str, now: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query("UPDATE access_changes SET status = $1, decided_by = $2, decided_at = $3 WHERE id = $4")
            .bind(status)
            .bind(decided_by)
            .bind(now)
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Keeps an approved reset's code sealed in the change's row until `expires_at`.
    pub async fn seal_code(&mut self, id: i64, code: &SealedCode, expires_at: i64) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query(
            "UPDATE access_changes SET code_key_id = $1, code_wrapped_key = $2, code_ct = $3, code_expires_at = $4 WHERE id = $5",
        )
        .bind(code.key_id)
        .bind(&code.wrapped_key)
        .bind(&code.ciphertext)
        .bind(expires_at)
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())?);
        Ok(())
    }

    /// The sealed code of change `id`, when one is kept.
    pub async fn sealed_code(&mut self, id: i64) -> Result<Option<SealedCode>, StoreError> {
        let row: (Option<i64>, Option<Vec<u8>>, Option<Vec<u8>>) = on_conn!(self.engine(), c => {
            sqlx::query_as("SELECT code_key_id, code_wrapped_key, code_ct FROM access_changes WHERE id = $1").bind(id).fetch_one(c).await?
        });
        Ok(match row {
            (Some(key_id), Some(wrapped_key), Some(ciphertext)) => Some(SealedCode { key_id, wrapped_key, ciphertext }),
            _ => None,
        })
    }

    /// Drops the sealed code; `collected_at` when it was handed out (None: it was void).
    pub async fn drop_code(&mut self, id: i64, collected_at: Option<i64>) -> Result<(), StoreError> {
        on_conn!(self.engine(), c => sqlx::query(
            "UPDATE access_changes SET code_key_id = NULL, code_wrapped_key = NULL, code_ct = NULL, code_collected_at = $1 WHERE id = $2",
        )
        .bind(collected_at)
        .bind(id)
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
    async fn an_identical_pending_request_is_stored_once() {
        let (_dir, store) = store().await;
        let mut tx = store.begin_write().await.unwrap();
        assert!(tx.insert_role("agents", "", 1).await.unwrap());
        let olga = tx.insert_user("olga", "hash", 1).await.unwrap().unwrap();
        let request = Request {
            kind: "role.grant",
            role: "agents",
            user_id: None,
            user_name: None,
            queue: Some("support"),
            permissions: Some("read"),
        };
        let (id, new) = tx.hold_change(&request, olga, "olga", 5).await.unwrap();
        assert!(new);
        assert_eq!(tx.hold_change(&request, olga, "olga", 6).await.unwrap(), (id, false));
        tx.decide_change(id, "rejected", "user:bert", 7).await.unwrap();
        assert!(tx.hold_change(&request, olga, "olga", 8).await.unwrap().1, "a decided change is not pending");
        let changes = tx.changes(Some("rejected")).await.unwrap();
        assert_eq!((changes.len(), changes[0].decided_at), (1, Some(7)));
        assert!(tx.sealed_code(id).await.unwrap().is_none());
        tx.commit().await.unwrap();
        assert_eq!(kind(&store, id).await.unwrap().as_deref(), Some("role.grant"));
    }
}
