//! The actions on a case. Each reads the case under the write lock, checks the caller's
//! permission on the case's queue as it is at that moment, and commits the change with its
//! `case_history` row and audit entry in one transaction.
//!
//! Whatever an action must read through the pool besides the case (the assignee's permissions,
//! the customer's address for a reply) is read before the write lock is taken: a request holding
//! the lock must never wait for a pool connection that other requests hold while they wait for
//! the lock.

use super::input::{check_tag, check_text, priority};
use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::intake::sla::Priority;
use crate::store::cases::{CaseChange, CaseRow, EntryBody, status_name};
use crate::store::millis_to_rfc3339;

/// A case after an action, with what the action added.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: CaseRow,
    /// The time of the action (unix ms): what "overdue" is measured against.
    pub now: i64,
    /// The staff entry written (note, follow-up, reply).
    pub entry: Option<i64>,
    /// The outbox row of a reply.
    pub outbox: Option<i64>,
}

impl Cases {
    /// The case, if `who` may read its queue.
    pub(super) async fn readable_case(&self, who: &Principal, id: i64) -> Result<CaseRow, CaseError> {
        self.store().case(id).await?.filter(|c| who.can(&c.queue, Permission::Read)).ok_or(CaseError::NotFound(id))
    }

    /// Takes the write lock on case `id` for a caller who must hold one of `permissions` there.
    pub(super) async fn begin(&self, who: &Principal, id: i64, permissions: &[Permission]) -> Result<CaseChange<'_>, CaseError> {
        let change = self.store().change_case(id).await?.ok_or(CaseError::NotFound(id))?;
        let queue = &change.case.queue;
        if !who.can(queue, Permission::Read) {
            return Err(CaseError::NotFound(id));
        }
        if !permissions.iter().any(|p| who.can(queue, *p)) {
            return Err(CaseError::forbidden(permissions, queue));
        }
        Ok(change)
    }

    /// Assigns the case to the caller (a new case becomes open), taking it over from whoever had
    /// it; the history keeps who that was.
    pub async fn claim(&self, who: &Principal, id: i64) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        let mut detail = format!("assignee {}", arrow(before.assignee.as_deref(), Some(&who.name)));
        change.case.assignee_id = Some(who.user_id);
        change.case.assignee = Some(who.name.clone());
        if before.status == "new" {
            set_status(&mut change.case, "open", change.now);
            detail.push_str(" status new→open");
        }
        finish(change, &before, who, "claim", &detail, None).await
    }

    /// To someone who may read the case's queue, or to nobody (`user` None).
    pub async fn assign(&self, who: &Principal, id: i64, user: Option<&str>) -> Result<Outcome, CaseError> {
        let permissions = [Permission::Assign, Permission::Supervise];
        // Refuse before looking the assignee up (which reads through the pool, so cannot happen
        // under the lock): someone who may not assign here learns nothing about users.
        let case = self.readable_case(who, id).await?;
        if !permissions.iter().any(|p| who.can(&case.queue, *p)) {
            return Err(CaseError::forbidden(&permissions, &case.queue));
        }
        // An unknown name, a locked user and one who may not read the queue get one answer: an
        // assigner learns whom the case can go to, not who has an account or who is locked.
        let cannot_work = |name: &str, queue: &str| {
            CaseError::Invalid(format!("{name:?} cannot work cases in queue {queue:?} (no such user, locked, or no read permission there)"))
        };
        let assignee = match user {
            None => None,
            Some(name) => match self.store().user_id(name).await? {
                Some(user_id) => Some(self.access.principal(user_id).await?.ok_or_else(|| cannot_work(name, &case.queue))?),
                None => return Err(cannot_work(name, &case.queue)),
            },
        };
        let mut change = self.begin(who, id, &permissions).await?;
        let before = change.case.clone();
        if let Some(p) = &assignee
            && !p.can(&before.queue, Permission::Read)
        {
            return Err(cannot_work(&p.name, &before.queue));
        }
        change.case.assignee_id = assignee.as_ref().map(|p| p.user_id);
        change.case.assignee = assignee.as_ref().map(|p| p.name.clone());
        let detail = format!("assignee {}", arrow(before.assignee.as_deref(), change.case.assignee.as_deref()));
        finish(change, &before, who, "assign", &detail, None).await
    }

    /// To another configured queue (supervise on the source). The assignment ends: the new
    /// queue's people pick the case up.
    pub async fn transfer(&self, who: &Principal, id: i64, queue: &str) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Supervise]).await?;
        let before = change.case.clone();
        if self.settings().queue(queue).is_none() {
            let settings = self.settings();
            let names: Vec<&str> = settings.queues.iter().map(|q| q.name.as_str()).collect();
            return Err(CaseError::Invalid(format!("no queue is named {queue:?} (queues: {})", names.join(", "))));
        }
        if before.queue == queue {
            return Err(CaseError::Conflict(format!("case {id} is already in queue {queue:?}")));
        }
        change.transfer(queue).await?;
        let mut detail = format!("queue {}→{}", before.queue, queue);
        if before.assignee_id.is_some() {
            change.case.assignee_id = None;
            change.case.assignee = None;
            detail.push_str(&format!(" assignee {}", arrow(before.assignee.as_deref(), None)));
        }
        finish(change, &before, who, "transfer", &detail, None).await
    }

    /// Urgent, flagged and tagged `escalated`.
    pub async fn escalate(&self, who: &Principal, id: i64) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        change.case.escalated = true;
        self.apply_priority(&mut change.case, Priority::Urgent);
        if !change.case.tags.iter().any(|t| t == "escalated") {
            change.case.tags.push("escalated".into());
        }
        let detail = format!("priority {}→urgent", before.priority);
        finish(change, &before, who, "escalate", &detail, None).await
    }

    /// new → open → waiting → resolved → closed (and back to open or waiting; never back to new).
    pub async fn change_status(&self, who: &Principal, id: i64, status: &str) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        let new = status_name(status)
            .ok_or_else(|| CaseError::Invalid(format!("unknown status {status:?} (new, open, waiting, resolved, closed)")))?;
        if new == "new" && before.status != "new" {
            // A conflict with the case's state, not a malformed request (as for the same queue).
            return Err(CaseError::Conflict("a case that has been worked on cannot become new again; set it to open".into()));
        }
        set_status(&mut change.case, new, change.now);
        let detail = format!("status {}→{new}", before.status);
        finish(change, &before, who, "status", &detail, None).await
    }

    /// The due time follows the new priority's SLA.
    pub async fn change_priority(&self, who: &Principal, id: i64, name: &str) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        let priority = priority(name).ok_or_else(|| CaseError::Invalid(format!("unknown priority {name:?} (urgent, normal or low)")))?;
        self.apply_priority(&mut change.case, priority);
        let detail = format!("priority {}→{priority}", before.priority);
        finish(change, &before, who, "priority", &detail, None).await
    }

    /// A configured category code; None clears it.
    pub async fn change_category(&self, who: &Principal, id: i64, category: Option<String>) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        let categories = &self.settings().categories;
        if let Some(code) = &category
            && !categories.iter().any(|c| &c.code == code)
        {
            let known: Vec<String> = categories.iter().map(|c| format!("{} ({})", c.code, c.name)).collect();
            return Err(CaseError::Invalid(format!("no category is coded {code:?} (known: {})", known.join(", "))));
        }
        change.case.category = category;
        let detail = format!("category {}", arrow(before.category.as_deref(), change.case.category.as_deref()));
        finish(change, &before, who, "category", &detail, None).await
    }

    /// Removes, then adds.
    pub async fn change_tags(&self, who: &Principal, id: i64, add: &[String], remove: &[String]) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        for tag in add.iter().chain(remove) {
            check_tag(tag)?;
        }
        change.case.tags.retain(|t| !remove.contains(t));
        for tag in add {
            if !change.case.tags.contains(tag) {
                change.case.tags.push(tag.clone());
            }
        }
        // Tags are sealed: the history and the audit log record how many changed, never which.
        let added = change.case.tags.iter().filter(|t| !before.tags.contains(t)).count();
        let removed = before.tags.iter().filter(|t| !change.case.tags.contains(t)).count();
        let detail = format!("tags added={added} removed={removed} count={}", change.case.tags.len());
        finish(change, &before, who, "tags", &detail, None).await
    }

    /// An internal note, sealed.
    pub async fn note(&self, who: &Principal, id: i64, text: String) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        check_text("text", &text)?;
        let entry = change.add_entry("note", &who.name, &EntryBody { text, ..Default::default() }, None).await?;
        finish(change, &before, who, "note", &format!("entry={entry}"), Some((entry, None))).await
    }

    /// A date to come back to the case (RFC 3339, in the future), with an optional note.
    pub async fn follow_up(&self, who: &Principal, id: i64, due: &str, note: String) -> Result<Outcome, CaseError> {
        let mut change = self.begin(who, id, &[Permission::Act]).await?;
        let before = change.case.clone();
        let parsed = chrono::DateTime::parse_from_rfc3339(due)
            .map_err(|e| CaseError::Invalid(format!("due {due:?} is not an RFC 3339 time such as 2026-03-02T09:00:00+01:00: {e}")))?;
        let due_ms = parsed.timestamp_millis();
        if due_ms <= change.now {
            return Err(CaseError::Invalid("due must be in the future".into()));
        }
        change.case.follow_up_at = Some(due_ms);
        let due_text = millis_to_rfc3339(due_ms);
        let body = EntryBody { text: note, due: Some(due_text.clone()), ..Default::default() };
        let entry = change.add_entry("follow-up", &who.name, &body, None).await?;
        finish(change, &before, who, "follow-up", &format!("entry={entry} due={due_text}"), Some((entry, None))).await
    }

    /// A change of priority moves the SLA due time to what the new priority allows from opening.
    fn apply_priority(&self, case: &mut CaseRow, priority: Priority) {
        if case.priority == priority.as_str() {
            return;
        }
        case.priority = priority.as_str().to_string();
        if let Some(opened) = chrono::DateTime::from_timestamp_millis(case.opened_at) {
            case.due_at = Some(self.settings().calendar.due(opened, priority).timestamp_millis());
        }
    }
}

