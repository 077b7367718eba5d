//! SLA escalation and staff notifications: a sweep (one node at a time, under a lease held by
//! whoever runs it) finds cases that cross their warning point (a share of the SLA time), that
//! pass their due time, or that arrive urgent or from a VIP customer, and handles each event in
//! the case's own write transaction: the once-only mark `(case, kind, deadline)`, the escalation
//! of a breach (flag, priority, tag), a notification row per staff user told, a mail to each one
//! who has an address (through the outbox), the case history and the audit entries. A crash
//! loses or repeats none of them; a second sweep, on this node or another one, finds the mark.
//!
//! Who is told: a warning goes to the assignee, else to the queue's staff (`act`); a breach to
//! the queue's supervisors (`supervise`); a new urgent or VIP case to the queue's staff. Only
//! staff users' own addresses: a customer never gets one.
//!
//! * `config`: the `[escalation]` section.

pub mod config;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::intake::sla::Calendar;
use crate::outbox::compose::{self, Notice};
use crate::store::audit::AuditEntry;
use crate::store::cases::{CLOCK_RUNNING, CaseChange, CaseRow, StaffMember};
use crate::store::notifications::{self, Approaching, Candidate};
use crate::store::priority::Priority;
use crate::store::{Store, StoreError};
pub use config::{Escalation, EscalationConfig};

/// The audit's actor for everything the sweep does.
pub const ACTOR: &str = "system:escalation";
/// New cases older than this are not announced (e.g. the first sweep after enabling it).
const NEW_CASE_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepSummary {
    pub warnings: u64,
    pub breaches: u64,
    pub arrivals: u64,
    /// Notification rows written (one per staff user told).
    pub notified: u64,
    /// Mails queued (users with an address).
    pub mailed: u64,
}

/// Runs sweeps with one policy.
#[derive(Clone)]
pub struct Escalator {
    store: Store,
    policy: Arc<Escalation>,
    /// The SLA calendar comes from the case service's settings, which a reload replaces.
    cases: super::Cases,
    hostname: String,
}

impl Escalator {
    pub fn new(store: Store, policy: Escalation, cases: super::Cases, hostname: String) -> Escalator {
        Escalator { store, policy: Arc::new(policy), cases, hostname }
    }

    pub fn policy(&self) -> &Escalation {
        &self.policy
    }

    /// One sweep at `now` (unix ms): breaches first (they matter most), then warnings, then
    /// new cases; at most `batch` of each.
    pub async fn sweep(&self, now: i64) -> Result<SweepSummary, StoreError> {
        let limit = self.policy.batch as i64;
        let calendar = self.cases.settings().calendar.clone();
        let mut events = notifications::breaches(&self.store, now, limit).await?;
        events.extend(self.warnings(&calendar, now, limit).await?);
        let since = now - NEW_CASE_WINDOW_MS;
        events.extend(notifications::arrivals(&self.store, since, &self.policy.new_priorities, &self.policy.new_tiers, limit).await?);
        let mut summary = SweepSummary::default();
        for event in events {
            self.handle(&event, now, &mut summary).await?;
        }
        Ok(summary)
    }

    /// The cases past their warning point: of those due soon enough to be (the calendar's
    /// horizon), the ones whose share of SLA time is gone; at most `limit`. The read is bounded
    /// ([`APPROACHING_READ`]) but not by `limit`, so cases not yet at their point cannot crowd out
    /// one that is.
    async fn warnings(&self, calendar: &Calendar, now: i64, limit: i64) -> Result<Vec<Candidate>, StoreError> {
        let horizon = calendar.warning_horizon(instant(now), self.policy.warn_permille).timestamp_millis();
        let approaching = notifications::approaching(&self.store, now, horizon, APPROACHING_READ).await?;
        Ok(approaching
            .into_iter()
            .filter(|case| warning_reached(calendar, case, now, self.policy.warn_permille))
            .take(limit as usize)
            .map(|case| Candidate { case_id: case.case_id, kind: "warning", deadline: case.due_at })
            .collect())
    }

