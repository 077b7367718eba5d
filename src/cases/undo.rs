//! Taking a reply back within the undo window (`[outbox] undo_seconds`): its outbox row is
//! withdrawn by one conditional statement (so exactly one of the undo and the worker's claim
//! wins), the entry stays in the case marked withdrawn, and the case status goes back to what
//! the reply replaced if nobody changed it since.

use super::workflow::{Outcome, finish, set_status};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::cases::{CaseEntry, CaseRow, TooLate};

/// One reply of a case and where it stands.
#[derive(Debug, Clone)]
pub struct ReplyState {
    pub case: CaseRow,
    pub entry: CaseEntry,
    /// While it can still be taken back: when the outbox may send it (unix ms).
    pub leaves_at: Option<i64>,
    /// When this was read (unix ms).
    pub now: i64,
}

impl Cases {
    /// Reply `entry` of case `id` (the caller has checked that the case may be read).
    pub(super) async fn reply_entry(&self, id: i64, entry: i64) -> Result<CaseEntry, CaseError> {
        self.store()
            .case_entries(id)
            .await?
            .into_iter()
            .find(|e| e.id == entry && e.kind == "reply")
            .ok_or_else(|| CaseError::Invalid(format!("case {id} has no reply {entry}")))
    }

    /// Reply `entry` of case `id` (someone who may read the case), with its undo deadline.
    pub async fn reply_state(&self, who: &Principal, id: i64, entry: i64) -> Result<ReplyState, CaseError> {
        let case = self.readable_case(who, id).await?;
        let entry = self.reply_entry(id, entry).await?;
        let leaves_at = match (entry.outbox_id, entry.state.as_deref()) {
            (Some(outbox), None) => crate::store::outbox::pending_until(self.store(), outbox).await?,
            _ => None,
        };
        Ok(ReplyState { case, entry, leaves_at, now: crate::store::now_millis() })
    }

    /// Withdraws reply `entry` of case `id`: its author, or someone who supervises or reviews the queue.
    /// After the window: "already sent" or "too late" (a conflict with the reply's state).
    pub async fn undo_reply(&self, who: &Principal, id: i64, entry: i64) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act, Permission::Supervise, Permission::Review]).await?;
        let before = change.case.clone();
        let reply = change.reply_entry(entry).await?.ok_or_else(|| CaseError::Invalid(format!("case {id} has no reply {entry}")))?;
        if reply.author != who.name && !who.can(&before.queue, Permission::Supervise) && !who.can(&before.queue, Permission::Review) {
            return Err(CaseError::Refused(format!(
                "only its author ({}), a reviewer or a supervisor of the queue can take a reply back",
                reply.author
            )));
        }
        if reply.state.as_deref() == Some("withdrawn") {
            return Err(CaseError::Conflict("this reply was already taken back".into()));
        }
        let Some(outbox) = reply.outbox_id else {
            return Err(CaseError::Conflict("this reply has not been queued for sending (it awaits review)".into()));
        };
        if let Err(TooLate(status)) = change.withdraw_mail(outbox).await? {
            return Err(CaseError::Conflict(match status.as_str() {
                "sent" => "too late: the reply has already been sent".to_string(),
                "sending" | "failed" => "too late: the reply is already being sent".to_string(),
                _ => "too late: the undo window has passed and the reply is on its way".to_string(),
            }));
        }
        change.set_reply_state(entry, Some("withdrawn"), None, None).await?;
        let mut detail = format!("entry={entry} outbox={outbox}");
        if let Some(previous) = reply.status_before.as_deref().and_then(crate::store::cases::status_name)
            && before.status == "waiting"
            && previous != "waiting"
        {
            set_status(&mut change.case, previous, change.now);
            detail.push_str(&format!(" status waiting→{previous}"));
        }
        if before.first_response_at == Some(reply.at) {
            // This reply was the first response; nothing has reached the customer after all.
            change.case.first_response_at = None;
        }
        finish(change, &before, who, "reply-withdrawn", &detail, Some((entry, None))).await
    }
}
