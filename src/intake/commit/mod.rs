//! Registration, intake's part of it: run by the writer for each new message inside the batch's
//! transaction, once the message has its number. Seals our trace header, places the message in
//! its cases (threading, re-opening: `place`), stores it, and queues the acknowledgement
//! (`ack`). The writer (`store::writer`) batches, numbers, commits and answers; everything it
//! does not decide is here.

mod ack;
mod place;
mod trace;

use crate::store::StoreError;
use crate::store::audit::AuditEntry;
use crate::store::crypto::aad;
use crate::store::writer::{MessageRow, Numbered, Numbering, Registration, WriteTx};

use super::Submission;
use super::regnum::RegFormat;

impl Registration for Submission {
    fn msgid_idx(&self) -> Option<&[u8]> {
        self.msgid_idx.as_deref()
    }

    fn dedupe_idx(&self) -> &[u8] {
        &self.dedupe_idx
    }

    fn actor(&self) -> &'static str {
        self.protocol
    }

    fn size(&self) -> usize {
        self.size
    }

    fn register(&self, tx: &mut WriteTx<'_>, numbered: &Numbered) -> Result<(), StoreError> {
        let s = self;
        let number = numbered.number.as_str();
        let mut trace = trace::received_header(s, number);
        if let Some(header) = &s.auth_header {
            trace.push_str(header);
        }
        let trace_ct = s.data_key.seal(&aad("trace", &s.uid), trace.as_bytes())?;
        let received = s.received_at.timestamp_millis();
        let mut tags = s.routing.message_tags.clone();
        let placement = place::place(tx, s, number, received, &mut tags)?;
        tx.insert_message(&MessageRow {
            id: numbered.id,
            uid: &s.uid,
            number,
            reg_year: numbered.year,
            reg_seq: numbered.seq,
            received_at: received,
            size: s.size,
            protocol: s.protocol,
            tls: s.tls.as_deref(),
            parsed: s.parsed,
            cases: &placement.cases,
            key_id: s.key_id,
            wrapped_key: &s.wrapped_key,
            trace_ct: &trace_ct,
            fields_ct: &s.fields_ct,
            raw_ct: &s.raw_ct,
            sender_idx: s.sender_idx.as_deref(),
            msgid_idx: s.msgid_idx.as_deref(),
            dedupe_idx: &s.dedupe_idx,
            tags: &tags,
            automatic: s.routing.automatic,
            auth: s.auth_summary.as_deref(),
        })?;
        if !placement.joined
            && let Some(ack) = &s.ack
        {
            ack::enqueue_ack(tx, s, ack, numbered.id, number, &placement)?;
        }
        let at = tx.now().timestamp_millis();
        tx.audit(AuditEntry {
            at,
            actor: s.protocol.into(),
            action: "message.registered".into(),
            object: Some(number.to_string()),
            detail: Some(format!("size={} cases={:?} joined={} tls={}", s.size, placement.cases, placement.joined, s.tls.is_some())),
        });
        Ok(())
    }
}

/// The store counts; the registration number's format (and check digit) is intake's.
impl Numbering for RegFormat {
    fn counter_year(&self, calendar_year: i32) -> i32 {
        RegFormat::counter_year(self, calendar_year)
    }

    fn format(&self, counter_year: i32, seq: u64) -> String {
        RegFormat::format(self, counter_year, seq)
    }
}