/// Commits unless nothing changed and nothing was added (then the case is returned as it is and
/// nothing is recorded). `added`: the entry written and, for a reply, its outbox row.
pub(super) async fn finish(
    change: CaseChange<'_>,
    before: &CaseRow,
    who: &Principal,
    action: &str,
    detail: &str,
    added: Option<(i64, Option<i64>)>,
) -> Result<Outcome, CaseError> {
    let now = change.now;
    let case = if change.case == *before && added.is_none() { change.case } else { change.commit(&who.name, action, detail).await? };
    Ok(Outcome { case, now, entry: added.map(|(entry, _)| entry), outbox: added.and_then(|(_, outbox)| outbox) })
}

/// New status, with the resolution time kept in step.
pub(super) fn set_status(case: &mut CaseRow, status: &'static str, now: i64) {
    match status {
        "resolved" if case.status != "resolved" => case.resolved_at = Some(now),
        "resolved" => {}
        "closed" => case.resolved_at = case.resolved_at.or(Some(now)),
        _ => case.resolved_at = None,
    }
    case.status = status.to_string();
}

fn arrow(old: Option<&str>, new: Option<&str>) -> String {
    format!("{}→{}", old.unwrap_or("none"), new.unwrap_or("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_the_resolution_time_in_step() {
        let mut case = CaseRow {
            id: 1,
            opening: "MR-1".into(),
            queue: "support".into(),
            status: "open".into(),
            priority: "normal".into(),
            category: None,
            tags: vec![],
            due_at: None,
            opened_at: 0,
            updated_at: 0,
            assignee_id: None,
            assignee: None,
            escalated: false,
            spam: false,
            follow_up_at: None,
            first_response_at: None,
            resolved_at: None,
            tier: None,
        };
        set_status(&mut case, "resolved", 10);
        assert_eq!(case.resolved_at, Some(10));
        set_status(&mut case, "closed", 20);
        assert_eq!(case.resolved_at, Some(10), "closing keeps the resolution time");
        set_status(&mut case, "open", 30);
        assert_eq!(case.resolved_at, None, "re-opening clears it");
        set_status(&mut case, "closed", 40);
        assert_eq!(case.resolved_at, Some(40));
    }
}
