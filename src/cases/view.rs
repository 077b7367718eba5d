//! Reading: a case with its messages' records, staff entries and history (decrypted, audited),
//! and a stored message as it was received (audited).

use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::Record;
use crate::store::cases::{CaseEntry, CaseMessage, CaseRow, HistoryEntry};
use crate::store::now_millis;

/// A case with everything in it, as its reader sees it.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub case: CaseRow,
    /// Oldest first, each with its extracted record.
    pub messages: Vec<(CaseMessage, Record)>,
    pub entries: Vec<CaseEntry>,
    pub history: Vec<HistoryEntry>,
    /// When it was read (unix ms): what "overdue" is measured against.
    pub now: i64,
}

/// A stored message: its registration number and the bytes (our trace header + what was received).
#[derive(Debug, Clone)]
pub struct RawMessage {
    pub number: String,
    pub bytes: Vec<u8>,
}

impl Cases {
    /// The case, if `who` may read its queue, with its messages, entries and history. The read
    /// is audited (`case.read`, with `via`: the view it was read through).
    pub async fn read(&self, who: &Principal, via: &str, id: i64) -> Result<CaseView, CaseError> {
        let store = self.store();
        let case = self.readable_case(who, id).await?;
        let list = store.case_messages(id).await?;
        let mut records = store.open_fields_many(&list.iter().map(|m| m.id).collect::<Vec<_>>()).await?;
        let mut messages = Vec::with_capacity(list.len());
        for m in list {
            let record = records.remove(&m.id).ok_or_else(|| CaseError::Internal(format!("message #{} of case {id} vanished", m.id)))??;
            messages.push((m, record));
        }
        let entries = store.case_entries(id).await?;
        let history = store.case_history(id).await?;
        self.access
            .audit(
                &who.actor(),
                "case.read",
                Some(format!("case:{id}")),
                Some(format!("via={via} opening={} messages={}", case.opening, messages.len())),
            )
            .await?;
        Ok(CaseView { case, messages, entries, history, now: now_millis() })
    }

    /// The stored message registered as `number` (the check digit may be left out), for a
    /// caller who may read a queue in which it has a case. The read is audited
    /// (`message.read`, with `via`).
    pub async fn raw_message(&self, who: &Principal, via: &str, number: &str) -> Result<RawMessage, CaseError> {
        let store = self.store();
        let hidden = || CaseError::NoSuchMessage(number.to_string());
        let format = &self.settings.reg_format;
        let (year, seq) = format.parse_number(number.trim(), true).map_err(|_| hidden())?;
        let id = store.message_id_by_registration(format.counter_year(year), seq).await.map_err(|_| hidden())?.ok_or_else(hidden)?;
        if !store.message_queues(id).await?.iter().any(|q| who.can(q, Permission::Read)) {
            return Err(hidden());
        }
        let (number, bytes) = store.open_message(id).await?;
        self.access.audit(&who.actor(), "message.read", Some(number.clone()), Some(format!("via={via}"))).await?;
        Ok(RawMessage { number, bytes })
    }
}
