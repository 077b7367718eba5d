//! The write path: a [`CaseChange`] holds the write lock from reading the case until it commits,
//! so the caller's permission check, the update, the `case_history` row and the audit entry see
//! one state and are stored together or not at all. Staff entries are sealed like messages.

use super::counters::{self, Counted, Deltas};
use super::tags::write_tags;
use super::{CASE_BY_ID, CaseColumns, CaseKey, CaseRow, EntryBody};
use crate::store::audit::{self, AuditEntry};
use crate::store::engine::{Conn, on_conn};
use crate::store::outbox::NewOutboxMail;
use crate::store::{Store, StoreError, now_millis};

impl Store {
    /// Starts a change of case `id`: takes the write lock and reads the case (None: no such case).
    pub async fn change_case(&self, id: i64) -> Result<Option<CaseChange<'_>>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let row: Option<CaseColumns> = on_conn!(&mut tx, c => sqlx::query_as(CASE_BY_ID).bind(id).fetch_optional(c).await?);
        let Some(row) = row else { return Ok(None) };
        let (case, key) = self.open_case(row.into())?;
        let counted_before = Counted::from(&case);
        Ok(Some(CaseChange { store: self, tx, tags_before: case.tags.clone(), counted_before, key, case, now: now_millis() }))
    }
}

/// A change to one case in progress. Edit `case`, call the methods for what is more than a field,
/// then [`CaseChange::commit`]; dropping it rolls everything back.
pub struct CaseChange<'s> {
    pub(super) store: &'s Store,
    pub(super) tx: Conn,
    /// The tags as read, so a commit re-seals them only when they changed.
    tags_before: Vec<String>,
    /// The counted fields as read, so a commit moves the case in the queue counters.
    counted_before: Counted,
    key: Option<CaseKey>,
    pub case: CaseRow,
    /// The time of the change (unix ms).
    pub now: i64,
}

