//! Read models: a case, its messages (metadata; records decrypted on request), its staff entries
//! (decrypted) and history. None of these reads is audited: the caller audits the read it shows.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{CASE_BY_ID, CaseColumns, CaseRow, EntryBody};
use crate::store::crypto::aad;
use crate::store::engine::on_db;
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

/// A staff entry's row as `case_entries` reads it, its body still sealed.
#[derive(sqlx::FromRow)]
struct EntryColumns {
    id: i64,
    at: i64,
    author: String,
    kind: String,
    outbox_id: Option<i64>,
    /// The outbox row's status (`o.status`).
    status: Option<String>,
    uid: Vec<u8>,
    key_id: i64,
    wrapped_key: Vec<u8>,
    body_ct: Vec<u8>,
    state: Option<String>,
}

impl Store {
    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let row: Option<CaseColumns> = on_db!(self.db(), pool => sqlx::query_as(CASE_BY_ID).bind(id).fetch_optional(pool).await?);
        row.map(|r| self.open_case(r.into()).map(|(case, _)| case)).transpose()
    }

    /// For each case: (number of messages, id of its first message).
    pub async fn case_message_counts(&self, case_ids: &[i64]) -> Result<HashMap<i64, (i64, i64)>, StoreError> {
        if case_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, i64, i64)> = on_db!(self.db(), pool => {
            let mut b = QueryBuilder::new("SELECT case_id, COUNT(*), MIN(message_id) FROM message_cases WHERE case_id IN (");
            let mut list = b.separated(", ");
            for id in case_ids {
                list.push_bind(*id);
            }
            b.push(") GROUP BY case_id");
            b.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(case, count, first)| (case, (count, first))).collect())
    }

    /// The extracted records of several messages in one query, decrypted by the same
    /// [`Store::open_record`] as [`Store::open_fields`] (a listing page needs up to 200, and one round trip per
    /// record would cost more than the decryption). A record that fails to open is an error for
    /// that id only. Not audited: the caller audits the listing.
    pub async fn open_fields_many(&self, ids: &[i64]) -> Result<HashMap<i64, Result<Record, StoreError>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        type Columns = (i64, Vec<u8>, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Columns> = on_db!(self.db(), pool => {
            let mut b = QueryBuilder::new("SELECT id, uid, key_id, wrapped_key, fields_ct FROM messages WHERE id IN (");
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            b.push(")");
            b.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, uid, key_id, wrapped_key, fields_ct)| (id, self.open_record(&uid, key_id, &wrapped_key, &fields_ct)))
            .collect())
    }

    pub async fn case_messages(&self, case_id: i64) -> Result<Vec<CaseMessage>, StoreError> {
        type Columns = (i64, String, i64, i64, String, Option<String>, i64, i64);
        let rows: Vec<Columns> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT m.id, m.number, m.received_at, m.size, m.tags, m.auth, m.automatic, m.parsed
             FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = $1 ORDER BY m.id",
        )
        .bind(case_id)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|(id, number, received_at, size, tags, auth, automatic, parsed)| CaseMessage {
                id,
                number,
                received_at,
                size,
                tags: serde_json::from_str(&tags).unwrap_or_default(),
                auth,
                automatic: automatic != 0,
                parsed: parsed != 0,
            })
            .collect())
    }

    /// Staff entries of a case, decrypted (shredded ones, key_id 0, are gone: `store::purge`). Not
    /// audited: the caller audits the read of the case.
    pub async fn case_entries(&self, case_id: i64) -> Result<Vec<CaseEntry>, StoreError> {
        let rows: Vec<EntryColumns> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT e.id, e.at, e.author, e.kind, e.outbox_id, o.status, e.uid, e.key_id, e.wrapped_key, e.body_ct, e.state
             FROM case_entries e LEFT JOIN outbox o ON o.id = e.outbox_id WHERE e.case_id = $1 AND e.key_id <> 0 ORDER BY e.id",
        )
        .bind(case_id)
        .fetch_all(pool)
        .await?);
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows {
            let data_key = self.row_key(&r.uid, r.key_id, &r.wrapped_key)?;
            let plain = zeroize::Zeroizing::new(data_key.open(&aad("entry", &r.uid), &r.body_ct)?);
            let body = serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("stored case entry unreadable: {e}")))?;
            entries.push(CaseEntry {
                id: r.id,
                at: r.at,
                author: r.author,
                kind: r.kind,
                outbox_id: r.outbox_id,
                outbox_status: r.status,
                state: r.state,
                body,
            });
        }
        Ok(entries)
    }

    pub async fn case_history(&self, case_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows: Vec<(i64, i64, String, String, Option<String>)> = on_db!(self.db(), pool => {
            sqlx::query_as("SELECT id, at, actor, action, detail FROM case_history WHERE case_id = $1 ORDER BY id")
                .bind(case_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(id, at, actor, action, detail)| HistoryEntry { id, at, actor, action, detail }).collect())
    }

    /// The row id of the message registered as sequence `seq` of counter year `counter_year`
    /// (0 when numbering is not yearly).
    pub async fn message_id_by_registration(&self, counter_year: i32, seq: u64) -> Result<Option<i64>, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_scalar("SELECT id FROM messages WHERE reg_year = $1 AND reg_seq = $2")
            .bind(i64::from(counter_year))
            .bind(seq as i64)
            .fetch_optional(pool)
            .await?))
    }

    /// The queues in which message `id` has a case.
    pub async fn message_queues(&self, id: i64) -> Result<Vec<String>, StoreError> {
        Ok(on_db!(self.db(), pool => {
            sqlx::query_scalar("SELECT DISTINCT c.queue FROM message_cases mc JOIN cases c ON c.id = mc.case_id WHERE mc.message_id = $1")
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }

    pub async fn user_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_scalar("SELECT id FROM users WHERE name = $1").bind(name).fetch_optional(pool).await?))
    }
}
