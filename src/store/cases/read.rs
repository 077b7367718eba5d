//! Read models: a case, its messages (metadata; records decrypted on request), its staff entries
//! (decrypted) and history. None of these reads is audited: the caller audits the read it shows.

use std::collections::HashMap;

use sqlx::{QueryBuilder, Row, Sqlite};

use super::{CASE_BY_ID, CaseRow, EntryBody, case_from_row};
use crate::store::crypto::aad;
use crate::store::record::Record;
use crate::store::{Store, StoreError};

/// One message of a case, as listed in the case view (metadata in clear, record decrypted by the caller).
#[derive(Debug, Clone)]
pub struct CaseMessage {
    pub id: i64,
    pub number: String,
    pub received_at: i64,
    pub size: i64,
    pub tags: Vec<String>,
    pub auth: Option<String>,
    pub automatic: bool,
    pub parsed: bool,
}

#[derive(Debug, Clone)]
pub struct CaseEntry {
    pub id: i64,
    pub at: i64,
    pub author: String,
    pub kind: String,
    pub outbox_id: Option<i64>,
    /// The outgoing mail's state (pending, sending, sent, failed, withdrawn) for a reply.
    pub outbox_status: Option<String>,
    /// A reply's own state: None (the outbox row tells), `withdrawn`, `awaiting-review`, `returned`.
    pub state: Option<String>,
    pub body: EntryBody,
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
}

impl Store {
    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let row = sqlx::query(CASE_BY_ID).bind(id).fetch_optional(self.sqlite()).await?;
        row.as_ref().map(|r| self.open_case(case_from_row(r)).map(|(case, _)| case)).transpose()
    }

    /// For each case: (number of messages, id of its first message).
    pub async fn case_message_counts(&self, case_ids: &[i64]) -> Result<HashMap<i64, (i64, i64)>, StoreError> {
        if case_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new("SELECT case_id, COUNT(*), MIN(message_id) FROM message_cases WHERE case_id IN (");
        let mut list = b.separated(", ");
        for id in case_ids {
            list.push_bind(*id);
        }
        b.push(") GROUP BY case_id");
        let rows = b.build().fetch_all(self.sqlite()).await?;
        Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
    }

    /// The extracted records of several messages in one query, decrypted by the same
    /// [`Store::open_record`] as [`Store::open_fields`] (a listing page needs up to 200, and one round trip per
    /// record would cost more than the decryption). A record that fails to open is an error for
    /// that id only. Not audited: the caller audits the listing.
    pub async fn open_fields_many(&self, ids: &[i64]) -> Result<HashMap<i64, Result<Record, StoreError>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new("SELECT id, uid, key_id, wrapped_key, fields_ct FROM messages WHERE id IN (");
        let mut list = b.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        b.push(")");
        let rows = b.build().fetch_all(self.sqlite()).await?;
        Ok(rows.iter().map(|r| (r.get(0), self.open_record(r.get(1), r.get(2), r.get(3), r.get(4)))).collect())
    }

    pub async fn case_messages(&self, case_id: i64) -> Result<Vec<CaseMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.number, m.received_at, m.size, m.tags, m.auth, m.automatic, m.parsed
             FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = $1 ORDER BY m.id",
        )
        .bind(case_id)
        .fetch_all(self.sqlite())
        .await?;
        Ok(rows
            .iter()
            .map(|r| CaseMessage {
                id: r.get(0),
                number: r.get(1),
                received_at: r.get(2),
                size: r.get(3),
                tags: serde_json::from_str(r.get::<&str, _>(4)).unwrap_or_default(),
                auth: r.get(5),
                automatic: r.get::<i64, _>(6) != 0,
                parsed: r.get::<i64, _>(7) != 0,
            })
            .collect())
    }

    /// Staff entries of a case, decrypted. Not audited: the caller audits the read of the case.
    pub async fn case_entries(&self, case_id: i64) -> Result<Vec<CaseEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.at, e.author, e.kind, e.outbox_id, o.status, e.uid, e.key_id, e.wrapped_key, e.body_ct, e.state
             FROM case_entries e LEFT JOIN outbox o ON o.id = e.outbox_id WHERE e.case_id = $1 ORDER BY e.id",
        )
        .bind(case_id)
        .fetch_all(self.sqlite())
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows {
            let uid: &[u8] = r.get(6);
            let data_key = self.row_key(uid, r.get(7), r.get(8))?;
            let plain = zeroize::Zeroizing::new(data_key.open(&aad("entry", uid), r.get::<&[u8], _>(9))?);
            let body = serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("stored case entry unreadable: {e}")))?;
            entries.push(CaseEntry {
                id: r.get(0),
                at: r.get(1),
                author: r.get(2),
                kind: r.get(3),
                outbox_id: r.get(4),
                outbox_status: r.get(5),
                state: r.get(10),
                body,
            });
        }
        Ok(entries)
    }

    pub async fn case_history(&self, case_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, at, actor, action, detail FROM case_history WHERE case_id = $1 ORDER BY id")
            .bind(case_id)
            .fetch_all(self.sqlite())
            .await?;
        Ok(rows.iter().map(|r| HistoryEntry { id: r.get(0), at: r.get(1), actor: r.get(2), action: r.get(3), detail: r.get(4) }).collect())
    }

    /// The row id of the message registered as sequence `seq` of counter year `counter_year`
    /// (0 when numbering is not yearly).
    pub async fn message_id_by_registration(&self, counter_year: i32, seq: u64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM messages WHERE reg_year = $1 AND reg_seq = $2")
            .bind(counter_year)
            .bind(seq as i64)
            .fetch_optional(self.sqlite())
            .await?)
    }

    /// The queues in which message `id` has a case.
    pub async fn message_queues(&self, id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT DISTINCT c.queue FROM message_cases mc JOIN cases c ON c.id = mc.case_id WHERE mc.message_id = $1")
            .bind(id)
            .fetch_all(self.sqlite())
            .await?)
    }

    pub async fn user_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE name = $1").bind(name).fetch_optional(self.sqlite()).await?)
    }
}
