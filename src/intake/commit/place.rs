//! Threading and case placement: join the cases a reply points at (re-opening them when a
//! person wrote again), or open one case per queue the message was routed to.

use crate::store::StoreError;
use crate::store::writer::{NewCase, WriteTx};

use super::super::Submission;

/// Which cases a new message belongs to.
pub(super) struct Placement {
    pub cases: Vec<i64>,
    /// The queue of each case, in the same order.
    pub queues: Vec<String>,
    /// True when it joined existing cases (a reply), false when it opened new ones.
    pub joined: bool,
}

/// Joins the message to the cases its subject tag or references point at, or opens one case per
/// queue it was routed to. Records the sender as a participant; a sender new to a case is tagged
/// `new-participant`; a human reply re-opens a case that waits on the customer or was resolved or
/// closed (with a history row), an automatic one (out-of-office) does not.
pub(super) fn place(
    tx: &mut WriteTx<'_>,
    s: &Submission,
    number: &str,
    received: i64,
    message_tags: &mut Vec<String>,
) -> Result<Placement, StoreError> {
    let r = &s.routing;
    let mut existing: Vec<(i64, String)> = Vec::new();
    let mut add_unseen = |rows: Vec<(i64, String)>| {
        for row in rows {
            if !existing.iter().any(|(id, _)| *id == row.0) {
                existing.push(row);
            }
        }
    };
    for (year, seq) in &r.thread_numbers {
        add_unseen(tx.cases_of_number(*year, *seq)?);
    }
    for idx in &r.reference_idx {
        add_unseen(tx.cases_of_message_id(idx)?);
    }
    if !existing.is_empty() {
        for (case_id, status) in &existing {
            let answered = matches!(status.as_str(), "waiting" | "resolved" | "closed");
            if answered && !r.automatic {
                tx.reopen_case(*case_id, received, &format!("status {status}→open (the customer wrote again)"))?;
            } else {
                tx.touch_case(*case_id, received)?;
            }
            if let Some(sender) = &s.sender_idx
                && tx.add_participant(*case_id, sender)?
                && !message_tags.iter().any(|t| t == "new-participant")
            {
                message_tags.push("new-participant".into());
            }
        }
        return Ok(Placement { cases: existing.into_iter().map(|(id, _)| id).collect(), queues: Vec::new(), joined: true });
    }
    let d = &r.decision;
    let mut cases = Vec::with_capacity(d.queues.len());
    for queue in &d.queues {
        // Rule tags are sealed like staff tags (each case its own key); untagged cases need none.
        let sealed = if d.tags.is_empty() { None } else { Some(crate::store::cases::seal_tags(tx.keys(), None, &d.tags)?) };
        let case_id = tx.open_case(&NewCase {
            opening_number: number,
            queue,
            opened_at: received,
            category: d.category.as_deref(),
            priority: d.priority.as_str(),
            due_at: r.due_at,
            spam: d.spam,
            tier: r.tier.as_deref(),
            tags: sealed.as_ref(),
            participant: s.sender_idx.as_deref(),
        })?;
        cases.push(case_id);
    }
    Ok(Placement { cases, queues: d.queues.clone(), joined: false })
}
