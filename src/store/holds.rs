//! Legal hold: a case flag an officer sets and clears (`mailroom case hold|release`), audited.
//! Retention and erasure (`store::purge`) skip held cases and report them.

use super::audit::{self, AuditEntry};
use super::engine::{on_conn, on_db};
use super::{Store, StoreError, now_millis};

/// A case under legal hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub case: i64,
    pub opening: String,
    pub queue: String,
    pub held_at: i64,
    pub held_by: String,
    pub reason: String,
}

impl Store {
    /// Puts the cases opened by registration `opening` (one per queue it went to) under legal
    /// hold (`hold` = Some(reason)) or releases them (None), as `actor`, audited in the same
    /// transaction. The cases changed: a case already in that state is left as it is.
    pub async fn set_hold(&self, opening: &str, hold: Option<&str>, actor: &str) -> Result<Vec<i64>, StoreError> {
        let now = now_millis();
        let mut tx = self.db().begin_write().await?;
        let changed: Vec<i64> = match hold {
            Some(reason) => on_conn!(&mut tx, c => sqlx::query_scalar(
                "UPDATE cases SET hold_at = $1, hold_by = $2, hold_reason = $3 WHERE opening_number = $4 AND hold_at IS NULL RETURNING id",
            )
            .bind(now)
            .bind(actor)
            .bind(reason)
            .bind(opening)
            .fetch_all(c)
            .await?),
            None => on_conn!(&mut tx, c => sqlx::query_scalar(
                "UPDATE cases SET hold_at = NULL, hold_by = NULL, hold_reason = NULL WHERE opening_number = $1 AND hold_at IS NOT NULL RETURNING id",
            )
            .bind(opening)
            .fetch_all(c)
            .await?),
        };
        if !changed.is_empty() {
            let entry = AuditEntry {
                at: now,
                actor: actor.into(),
                action: if hold.is_some() { "case.hold" } else { "case.release" }.into(),
                object: Some(opening.to_string()),
                detail: Some(match hold {
                    Some(reason) => format!("cases={} reason={reason}", join(&changed)),
                    None => format!("cases={}", join(&changed)),
                }),
            };
            audit::append(&self.keys, &mut tx, &[entry]).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// The registration number of message `id` (as issued, with its check digit).
    pub async fn message_number(&self, id: i64) -> Result<String, StoreError> {
        let number: Option<String> =
            on_db!(self.db(), pool => sqlx::query_scalar("SELECT number FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await?);
        number.ok_or_else(|| StoreError::NotFound(format!("message #{id}")))
    }

    /// The cases under legal hold, oldest hold first.
    pub async fn holds(&self) -> Result<Vec<Hold>, StoreError> {
        type Columns = (i64, String, String, i64, String, String);
        let rows: Vec<Columns> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT id, opening_number, queue, hold_at, COALESCE(hold_by, ''), COALESCE(hold_reason, '') FROM cases
             WHERE hold_at IS NOT NULL ORDER BY hold_at, id",
        )
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(case, opening, queue, held_at, held_by, reason)| Hold { case, opening, queue, held_at, held_by, reason })
            .collect())
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}
