//! The write path: a [`CaseChange`] holds the write lock from reading the case until it commits,
//! so the caller's permission check, the update, the `case_history` row and the audit entry see
//! one state and are stored together or not at all. Staff entries are sealed like messages.

use sqlx::Row;

use super::tags::write_tags;
use super::{CASE_BY_ID, CaseKey, CaseRow, EntryBody, case_from_row};
use crate::store::audit::{self, AuditEntry};
use crate::store::engine::Conn;
use crate::store::outbox::NewOutboxMail;
use crate::store::{Store, StoreError, now_millis};

impl Store {
    /// Starts a change of case `id`: takes the write lock and reads the case (None: no such case).
    pub async fn change_case(&self, id: i64) -> Result<Option<CaseChange<'_>>, StoreError> {
        let mut tx = self.db.begin_write().await?;
        let Some(row) = sqlx::query(CASE_BY_ID).bind(id).fetch_optional(tx.sqlite()).await? else { return Ok(None) };
        let (case, key) = self.open_case(case_from_row(&row))?;
        Ok(Some(CaseChange { store: self, tx, tags_before: case.tags.clone(), key, case, now: now_millis() }))
    }
}

/// A change to one case in progress. Edit `case`, call the methods for what is more than a field,
/// then [`CaseChange::commit`]; dropping it rolls everything back.
pub struct CaseChange<'s> {
    pub(super) store: &'s Store,
    pub(super) tx: Conn,
    /// The tags as read, so a commit re-seals them only when they changed.
    tags_before: Vec<String>,
    key: Option<CaseKey>,
    pub case: CaseRow,
    /// The time of the change (unix ms).
    pub now: i64,
}

impl CaseChange<'_> {
    /// Moves the case to `queue`. Its messages get fresh IMAP UIDs from the global message
    /// sequence, so UIDs only ever grow in the target queue's mailbox (UIDVALIDITY stays).
    pub async fn transfer(&mut self, queue: &str) -> Result<(), StoreError> {
        let messages: Vec<i64> = sqlx::query_scalar("SELECT message_id FROM message_cases WHERE case_id = $1 ORDER BY uid, message_id")
            .bind(self.case.id)
            .fetch_all(self.tx.sqlite())
            .await?;
        if !messages.is_empty() {
            let n = messages.len() as i64;
            let last: i64 = sqlx::query_scalar("UPDATE counters SET value = value + $1 WHERE name = 'message' RETURNING value")
                .bind(n)
                .fetch_one(self.tx.sqlite())
                .await?;
            for (i, message_id) in messages.iter().enumerate() {
                sqlx::query("UPDATE message_cases SET uid = $1 WHERE case_id = $2 AND message_id = $3")
                    .bind(last - n + 1 + i as i64)
                    .bind(self.case.id)
                    .bind(message_id)
                    .execute(self.tx.sqlite())
                    .await?;
            }
        }
        self.case.queue = queue.to_string();
        Ok(())
    }

    /// The case's messages, newest first: (id, automatic).
    pub async fn messages_newest_first(&mut self) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows = sqlx::query("SELECT m.id, m.automatic FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = $1 ORDER BY m.id DESC")
            .bind(self.case.id)
            .fetch_all(self.tx.sqlite())
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<i64, _>(1) != 0)).collect())
    }

    /// Seals and stores a staff entry; returns its id.
    pub async fn add_entry(&mut self, kind: &str, author: &str, body: &EntryBody, outbox_id: Option<i64>) -> Result<i64, StoreError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(body).expect("strings always serialise"));
        let row = self.store.keys.new_row()?;
        let body_ct = row.seal("entry", &plain)?;
        let id: i64 = sqlx::query_scalar("INSERT INTO case_entries (case_id, at, author, kind, outbox_id, uid, key_id, wrapped_key, body_ct) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id")
            .bind(self.case.id)
            .bind(self.now)
            .bind(author)
            .bind(kind)
            .bind(outbox_id)
            .bind(&row.uid[..])
            .bind(row.key_id as i64)
            .bind(&row.wrapped_key)
            .bind(body_ct)
            .fetch_one(self.tx.sqlite())
            .await?;
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
        let id = crate::store::outbox::insert(self.tx.sqlite(), &row).await?;
        if send_at > self.now {
            // Not visible to the worker before this transaction commits, so never due earlier.
            crate::store::outbox::hold_until(self.tx.sqlite(), id, send_at).await?;
        }
        Ok(id)
    }

    /// Stores the case, its history row (`actor` is the staff login name) and the audit entry
    /// `case.<action>`, commits, and tells watchers. `detail` must not contain customer data (nor
    /// tag text: tags are sealed).
    pub async fn commit(mut self, actor: &str, action: &str, detail: &str) -> Result<CaseRow, StoreError> {
        if self.case.tags != self.tags_before {
            self.key = Some(write_tags(self.tx.sqlite(), &self.store.keys, self.case.id, self.key.as_ref(), &self.case.tags).await?);
        }
        let c = &self.case;
        sqlx::query(
            "UPDATE cases SET queue = $1, status = $2, priority = $3, category = $4, due_at = $5, assignee = $6, escalated = $7,
                    follow_up_at = $8, first_response_at = $9, resolved_at = $10, updated_at = $11 WHERE id = $12",
        )
        .bind(&c.queue)
        .bind(&c.status)
        .bind(&c.priority)
        .bind(&c.category)
        .bind(c.due_at)
        .bind(c.assignee_id)
        .bind(c.escalated as i64)
        .bind(c.follow_up_at)
        .bind(c.first_response_at)
        .bind(c.resolved_at)
        .bind(self.now)
        .bind(c.id)
        .execute(self.tx.sqlite())
        .await?;
        let detail = (!detail.is_empty()).then(|| detail.to_string());
        sqlx::query("INSERT INTO case_history (case_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind(c.id)
            .bind(self.now)
            .bind(actor)
            .bind(action)
            .bind(&detail)
            .execute(self.tx.sqlite())
            .await?;
        let entry = AuditEntry {
            at: self.now,
            actor: format!("user:{actor}"),
            action: format!("case.{action}"),
            object: Some(format!("case:{}", c.id)),
            detail,
        };
        audit::append(&self.store.keys, &mut self.tx, &[entry]).await?;
        self.tx.commit().await?;
        self.store.changed();
        self.case.updated_at = self.now;
        Ok(self.case)
    }
}
