//! The reply to the customer: through the outbox, tagged with the case's registration number
//! (so the answer threads back), after which the case waits on the customer.
//!
//! The rendering (`render_reply`, `reply_subject`, `random_hex`) is today's, moved as it is; the
//! outbox's one mail composer is to replace it.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;

use super::input::check_text;
use super::workflow::{Outcome, finish, set_status};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::record::{Mailbox, Record};
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
        let (data, message_id, subject) = render_reply(&self.settings.hostname, &from, &to, &original, &case.opening, &body)?;
        let to_address = to.address.clone().unwrap_or_default();

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

/// `Re: [NUMBER] subject`: the tag threads the customer's answer back into the case.
fn reply_subject(original: Option<&str>, number: &str) -> String {
    let tag = format!("[{number}]");
    let text: String = original.unwrap_or("").replace(&tag, " ").chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some(rest) = words.get(..3).filter(|p| p.eq_ignore_ascii_case("re:")).map(|_| words[3..].trim_start().to_string()) {
        words = rest;
    }
    if words.chars().count() > 200 {
        words = words.chars().take(200).collect::<String>() + "…";
    }
    if words.is_empty() { format!("Re: {tag}") } else { format!("Re: {tag} {words}") }
}

fn random_hex(bytes: usize) -> Result<String, CaseError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| CaseError::Internal("no randomness for a Message-ID".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The reply as RFC 5322 bytes, with its Message-ID and subject.
fn render_reply(
    hostname: &str,
    from: &str,
    to: &Mailbox,
    original: &Record,
    number: &str,
    body: &str,
) -> Result<(Vec<u8>, String, String), CaseError> {
    let subject = reply_subject(original.subject.as_deref(), number);
    let id_part: String = number.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    let message_id = format!("reply.{id_part}.{}@{}", random_hex(8)?, hostname);
    let to_address = to.address.clone().unwrap_or_default();
    let to_header = Address::new_address(to.name.clone().filter(|n| !n.trim().is_empty()), to_address);
    let text = body.replace("\r\n", "\n").replace('\r', "\n").replace('\n', "\r\n");
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(None::<String>, from.to_string()))
        .to(to_header)
        .subject(subject.clone())
        .date(Date::new(chrono::Utc::now().timestamp()))
        .message_id(message_id.clone());
    if let Some(original_id) = original
        .message_id
        .as_deref()
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|id| !id.is_empty() && !id.contains(char::is_whitespace))
    {
        // References: the thread so far (bounded), then the message answered.
        let mut references: Vec<String> = original.references.iter().rev().take(10).rev().cloned().collect();
        references.retain(|r| r != original_id);
        references.push(original_id.to_string());
        builder = builder.in_reply_to(MessageId::new(original_id.to_string())).references(MessageId::from(references));
    }
    let data = builder.text_body(text).write_to_vec().map_err(|e| CaseError::Internal(e.to_string()))?;
    Ok((data, message_id, subject))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subjects_carry_the_tag_once() {
        let n = "MR-2026-000001-7";
        assert_eq!(reply_subject(Some("Broken order"), n), "Re: [MR-2026-000001-7] Broken order");
        assert_eq!(reply_subject(Some("RE: re: [MR-2026-000001-7] Broken\r\n order"), n), "Re: [MR-2026-000001-7] Broken order");
        assert_eq!(reply_subject(None, n), "Re: [MR-2026-000001-7]");
        assert_eq!(reply_subject(Some("Réclamation"), n), "Re: [MR-2026-000001-7] Réclamation");
        assert!(reply_subject(Some(&"x".repeat(500)), n).chars().count() < 230);
    }
}
