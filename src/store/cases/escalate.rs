//! What an escalation writes inside a case's change: the event's once-only mark, the staff it
//! tells, their notification rows and the mail to their own addresses. All of it commits with the
//! change (its escalation, history and audit), so a crash loses or repeats none of it.

use super::CaseChange;
use crate::store::StoreError;
use crate::store::engine::on_conn;
use crate::store::outbox::NewOutboxMail;

/// A staff user to be told: id, login name, own address (None: the web list only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffMember {
    pub id: i64,
    pub name: String,
    pub email: Option<String>,
}

type StaffRow = (i64, String, Option<String>);

fn member((id, name, email): StaffRow) -> StaffMember {
    StaffMember { id, name, email: email.filter(|e| !e.is_empty()) }
}

impl CaseChange<'_> {
    /// Marks event `kind` of this case against `deadline` (unix ms; 0 when it has none); false
    /// when it was marked before (by another node, or before a crash that kept it), and then
    /// nothing more must happen for it.
    pub async fn mark_event(&mut self, kind: &str, deadline: i64) -> Result<bool, StoreError> {
        let inserted = on_conn!(&mut self.tx, c => sqlx::query(
            "INSERT INTO escalation_events (case_id, kind, deadline, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(self.case.id)
        .bind(kind)
        .bind(deadline)
        .bind(self.now)
        .execute(c)
        .await?
        .rows_affected());
        Ok(inserted == 1)
    }

    /// The unlocked users who hold `permission` on the case's queue (directly or through `*`).
    pub async fn queue_staff(&mut self, permission: &str) -> Result<Vec<StaffMember>, StoreError> {
        let rows: Vec<StaffRow> = on_conn!(&mut self.tx, c => sqlx::query_as(
            "SELECT DISTINCT u.id, u.name, u.email FROM users u
             JOIN user_roles r ON r.user_id = u.id JOIN role_grants g ON g.role = r.role
             WHERE (g.queue = $1 OR g.queue = '*') AND g.permission = $2 AND u.locked = 0 AND u.enrolment_mac IS NULL
             ORDER BY u.id",
        )
        .bind(&self.case.queue)
        .bind(permission)
        .fetch_all(c)
        .await?);
        Ok(rows.into_iter().map(member).collect())
    }

    /// The case's assignee, unless locked.
    pub async fn assignee_member(&mut self) -> Result<Option<StaffMember>, StoreError> {
        let Some(id) = self.case.assignee_id else { return Ok(None) };
        let row: Option<StaffRow> = on_conn!(&mut self.tx, c => sqlx::query_as(
            "SELECT id, name, email FROM users WHERE id = $1 AND locked = 0",
        )
        .bind(id)
        .fetch_optional(c)
        .await?);
        Ok(row.map(member))
    }

    /// Queues a notification mail (kind `notice`, the null envelope sender: nothing bounces back)
    /// to one staff address; returns the outbox row id.
    pub async fn enqueue_notice(&mut self, to: &str, data: &[u8]) -> Result<i64, StoreError> {
        let row = NewOutboxMail::seal(&self.store.keys, None, "notice", "", &[to], data, self.now)?;
        Ok(crate::store::outbox::insert(&mut self.tx, &row).await?)
    }

    /// A notification row for `user_id` about this case.
    pub async fn notify_user(&mut self, user_id: i64, kind: &str, outbox_id: Option<i64>) -> Result<i64, StoreError> {
        Ok(on_conn!(&mut self.tx, c => sqlx::query_scalar(
            "INSERT INTO notifications (user_id, case_id, kind, at, outbox_id) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(user_id)
        .bind(self.case.id)
        .bind(kind)
        .bind(self.now)
        .bind(outbox_id)
        .fetch_one(c)
        .await?))
    }
}
