//! Reading: a case with its messages' records, staff entries and history (decrypted, audited),
//! and a stored message as it was received (audited).

use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::Record;
use crate::store::cases::{CaseEntry, CaseMessage, CaseRow, HistoryEntry};
use crate::store::{StoreError, now_millis};

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
        let format = &self.settings().reg_format;
        let (year, seq) = format.parse_number(number.trim(), true).map_err(|_| hidden())?;
        let id = store.message_id_by_registration(format.counter_year(year), seq).await.map_err(|_| hidden())?.ok_or_else(hidden)?;
        // A tombstone has left every case's listing: it is told (410) to whoever may read the
        // queue it was registered into, and hidden from everyone else like any message.
        if let Some(tombstone) = store.tombstone(id).await? {
            return Err(if who.can(&tombstone.queue, Permission::Read) {
                StoreError::Purged(Box::new(tombstone)).into()
            } else {
                hidden()
            });
        }
        if !store.message_queues(id).await?.iter().any(|q| who.can(q, Permission::Read)) {
            return Err(hidden());
        }
        let (number, bytes) = store.open_message(id).await?;
        self.access.audit(&who.actor(), "message.read", Some(number.clone()), Some(format!("via={via}"))).await?;
        Ok(RawMessage { number, bytes })
    }
}

/// The marker of the last thing that happened to a case as a reader saw it: the highest message,
/// staff entry and history ids, as `m{message}.e{entry}.h{history}`. A form carries it as `seen`;
/// if the case's marker differs when the form comes back, the case changed meanwhile (a new
/// message, note, reply or action) and the form is not acted on blindly (409, see `http::web`).
pub fn last_event(view: &CaseView) -> String {
    marker(view.messages.iter().map(|(m, _)| m.id).max(), view.entries.iter().map(|e| e.id).max(), view.history.iter().map(|h| h.id).max())
}

fn marker(message: Option<i64>, entry: Option<i64>, history: Option<i64>) -> String {
    format!("m{}.e{}.h{}", message.unwrap_or(0), entry.unwrap_or(0), history.unwrap_or(0))
}

/// A marker read back: (message, entry, history) ids; None when it is not one.
pub fn parse_last_event(text: &str) -> Option<(i64, i64, i64)> {
    let mut parts = text.trim().split('.');
    let mut next = |prefix: char| parts.next()?.strip_prefix(prefix)?.parse().ok();
    let marker = (next('m')?, next('e')?, next('h')?);
    parts.next().is_none().then_some(marker)
}

impl Cases {
    /// The case's [`last_event`] marker now, for a caller who may read it. Reads ids only (no
    /// customer content is returned), so it is not audited as a read.
    pub async fn current_event(&self, who: &Principal, id: i64) -> Result<String, CaseError> {
        let store = self.store();
        self.readable_case(who, id).await?;
        let message = store.case_messages(id).await?.iter().map(|m| m.id).max();
        let entry = store.case_entries(id).await?.iter().map(|e| e.id).max();
        let history = store.case_history(id).await?.iter().map(|h| h.id).max();
        Ok(marker(message, entry, history))
    }

    /// Message `message_id` of case `case_id` as stored, for a caller who may read the case
    /// (a message of another case, or of a case in a queue the caller may not read, is not
    /// found). The read is audited (`message.read`, with `via`).
    pub async fn case_message(&self, who: &Principal, via: &str, case_id: i64, message_id: i64) -> Result<RawMessage, CaseError> {
        let store = self.store();
        self.readable_case(who, case_id).await?;
        if !store.case_messages(case_id).await?.iter().any(|m| m.id == message_id) {
            return Err(CaseError::NoSuchMessage(format!("#{message_id}")));
        }
        let (number, bytes) = store.open_message(message_id).await?;
        self.access.audit(&who.actor(), "message.read", Some(number.clone()), Some(format!("via={via} case={case_id}"))).await?;
        Ok(RawMessage { number, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_event_marker_reads_back() {
        assert_eq!(marker(Some(12), None, Some(40)), "m12.e0.h40");
        assert_eq!(parse_last_event("m12.e0.h40"), Some((12, 0, 40)));
        for bad in ["", "m1.e2", "m1.e2.h3.x4", "h1.e2.m3", "m1.e2.hx"] {
            assert_eq!(parse_last_event(bad), None, "{bad}");
        }
    }
}