impl CaseChange<'_> {
    /// Moves the case to `queue`. Its messages get fresh IMAP UIDs from the global message
    /// sequence, so UIDs only ever grow in the target queue's mailbox (UIDVALIDITY stays).
    pub async fn transfer(&mut self, queue: &str) -> Result<(), StoreError> {
        let case_id = self.case.id;
        on_conn!(&mut self.tx, c => {
            let messages: Vec<i64> = sqlx::query_scalar("SELECT message_id FROM message_cases WHERE case_id = $1 ORDER BY uid, message_id")
                .bind(case_id)
                .fetch_all(&mut *c)
                .await?;
            if !messages.is_empty() {
                let n = messages.len() as i64;
                let last: i64 = sqlx::query_scalar("UPDATE counters SET value = value + $1 WHERE name = 'message' RETURNING value")
                    .bind(n)
                    .fetch_one(&mut *c)
                    .await?;
                for (i, message_id) in messages.iter().enumerate() {
                    sqlx::query("UPDATE message_cases SET uid = $1 WHERE case_id = $2 AND message_id = $3")
                        .bind(last - n + 1 + i as i64)
                        .bind(case_id)
                        .bind(message_id)
                        .execute(&mut *c)
                        .await?;
                }
            }
        });
        self.case.queue = queue.to_string();
        Ok(())
    }

    /// The case's messages, newest first: (id, automatic).
    pub async fn messages_newest_first(&mut self) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows: Vec<(i64, i64)> = on_conn!(&mut self.tx, c => sqlx::query_as(
            "SELECT m.id, m.automatic FROM message_cases mc JOIN messages m ON m.id = mc.message_id
             WHERE mc.case_id = $1 ORDER BY m.id DESC",
        )
        .bind(self.case.id)
        .fetch_all(c)
        .await?);
        Ok(rows.into_iter().map(|(id, automatic)| (id, automatic != 0)).collect())
    }

    /// Seals and stores a staff entry; returns its id.
    pub async fn add_entry(&mut self, kind: &str, author: &str, body: &EntryBody, outbox_id: Option<i64>) -> Result<i64, StoreError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(body).expect("strings always serialise"));
        let row = self.store.keys.new_row()?;
        let body_ct = row.seal("entry", &plain)?;
        let id: i64 = on_conn!(&mut self.tx, c => sqlx::query_scalar(
            "INSERT INTO case_entries (case_id, at, author, kind, outbox_id, uid, key_id, wrapped_key, body_ct)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(self.case.id)
        .bind(self.now)
        .bind(author)
        .bind(kind)
        .bind(outbox_id)
        .bind(&row.uid[..])
        .bind(row.key_id as i64)
        .bind(&row.wrapped_key)
        .bind(&body_ct)
        .fetch_one(c)
        .await?);
        Ok(id)
    }

    /// Writes outgoing mail into the outbox in this transaction, not to be sent before `send_at`
    /// (unix ms; the undo window); returns the outbox row id.
    pub async fn enqueue_mail(
        &mut self,
        answers: i64,
        kind: &str,
        from: &str,
        to: &str,
        data: &[u8],
        send_at: i64,
    ) -> Result<i64, StoreError> {
        let row = NewOutboxMail::seal(&self.store.keys, Some(answers), kind, from, &[to], data, self.now)?;
        let id = crate::store::outbox::insert(&mut self.tx, &row).await?;
        if send_at > self.now {
            // Not visible to the worker before this transaction commits, so never due earlier.
            crate::store::outbox::hold_until(&mut self.tx, id, send_at).await?;
        }
        Ok(id)
    }

    /// Stores the case, its history row (`actor` is the staff login name) and the audit entry
    /// `case.<action>`, commits, and tells watchers. `detail` must not contain customer data (nor
    /// tag text: tags are sealed).
    pub async fn commit(self, actor: &str, action: &str, detail: &str) -> Result<CaseRow, StoreError> {
        let audit_actor = format!("user:{actor}");
        self.commit_by(actor, &audit_actor, action, detail, Vec::new()).await
    }

    /// [`CaseChange::commit`] with the history's and the audit's actor given apart (a background
    /// job is `escalation` in the history and `system:escalation` in the audit) and `more` audit
    /// entries stored with the change's own.
    pub async fn commit_by(
        mut self,
        actor: &str,
        audit_actor: &str,
        action: &str,
        detail: &str,
        more: Vec<AuditEntry>,
    ) -> Result<CaseRow, StoreError> {
        if self.case.tags != self.tags_before {
            self.key = Some(write_tags(&mut self.tx, &self.store.keys, self.case.id, self.key.as_ref(), &self.case.tags).await?);
        }
        let case = &self.case;
        let detail = (!detail.is_empty()).then(|| detail.to_string());
        on_conn!(&mut self.tx, c => {
            sqlx::query(
                "UPDATE cases SET queue = $1, status = $2, priority = $3, category = $4, due_at = $5, assignee = $6, escalated = $7,
                        follow_up_at = $8, first_response_at = $9, resolved_at = $10, updated_at = $11 WHERE id = $12",
            )
            .bind(&case.queue)
            .bind(&case.status)
            .bind(&case.priority)
            .bind(&case.category)
            .bind(case.due_at)
            .bind(case.assignee_id)
            .bind(case.escalated as i64)
            .bind(case.follow_up_at)
            .bind(case.first_response_at)
            .bind(case.resolved_at)
            .bind(self.now)
            .bind(case.id)
            .execute(&mut *c)
            .await?;
            sqlx::query("INSERT INTO case_history (case_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
                .bind(case.id)
                .bind(self.now)
                .bind(actor)
                .bind(action)
                .bind(&detail)
                .execute(&mut *c)
                .await?;
        });
        let mut deltas = Deltas::default();
        deltas.change(&self.counted_before, &Counted::from(case));
        counters::apply(&mut self.tx, &deltas).await?;
        let mut entries = vec![AuditEntry {
            at: self.now,
            actor: audit_actor.to_string(),
            action: format!("case.{action}"),
            object: Some(format!("case:{}", case.id)),
            detail,
        }];
        entries.extend(more);
        audit::append(&self.store.keys, &mut self.tx, &entries).await?;
        self.tx.notify_changes().await?;
        self.tx.commit().await?;
        self.store.changed();
        self.case.updated_at = self.now;
        Ok(self.case)
    }
}
