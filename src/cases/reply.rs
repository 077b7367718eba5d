//! The reply to the customer: through the outbox, tagged with the case's registration number
//! (so the answer threads back), after which the case waits on the customer.
//!
//! A reply is first *prepared* ([`Cases::prepare_reply`]): every check, the placeholders
//! rendered and the mail composed, giving the [`Draft`] a preview shows. *Sending*
//! ([`Cases::send_reply`]) prepares again from the agent's text (it never trusts a preview) and
//! queues the mail, held for the undo window (`undo`). The mail itself comes from the outbox's
//! one composer (`outbox::compose`).

use chrono::{NaiveDate, NaiveTime, TimeZone};

use super::input::check_text;
use super::templates::{self, Values};
use super::workflow::{Outcome, finish, set_status};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::{Mailbox, Record};
use crate::outbox::compose;
use crate::store::cases::{CaseChange, CaseRow, EntryBody};
use crate::store::{millis_to_rfc3339, now_millis};

/// What the agent asks to send, as typed: body and subject in the placeholder language.
#[derive(Debug, Clone, Default)]
pub struct ReplyRequest {
    pub body: String,
    /// Blank: the "Re: …" of the case.
    pub subject: Option<String>,
    /// "Promise an answer by": a date (`2026-12-03`, the end of that day in the SLA calendar's
    /// zone) or an RFC 3339 time; it becomes the case's follow-up date.
    pub promise: Option<String>,
    /// A reply of the sender's that a reviewer returned, which this one replaces (it then leaves
    /// the list of returned replies).
    pub replaces: Option<i64>,
}

/// A reply exactly as it will be sent.
#[derive(Debug, Clone)]
pub struct Draft {
    pub case: CaseRow,
    pub from: String,
    /// `Name <address>` or the address.
    pub to: String,
    /// Replies go to the customer alone.
    pub cc: Vec<String>,
    /// With the registration tag.
    pub subject: String,
    pub body: String,
    /// The promised date (unix ms), when one was given.
    pub promise: Option<i64>,
}

/// A reply queued: the case after it, and when the outbox may send it (unix ms); None while it
/// awaits review.
#[derive(Debug, Clone)]
pub struct SentReply {
    pub outcome: Outcome,
    pub leaves_at: Option<i64>,
}

/// The state of a reply waiting for a reviewer (no outbox row yet).
pub const AWAITING_REVIEW: &str = "awaiting-review";
/// The state of a reply a reviewer sent back to its author with a comment.
pub const RETURNED: &str = "returned";
/// The state of a returned reply its author has sent again, edited, as a new reply.
pub const RESUBMITTED: &str = "resubmitted";

/// Everything sending needs, computed before the case's write lock is taken.
pub(super) struct Prepared {
    pub draft: Draft,
    pub answers: i64,
    pub to_address: String,
    pub data: Vec<u8>,
    pub message_id: String,
}

impl Cases {
    /// The reply as it would be sent now, or why it cannot be. Refusals come in the stated order:
    /// not found → forbidden → invalid → unavailable (a bad request is invalid even without an
    /// outbox).
    pub async fn prepare_reply(&self, who: &Principal, id: i64, request: &ReplyRequest) -> Result<Draft, CaseError> {
        Ok(self.prepare(who, id, request).await?.draft)
    }

    /// Sends `body` to the customer (the JSON API's reply: no template, no promise).
    pub async fn reply(&self, who: &Principal, id: i64, body: String) -> Result<Outcome, CaseError> {
        Ok(self.send_reply(who, id, ReplyRequest { body, ..ReplyRequest::default() }).await?.outcome)
    }

