//! The reply to the customer: through the outbox, tagged with the case's registration number
//! (so the answer threads back), after which the case waits on the customer.
//! The mail itself comes from the outbox's one composer (`outbox::compose`).

use super::input::check_text;
use super::workflow::{Outcome, finish, set_status};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::{Mailbox, Record};
use crate::outbox::compose;
use crate::store::cases::EntryBody;

impl Cases {
    /// Sends `body` to the customer. Refusals come in the stated order: not found → forbidden →
    /// invalid → unavailable (a bad request is invalid even without an outbox).
    pub async fn reply(&self, who: &Principal, id: i64, body: String) -> Result<Outcome, CaseError> {
        let case = self.readable_case(who, id).await?;
        if !who.can(&case.queue, Permission::Act) {
            return Err(CaseError::forbidden(&[Permission::Act], &case.queue));
        }
        check_text("body", &body)?;
        if !self.settings.outbox_configured {
            return Err(CaseError::Unavailable(
                "replies are sent through the outbox, and this server has no [outbox] section configured".into(),
            ));
        }
        let from = self
            .settings
            .queue_address(&case.queue)
            .ok_or_else(|| CaseError::Invalid(format!("queue {:?} has no address to send from", case.queue)))?
            .to_string();
        let (answers, to, original) = self
            .customer(id)
            .await?
            .ok_or_else(|| CaseError::Invalid("no message of this case names a customer address to reply to".into()))?;
        let to_address = to.address.clone().unwrap_or_default();
        let answered = compose::Original {
            from: &from,
            to_name: to.name.as_deref(),
            to_address: &to_address,
            subject: original.subject.as_deref(),
            message_id: original.message_id.as_deref(),
            references: &original.references,
        };
        let compose::Reply { data, message_id, subject } =
            compose::reply(&answered, &case.opening, &body, &self.settings.hostname).map_err(|e| CaseError::Internal(e.to_string()))?;

        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        if before.queue != case.queue {
            return Err(CaseError::Conflict("the case moved to another queue meanwhile; reload it and reply again".into()));
        }
        let outbox = change.enqueue_mail(answers, "reply", &from, &to_address, &data).await?;
        let entry_body = EntryBody { text: body, to: Some(to_address), subject: Some(subject), message_id: Some(message_id), due: None };
        let entry = change.add_entry("reply", &who.name, &entry_body, Some(outbox)).await?;
        change.case.first_response_at = change.case.first_response_at.or(Some(change.now));
        set_status(&mut change.case, "waiting", change.now);
        let detail = format!("entry={entry} outbox={outbox} status {}→waiting", before.status);
        finish(change, &before, who, "reply", &detail, Some((entry, Some(outbox)))).await
    }

    /// Whom a reply goes to: Reply-To, else From, of the case's latest message from a person
    /// outside (automatic messages and our own addresses do not count). Returns (message id,
    /// mailbox, record).
    async fn customer(&self, case_id: i64) -> Result<Option<(i64, Mailbox, Record)>, CaseError> {
        let store = self.store();
        for m in store.case_messages(case_id).await?.into_iter().rev().filter(|m| !m.automatic) {
            let record = store.open_fields(m.id).await?;
            let mailbox = record.reply_to.first().or(record.from.first()).cloned();
            if let Some(mailbox) = mailbox.filter(|mb| {
                mb.address.as_deref().is_some_and(|a| usable_address(a) && !self.settings.own_addresses.contains(&a.trim().to_lowercase()))
            }) {
                return Ok(Some((m.id, mailbox, record)));
            }
        }
        Ok(None)
    }
}

fn usable_address(address: &str) -> bool {
    let a = address.trim();
    a.contains('@') && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}
