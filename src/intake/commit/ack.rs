//! The acknowledgement of a new case: chosen (template by queue and category) and rendered here,
//! queued in the outbox in the registration's transaction (so no acknowledgement is lost by a
//! crash), at most one per sender within `outbox.ack_window`.

use crate::outbox::compose;
use crate::store::StoreError;
use crate::store::outbox::NewOutboxMail;
use crate::store::writer::WriteTx;

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
    let policy = &s.policy;
    let Some(ack_window) = policy.ack_window else { return Ok(()) };
    let now = tx.now();
    let rcpt_idx = tx.keys().address_index(&ack.to);
    let window_start = now.timestamp_millis() - ack_window.as_millis() as i64;
    tx.queue_ack_unless_recent(&rcpt_idx, window_start, |keys| {
        let queue = &placement.queues[0];
        let from = policy.queue_address(queue).unwrap_or(queue);
        let due = chrono::DateTime::from_timestamp_millis(s.routing.due_at).unwrap_or(now).with_timezone(&policy.calendar.timezone());
        let hostname = &policy.hostname;
        let template = policy.acknowledgement_for(queue, s.routing.decision.category.as_deref());
        let data = compose::acknowledgement(template, number, &ack.subject, due, queue, from, &ack.to, ack.message_id.as_deref(), hostname);
        // RFC 3834: automatic replies go out with the null sender, so nothing bounces back at us.
        Ok(NewOutboxMail::seal(keys, Some(message_id), "ack", "", &[ack.to.as_str()], &data, now.timestamp_millis())?)
    })?;
    Ok(())
}