    /// Queues the reply, held for the undo window; with a promise, the case's follow-up date is
    /// set in the same change.
    pub async fn send_reply(&self, who: &Principal, id: i64, request: ReplyRequest) -> Result<SentReply, CaseError> {
        let Prepared { draft, answers, to_address, data, message_id } = self.prepare(who, id, &request).await?;
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        if before.queue != draft.case.queue {
            return Err(CaseError::Conflict("the case moved to another queue meanwhile; reload it and reply again".into()));
        }
        if let Some(old) = request.replaces {
            let returned = change.reply_entry(old).await?;
            if !returned.is_some_and(|r| r.author == who.name && r.state.as_deref() == Some(RETURNED)) {
                return Err(CaseError::Invalid(format!("reply {old} is not one of yours returned by a reviewer")));
            }
            change.set_reply_state(old, Some(RESUBMITTED), None, None).await?;
        }
        let entry_body = EntryBody {
            text: draft.body,
            to: Some(to_address.clone()),
            subject: Some(draft.subject),
            message_id: Some(message_id),
            ..EntryBody::default()
        };
        if self.settings().queue(&before.queue).is_some_and(|q| q.review) {
            // Four eyes: no outbox row until a reviewer approves; the case is unchanged meanwhile.
            let entry = change.add_entry("reply", &who.name, &entry_body, None).await?;
            change.set_reply_state(entry, Some(AWAITING_REVIEW), None, None).await?;
            let mut detail = format!("entry={entry} awaiting review");
            promise_in(&mut change, who, draft.promise, &mut detail).await?;
            let outcome = finish(change, &before, who, "reply.submitted", &detail, Some((entry, None))).await?;
            return Ok(SentReply { outcome, leaves_at: None });
        }
        let leaves_at = change.now + self.settings().undo_window.as_millis() as i64;
        let outbox = change.enqueue_mail(answers, "reply", &draft.from, &to_address, &data, leaves_at).await?;
        let entry = change.add_entry("reply", &who.name, &entry_body, Some(outbox)).await?;
        change.set_reply_state(entry, None, Some(&before.status), None).await?;
        let mut detail = format!("entry={entry} outbox={outbox} status {}→waiting", before.status);
        promise_in(&mut change, who, draft.promise, &mut detail).await?;
        change.case.first_response_at = change.case.first_response_at.or(Some(change.now));
        set_status(&mut change.case, "waiting", change.now);
        let outcome = finish(change, &before, who, "reply", &detail, Some((entry, Some(outbox)))).await?;
        Ok(SentReply { outcome, leaves_at: Some(leaves_at) })
    }

    async fn prepare(&self, who: &Principal, id: i64, request: &ReplyRequest) -> Result<Prepared, CaseError> {
        let case = self.readable_case(who, id).await?;
        if !who.can(&case.queue, Permission::Act) {
            return Err(CaseError::forbidden(&[Permission::Act], &case.queue));
        }
        self.draft_for(who, case, request).await
    }