    /// One event in one transaction; nothing when the case changed since it was found (another
    /// node handled it, the case was answered, its due time moved).
    async fn handle(&self, event: &Candidate, now: i64, summary: &mut SweepSummary) -> Result<(), StoreError> {
        let Some(mut change) = self.store.change_case(event.case_id).await? else { return Ok(()) };
        let calendar = self.cases.settings().calendar.clone();
        if !still_applies(&calendar, &change.case, event, now, self.policy.warn_permille)
            || !change.mark_event(event.kind, event.deadline).await?
        {
            return Ok(()); // dropped: rolled back
        }
        let before = change.case.clone();
        let recipients = match event.kind {
            "warning" => match change.assignee_member().await? {
                Some(assignee) => vec![assignee],
                None => change.queue_staff("act").await?,
            },
            "breach" => change.queue_staff("supervise").await?,
            _ => change.queue_staff("act").await?,
        };
        if event.kind == "breach" {
            self.escalate(&mut change.case);
        }
        let priority = change.case.priority.clone();
        let notice = Notice {
            kind: event.kind,
            number: &before.opening,
            queue: &before.queue,
            priority: &priority,
            due: before
                .due_at
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.with_timezone(&calendar.timezone()).format("%Y-%m-%d %H:%M %Z").to_string()),
            link: self.policy.web_url.as_ref().map(|url| format!("{url}/cases/{}", before.id)),
        };
        let (mut mailed, mut audit) = (0u64, Vec::new());
        for member in &recipients {
            let outbox = self.mail(&mut change, &notice, member).await?;
            mailed += u64::from(outbox.is_some());
            let id = change.notify_user(member.id, event.kind, outbox).await?;
            audit.push(AuditEntry {
                at: change.now,
                actor: ACTOR.into(),
                action: "notification.create".into(),
                object: Some(format!("user:{}", member.name)),
                detail: Some(format!("notification={id} case={} kind={} mailed={}", before.id, event.kind, outbox.is_some())),
            });
        }
        let mut detail = format!("deadline={} notified={} mailed={mailed}", event.deadline, recipients.len());
        if change.case.priority != before.priority {
            detail.push_str(&format!(" priority {}→{}", before.priority, change.case.priority));
        }
        let action = match event.kind {
            "warning" => "sla-warning",
            "breach" => "sla-breach",
            _ => "announce",
        };
        change.commit_by("escalation", ACTOR, action, &detail, audit).await?;
        match event.kind {
            "warning" => summary.warnings += 1,
            "breach" => summary.breaches += 1,
            _ => summary.arrivals += 1,
        }
        summary.notified += recipients.len() as u64;
        summary.mailed += mailed;
        metrics::counter!("mailroom_escalations_total", "kind" => event.kind).increment(1);
        metrics::counter!("mailroom_notifications_total", "kind" => event.kind, "channel" => "web").increment(recipients.len() as u64);
        metrics::counter!("mailroom_notifications_total", "kind" => event.kind, "channel" => "mail").increment(mailed);
        Ok(())
    }

    /// A breach: flagged escalated, raised to the policy's priority (never lowered; the due time
    /// stays, so the breach is not judged again against a new one), tagged.
    fn escalate(&self, case: &mut CaseRow) {
        case.escalated = true;
        if let Some(priority) = self.policy.breach_priority
            && case.priority.parse::<Priority>().is_ok_and(|current| rank(priority) < rank(current))
        {
            case.priority = priority.as_str().to_string();
        }
        if let Some(tag) = &self.policy.breach_tag
            && !case.tags.contains(tag)
        {
            case.tags.push(tag.clone());
        }
    }

    /// Queues the mail to a staff member's own address; None when he has none.
    async fn mail(&self, change: &mut CaseChange<'_>, notice: &Notice<'_>, member: &StaffMember) -> Result<Option<i64>, StoreError> {
        let Some(address) = &member.email else { return Ok(None) };
        let data = compose::notice(notice, &self.policy.from, address, &self.hostname)
            .map_err(|e| StoreError::BatchFailed(format!("composing a notification: {e}")))?;
        Ok(Some(change.enqueue_notice(address, &data).await?))
    }
}

/// Lower is more urgent.
fn rank(priority: Priority) -> u8 {
    match priority {
        Priority::Urgent => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

/// How many approaching cases one sweep reads at most (a few integers each).
const APPROACHING_READ: i64 = 50_000;

fn instant(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The calendar's verdict for a case with this priority (an unknown one counts as normal).
fn warning_reached(calendar: &Calendar, case: &Approaching, now: i64, warn_permille: i64) -> bool {
    let priority = case.priority.parse().unwrap_or_default();
    calendar.warning_reached(priority, instant(case.opened_at), instant(case.due_at), instant(now), warn_permille)
}

/// The event still holds for the case as read under the write lock.
fn still_applies(calendar: &Calendar, case: &CaseRow, event: &Candidate, now: i64, warn_permille: i64) -> bool {
    if case.spam {
        return false;
    }
    match event.kind {
        "new" => case.status == "new" && !case.escalated,
        kind => {
            let running = CLOCK_RUNNING.contains(&case.status.as_str());
            let Some(due) = case.due_at.filter(|due| running && *due == event.deadline) else { return false };
            match kind {
                "breach" => due <= now,
                _ => {
                    let approaching =
                        Approaching { case_id: case.id, opened_at: case.opened_at, due_at: due, priority: case.priority.clone() };
                    warning_reached(calendar, &approaching, now, warn_permille)
                }
            }
        }
    }
}
