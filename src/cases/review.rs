//! Review before sending (four eyes): in a queue with `review = true` a reply waits as "awaiting
//! review" (no outbox row) until someone else with the `review` permission there approves it —
//! then it is composed again from the stored text and queued with the undo window — or returns
//! it with a comment for its author to edit and send again. The author can never approve their
//! own reply. Each step is a case change with its history row and audit entry
//! (`case.reply.submitted`, `case.reply.approved`, `case.reply.returned`).

use super::input::check_text;
use super::reply::{AWAITING_REVIEW, Prepared, RETURNED, ReplyRequest};
use super::workflow::{Outcome, finish, set_status};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::cases::{AwaitingReview, CaseEntry, EntryBody};

/// Text in the placeholder language that renders to exactly `text`.
fn literal(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

impl Cases {
    /// Replies awaiting my review: in the queues where I may review, written by others.
    pub async fn reviews(&self, who: &Principal) -> Result<Vec<AwaitingReview>, CaseError> {
        let queues = self.reviewed_queues(who);
        Ok(self.store().awaiting_review(&queues).await?.into_iter().filter(|r| r.author != who.name).collect())
    }

    /// True when `who` may review replies in some queue (the page header links `/reviews`).
    pub fn reviews_somewhere(&self, who: &Principal) -> bool {
        !self.reviewed_queues(who).is_empty()
    }

    fn reviewed_queues(&self, who: &Principal) -> Vec<String> {
        let reviews = |q: &str| who.can(q, Permission::Read) && who.can(q, Permission::Review);
        self.settings().queues.iter().filter(|q| reviews(&q.name)).map(|q| q.name.clone()).collect()
    }

    /// The reply `entry` of case `id` awaiting review, checked for a reviewer who is not its author.
    async fn reviewable(&self, who: &Principal, id: i64, entry: i64) -> Result<(crate::store::cases::CaseRow, CaseEntry), CaseError> {
        let case = self.readable_case(who, id).await?;
        if !who.can(&case.queue, Permission::Review) {
            return Err(CaseError::forbidden(&[Permission::Review], &case.queue));
        }
        let reply = self.reply_entry(id, entry).await?;
        if reply.author == who.name {
            return Err(CaseError::Refused(
                "you wrote this reply: someone else with the review permission must approve or return it".into(),
            ));
        }
        if reply.state.as_deref() != Some(AWAITING_REVIEW) {
            return Err(CaseError::Conflict("this reply is not awaiting review (it was approved, returned or withdrawn)".into()));
        }
        Ok((case, reply))
    }

    /// Approves reply `entry`: composed again from its stored text and queued, held for the undo
    /// window; the case then waits on the customer.
    pub async fn approve_reply(&self, who: &Principal, id: i64, entry: i64) -> Result<Outcome, CaseError> {
        let (case, reply) = self.reviewable(who, id, entry).await?;
        let request = ReplyRequest {
            body: literal(&reply.body.text),
            subject: reply.body.subject.as_deref().map(literal),
            promise: None,
            replaces: None,
        };
        let Prepared { draft, answers, to_address, data, message_id } = self.draft_for(who, case, &request).await?;
        let mut change = self.begin(who, id, &[Permission::Review]).await?;
        let before = change.case.clone();
        let stored = change.reply_entry(entry).await?.ok_or_else(|| CaseError::Invalid(format!("case {id} has no reply {entry}")))?;
        if stored.state.as_deref() != Some(AWAITING_REVIEW) {
            return Err(CaseError::Conflict("this reply is not awaiting review any more (someone else decided meanwhile)".into()));
        }
        let leaves_at = change.now + self.settings().undo_window.as_millis() as i64;
        let outbox = change.enqueue_mail(answers, "reply", &draft.from, &to_address, &data, leaves_at).await?;
        let body = EntryBody { message_id: Some(message_id), to: Some(to_address), subject: Some(draft.subject), ..reply.body };
        change.update_entry_body(entry, &body).await?;
        change.set_reply_state(entry, None, Some(&before.status), Some(outbox)).await?;
        change.case.first_response_at = change.case.first_response_at.or(Some(change.now));
        set_status(&mut change.case, "waiting", change.now);
        let detail = format!("entry={entry} outbox={outbox} author={} status {}→waiting", stored.author, before.status);
        finish(change, &before, who, "reply.approved", &detail, Some((entry, Some(outbox)))).await
    }

    /// Returns reply `entry` to its author with `comment` (sealed, shown to the author).
    pub async fn return_reply(&self, who: &Principal, id: i64, entry: i64, comment: String) -> Result<Outcome, CaseError> {
        let (_, reply) = self.reviewable(who, id, entry).await?;
        check_text("comment", &comment)?;
        let mut change = self.begin(who, id, &[Permission::Review]).await?;
        let before = change.case.clone();
        let stored = change.reply_entry(entry).await?.ok_or_else(|| CaseError::Invalid(format!("case {id} has no reply {entry}")))?;
        if stored.state.as_deref() != Some(AWAITING_REVIEW) {
            return Err(CaseError::Conflict("this reply is not awaiting review any more (someone else decided meanwhile)".into()));
        }
        change.set_reply_state(entry, Some(RETURNED), None, None).await?;
        let body = EntryBody { text: comment, about: Some(entry), ..EntryBody::default() };
        let note = change.add_entry("review", &who.name, &body, None).await?;
        let detail = format!("entry={entry} author={} comment={note}", reply.author);
        finish(change, &before, who, "reply.returned", &detail, Some((note, None))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_sent_as_it_was_approved() {
        let values = crate::cases::templates::Values::default();
        for text in ["Dear {customer_name} {{x}}", "plain", "}{"] {
            assert_eq!(crate::cases::templates::render(&literal(text), &values).unwrap(), text);
        }
    }
}