    /// Checks, renders and composes `request` for `case`, whoever may send it (the author, or a
    /// reviewer approving the author's text).
    pub(super) async fn draft_for(&self, who: &Principal, case: CaseRow, request: &ReplyRequest) -> Result<Prepared, CaseError> {
        let id = case.id;
        check_text("body", &request.body)?;
        let promise = request.promise.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(|p| self.promise(p)).transpose()?;
        if !self.settings().outbox_configured {
            return Err(CaseError::Unavailable(
                "replies are sent through the outbox, and this server has no [outbox] section configured".into(),
            ));
        }
        let from = self
            .settings()
            .queue_address(&case.queue)
            .ok_or_else(|| CaseError::Invalid(format!("queue {:?} has no address to send from", case.queue)))?
            .to_string();
        let (answers, to, original) = self
            .customer(id)
            .await?
            .ok_or_else(|| CaseError::Invalid("no message of this case names a customer address to reply to".into()))?;
        let values = self.values(who, &case, to.name.as_deref(), promise);
        let body = templates::render(&request.body, &values).map_err(|e| CaseError::Invalid(format!("body: {e}")))?;
        check_text("body", &body)?;
        let own_subject = match request.subject.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(subject) => Some(templates::render(subject, &values).map_err(|e| CaseError::Invalid(format!("subject: {e}")))?),
            None => None,
        };
        let to_address = to.address.clone().unwrap_or_default();
        let answered = compose::Original {
            from: &from,
            to_name: to.name.as_deref(),
            to_address: &to_address,
            subject: original.subject.as_deref(),
            message_id: original.message_id.as_deref(),
            references: &original.references,
            own_subject: own_subject.as_deref(),
        };
        let compose::Reply { data, message_id, subject } =
            compose::reply(&answered, &case.opening, &body, &self.settings().hostname).map_err(|e| CaseError::Internal(e.to_string()))?;
        let to_display = match to.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(name) => format!("{name} <{to_address}>"),
            None => to_address.clone(),
        };
        let draft = Draft { case, from, to: to_display, cc: Vec::new(), subject, body, promise };
        Ok(Prepared { draft, answers, to_address, data, message_id })
    }

    /// What the placeholders stand for in this case. `{due}` is the promised date when one is
    /// given (the "expect an answer by …" reply), else the case's due time.
    pub(super) fn values(&self, who: &Principal, case: &CaseRow, customer_name: Option<&str>, promise: Option<i64>) -> Values {
        let tz = self.settings().calendar.timezone();
        let local = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz));
        let due = match promise {
            Some(ms) => local(ms).map(|t| t.format("%Y-%m-%d").to_string()),
            None => case.due_at.and_then(local).map(|t| t.format("%Y-%m-%d %H:%M %Z").to_string()),
        };
        Values {
            customer_name: customer_name.map(str::to_string),
            number: Some(case.opening.clone()),
            due,
            agent: Some(who.name.clone()),
            queue: Some(case.queue.clone()),
        }
    }

    /// The promised time (unix ms, in the future) of a date or an RFC 3339 time.
    fn promise(&self, text: &str) -> Result<i64, CaseError> {
        let invalid = || CaseError::Invalid(format!("promise {text:?} is not a date such as 2026-12-03 (or an RFC 3339 time)"));
        let ms = match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => {
                // By that date: the end of the day where the SLA calendar is.
                let end = date.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("a valid time"));
                self.settings().calendar.timezone().from_local_datetime(&end).latest().ok_or_else(invalid)?.timestamp_millis()
            }
            Err(_) => chrono::DateTime::parse_from_rfc3339(text).map_err(|_| invalid())?.timestamp_millis(),
        };
        if ms <= now_millis() {
            return Err(CaseError::Invalid("the promised date must be in the future".into()));
        }
        Ok(ms)
    }

    /// Whom a reply goes to: Reply-To, else From, of the case's latest message from a person
    /// outside (automatic messages and our own addresses do not count). Returns (message id,
    /// mailbox, record).
    pub(super) async fn customer(&self, case_id: i64) -> Result<Option<(i64, Mailbox, Record)>, CaseError> {
        let store = self.store();
        for m in store.case_messages(case_id).await?.into_iter().rev().filter(|m| !m.automatic) {
            let record = store.open_fields(m.id).await?;
            let mailbox = record.reply_to.first().or(record.from.first()).cloned();
            if let Some(mailbox) = mailbox.filter(|mb| {
                mb.address
                    .as_deref()
                    .is_some_and(|a| usable_address(a) && !self.settings().own_addresses.contains(&a.trim().to_lowercase()))
            }) {
                return Ok(Some((m.id, mailbox, record)));
            }
        }
        Ok(None)
    }
}

/// A promised date becomes the case's follow-up date, with its entry, in the same change.
async fn promise_in(change: &mut CaseChange<'_>, who: &Principal, promise: Option<i64>, detail: &mut String) -> Result<(), CaseError> {
    if let Some(due) = promise {
        let due_text = millis_to_rfc3339(due);
        change.case.follow_up_at = Some(due);
        let body = EntryBody { due: Some(due_text.clone()), ..EntryBody::default() };
        let promised = change.add_entry("follow-up", &who.name, &body, None).await?;
        detail.push_str(&format!(" promised={due_text} follow-up={promised}"));
    }
    Ok(())
}

fn usable_address(address: &str) -> bool {
    let a = address.trim();
    a.contains('@') && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}
