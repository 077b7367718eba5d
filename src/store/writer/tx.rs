//! The narrow interface through which a registration (intake's rules) writes inside the writer's
//! batch transaction: typed reads and writes, no SQL outside the store. Every statement is
//! prepared once per connection (`prepare_cached`), so calling these per message costs a cache
//! look-up, not a parse.
//!
//! SQLite reads `$N` as a NAMED parameter, numbered by first appearance, and rusqlite binds
//! `params![…]` by that number: write each statement's placeholders in ascending order.

use crate::store::outbox::NewOutboxMail;
use rusqlite::{Transaction, params};

use super::super::StoreError;
use super::super::audit::AuditEntry;
use super::super::crypto::KeyRing;

/// One batch's transaction, as a registration sees it.
pub struct WriteTx<'t> {
    pub(super) tx: &'t Transaction<'t>,
    pub(super) keys: &'t KeyRing,
    pub(super) now: chrono::DateTime<chrono::Utc>,
    pub(super) audit: &'t mut Vec<AuditEntry>,
}

/// A new message's row: its number and identity, the sealed parts, the lookup indexes.
pub struct MessageRow<'a> {
    pub id: i64,
    pub uid: &'a [u8],
    pub number: &'a str,
    pub reg_year: i32,
    pub reg_seq: i64,
    pub received_at: i64,
    pub size: usize,
    pub protocol: &'a str,
    pub tls: Option<&'a str>,
    pub parsed: bool,
    /// The first case it opened or joined.
    pub case_id: i64,
    pub key_id: u32,
    pub wrapped_key: &'a [u8],
    pub trace_ct: &'a [u8],
    pub fields_ct: &'a [u8],
    pub raw_ct: &'a [u8],
    pub sender_idx: Option<&'a [u8]>,
    pub msgid_idx: Option<&'a [u8]>,
    pub dedupe_idx: &'a [u8],
    pub tags: &'a [String],
    pub automatic: bool,
    pub auth: Option<&'a str>,
}

/// A case opened by a new message (status `new`).
pub struct NewCase<'a> {
    pub id: i64,
    pub opening_number: &'a str,
    pub queue: &'a str,
    pub opened_at: i64,
    pub category: Option<&'a str>,
    pub priority: &'a str,
    pub due_at: i64,
    pub spam: bool,
    /// The sender's customer tier, when known and trusted.
    pub tier: Option<&'a str>,
    /// The case's key and sealed tags, when it has tags.
    pub tags: Option<&'a super::super::cases::SealedTags>,
}

