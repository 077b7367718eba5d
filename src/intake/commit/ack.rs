//! The acknowledgement of a new case: chosen (template by queue and category) and rendered here,
//! queued in the outbox in the registration's transaction (so no acknowledgement is lost by a
//! crash), at most one per sender within `outbox.ack_window`.

use crate::store::StoreError;
use crate::store::writer::{QueuedMail, WriteTx};

use super::super::{AckRequest, Submission};
use super::place::Placement;

pub(super) fn enqueue_ack(
    tx: &mut WriteTx<'_>,
    s: &Submission,
    ack: &AckRequest,
    message_id: i64,
    number: &str,
    placement: &Placement,
) -> Result<(), StoreError> {
    let settings = &s.settings;
    let Some(outbox) = &settings.config.outbox else { return Ok(()) };
    let now = tx.now();
    let rcpt_idx = crate::outbox::rcpt_index(tx.keys(), &ack.to);
    let window_start = now.timestamp_millis() - outbox.ack_window.as_millis() as i64;
    if tx.ack_queued_since(&rcpt_idx, window_start)? {
        return Ok(());
    }
    let queue = &placement.queues[0];
    let from = settings.queue_address(queue).unwrap_or(queue);
    let due = chrono::DateTime::from_timestamp_millis(s.routing.due_at).unwrap_or(now).with_timezone(&settings.calendar.timezone());
    let hostname = &settings.config.server.hostname;
    let template = settings.acknowledgement_for(queue, s.routing.decision.category.as_deref());
    let data = crate::outbox::render(template, number, &ack.subject, due, queue, from, &ack.to, ack.message_id.as_deref(), hostname);
    let uid = crate::outbox::new_uid()?;
    // RFC 3834: automatic replies go out with the null sender, so nothing bounces back at us.
    let (key_id, wrapped_key, mail_ct) = crate::outbox::seal_mail(tx.keys(), &uid, "", &[ack.to.as_str()], &data)?;
    tx.queue_ack(&QueuedMail {
        message_id,
        rcpt_idx: &rcpt_idx,
        created_at: now.timestamp_millis(),
        uid: &uid,
        key_id,
        wrapped_key: &wrapped_key,
        mail_ct: &mail_ct,
    })
}