impl WriteTx<'_> {
    pub fn keys(&self) -> &KeyRing {
        self.keys
    }

    /// When the batch is being committed.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    /// Allocates `count` consecutive values of a counter; returns the first.
    pub fn allocate(&self, counter: &str, count: i64) -> Result<i64, StoreError> {
        allocate(self.tx, counter, count)
    }

    /// The cases (id, status) of the message registered as (counter year, sequence).
    pub fn cases_of_number(&self, year: i32, seq: u64) -> Result<Vec<(i64, String)>, StoreError> {
        let mut by_number = self.tx.prepare_cached(
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.reg_year = $1 AND m.reg_seq = $2",
        )?;
        let rows = by_number.query_map(params![year, seq as i64], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The cases (id, status) of the messages with this Message-ID blind index.
    pub fn cases_of_message_id(&self, msgid_idx: &[u8]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut by_reference = self.tx.prepare_cached(
            "SELECT c.id, c.status FROM messages m JOIN message_cases mc ON mc.message_id = m.id JOIN cases c ON c.id = mc.case_id WHERE m.msgid_idx = $1",
        )?;
        let rows = by_reference.query_map(params![msgid_idx], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn touch_case(&self, case_id: i64, at: i64) -> Result<(), StoreError> {
        self.tx.prepare_cached("UPDATE cases SET updated_at = $1 WHERE id = $2")?.execute(params![at, case_id])?;
        Ok(())
    }

    /// Sets a case back to `open` and records why in its history (actor `intake`).
    pub fn reopen_case(&self, case_id: i64, at: i64, detail: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE cases SET status = 'open', resolved_at = NULL, updated_at = $1 WHERE id = $2")?
            .execute(params![at, case_id])?;
        self.tx
            .prepare_cached("INSERT INTO case_history (case_id, at, actor, action, detail) VALUES ($1, $2, 'intake', 'status', $3)")?
            .execute(params![case_id, at, detail])?;
        Ok(())
    }

    /// Records an address (blind index) as a participant; true when it is new to the case.
    pub fn add_participant(&self, case_id: i64, address_idx: &[u8]) -> Result<bool, StoreError> {
        let added = self
            .tx
            .prepare_cached("INSERT INTO case_participants (case_id, address_idx) VALUES ($1, $2) ON CONFLICT DO NOTHING")?
            .execute(params![case_id, address_idx])?;
        Ok(added > 0)
    }

    pub fn insert_case(&self, case: &NewCase) -> Result<(), StoreError> {
        let key = case.tags.map(|t| &t.key);
        self.tx
            .prepare_cached(
                "INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, category, priority, due_at, spam, uid, key_id, wrapped_key, tags_ct, tier)
                 VALUES ($1, $2, $3, 'new', $4, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )?
            .execute(params![
                case.id,
                case.opening_number,
                case.queue,
                case.opened_at,
                case.category,
                case.priority,
                case.due_at,
                case.spam,
                key.map(|k| &k.uid),
                key.map(|k| k.key_id),
                key.map(|k| &k.wrapped_key),
                case.tags.and_then(|t| t.tags_ct.as_ref()),
                case.tier
            ])?;
        let mut index_tag = self.tx.prepare_cached("INSERT INTO case_tags (case_id, tag_idx) VALUES ($1, $2) ON CONFLICT DO NOTHING")?;
        for idx in case.tags.iter().flat_map(|t| &t.index) {
            index_tag.execute(params![case.id, idx])?;
        }
        Ok(())
    }

    /// Stores a new message: its row and its sealed raw bytes.
    pub fn insert_message(&self, m: &MessageRow) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, tls, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, sender_idx, msgid_idx, dedupe_idx, tags, automatic, auth)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
            )?
            .execute(params![
                m.id,
                m.uid,
                m.number,
                m.reg_year,
                m.reg_seq,
                m.received_at,
                m.size as i64,
                m.protocol,
                m.tls,
                m.parsed,
                m.case_id,
                m.key_id,
                m.wrapped_key,
                m.trace_ct,
                m.fields_ct,
                m.sender_idx,
                m.msgid_idx,
                m.dedupe_idx,
                serde_json::to_string(m.tags).expect("tags serialise"),
                m.automatic,
                m.auth
            ])?;
        self.tx.prepare_cached("INSERT INTO message_blobs (message_id, raw_ct) VALUES ($1, $2)")?.execute(params![m.id, m.raw_ct])?;
        Ok(())
    }

    /// Files message `message_id` under case `case_id` (once).
    pub fn link(&self, message_id: i64, case_id: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("INSERT INTO message_cases (message_id, case_id, uid) VALUES ($1, $2, $1) ON CONFLICT DO NOTHING")?
            .execute(params![message_id, case_id])?;
        Ok(())
    }

    /// Whether an acknowledgement to this recipient (blind index) was queued since `since` (ms).
    pub fn ack_queued_since(&self, rcpt_idx: &[u8], since: i64) -> Result<bool, StoreError> {
        Ok(crate::store::outbox::recent_ack_sync(self.tx, rcpt_idx, since)?)
    }

    /// Queues sealed outgoing mail (an acknowledgement), due at once, through the outbox's one
    /// INSERT; returns the outbox row id.
    pub fn queue_mail(&self, mail: &NewOutboxMail) -> Result<i64, StoreError> {
        Ok(crate::store::outbox::insert_sync(self.tx, mail)?)
    }

    /// Adds an audit event, appended to the chain with the rest of the batch before commit.
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry);
    }
}

pub(super) fn allocate(tx: &Transaction, name: &str, count: i64) -> Result<i64, StoreError> {
    let last: i64 = tx
        .prepare_cached("UPDATE counters SET value = value + $1 WHERE name = $2 RETURNING value")?
        .query_row(params![count, name], |r| r.get(0))?;
    Ok(last - count + 1)
}
