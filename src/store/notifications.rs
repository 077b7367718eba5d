//! The SLA sweep's reads (which cases cross a warning point, a due time, or arrived urgent) and
//! a staff user's notifications (list, unread count, mark read). The writes of an escalation
//! happen inside a case change (`cases::escalate`).

use sqlx::QueryBuilder;

use super::engine::on_db;
use super::{Store, StoreError};

/// One event the sweep should handle: case, kind (`warning`, `breach`, `new`) and the due time it
/// is judged against (0 for `new`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub case_id: i64,
    pub kind: &'static str,
    pub deadline: i64,
}

/// Cases whose SLA clock runs (new, open: a case waiting on the customer neither warns nor
/// breaches), not spam, and not yet marked for this event and deadline.
const RUNNING: &str = "c.status IN ('new', 'open') AND c.spam = 0 AND c.due_at IS NOT NULL";

/// A running case due after `now` and by `horizon`, not yet warned about for that due time: one
/// that may be past its warning point (the calendar decides: `cases::escalation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approaching {
    pub case_id: i64,
    pub opened_at: i64,
    pub due_at: i64,
    pub priority: String,
}

/// The running cases due in (`now`, `horizon`] not yet warned about for their due time, soonest
/// due first; at most `limit`.
pub async fn approaching(store: &Store, now: i64, horizon: i64, limit: i64) -> Result<Vec<Approaching>, StoreError> {
    let sql = format!(
        "SELECT c.id, c.opened_at, c.due_at, c.priority FROM cases c WHERE {RUNNING} AND c.due_at > $1 AND c.due_at <= $2
           AND NOT EXISTS (SELECT 1 FROM escalation_events e WHERE e.case_id = c.id AND e.kind = 'warning' AND e.deadline = c.due_at)
         ORDER BY c.due_at, c.id LIMIT $3"
    );
    let rows: Vec<(i64, i64, i64, String)> = on_db!(store.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(now).bind(horizon).bind(limit).fetch_all(pool).await?);
    Ok(rows.into_iter().map(|(case_id, opened_at, due_at, priority)| Approaching { case_id, opened_at, due_at, priority }).collect())
}

/// Cases past their due time, not yet marked as breached for it; at most `limit`.
pub async fn breaches(store: &Store, now: i64, limit: i64) -> Result<Vec<Candidate>, StoreError> {
    let sql = format!(
        "SELECT c.id, c.due_at FROM cases c WHERE {RUNNING} AND c.due_at <= $1
           AND NOT EXISTS (SELECT 1 FROM escalation_events e WHERE e.case_id = c.id AND e.kind = 'breach' AND e.deadline = c.due_at)
         ORDER BY c.due_at, c.id LIMIT $2"
    );
    let rows: Vec<(i64, i64)> =
        on_db!(store.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(now).bind(limit).fetch_all(pool).await?);
    Ok(rows.into_iter().map(|(case_id, deadline)| Candidate { case_id, kind: "breach", deadline }).collect())
}

/// New cases (status new, not escalated: a breach's raised priority is no arrival; opened since
/// `since`) of one of `priorities` or from a customer of one
/// of `tiers`, whose queue was not told yet; at most `limit`.
pub async fn arrivals(
    store: &Store,
    since: i64,
    priorities: &[String],
    tiers: &[String],
    limit: i64,
) -> Result<Vec<Candidate>, StoreError> {
    if priorities.is_empty() && tiers.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = on_db!(store.db(), pool => {
        let mut b = QueryBuilder::new("SELECT c.id FROM cases c WHERE c.status = 'new' AND c.spam = 0 AND c.escalated = 0 AND c.opened_at >= ");
        b.push_bind(since);
        b.push(" AND NOT EXISTS (SELECT 1 FROM escalation_events e WHERE e.case_id = c.id AND e.kind = 'new') AND (1 = 0");
        for p in priorities {
            b.push(" OR c.priority = ").push_bind(p.clone());
        }
        for t in tiers {
            b.push(" OR c.tier = ").push_bind(t.clone());
        }
        b.push(") ORDER BY c.id LIMIT ").push_bind(limit);
        b.build_query_scalar().fetch_all(pool).await?
    });
    Ok(ids.into_iter().map(|case_id| Candidate { case_id, kind: "new", deadline: 0 }).collect())
}

/// One notification of a staff user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub case_id: i64,
    /// The case's opening registration number.
    pub opening: String,
    pub queue: String,
    pub kind: String,
    pub at: i64,
    /// Whether a mail was queued for it (the user had an address).
    pub mailed: bool,
    pub read_at: Option<i64>,
}

type NotificationRow = (i64, i64, String, String, String, i64, Option<i64>, Option<i64>);

/// A user's notifications, newest first; at most `limit`.
pub async fn list(store: &Store, user_id: i64, limit: i64) -> Result<Vec<Notification>, StoreError> {
    let rows: Vec<NotificationRow> = on_db!(store.db(), pool => sqlx::query_as(
        "SELECT n.id, n.case_id, c.opening_number, c.queue, n.kind, n.at, n.outbox_id, n.read_at
         FROM notifications n JOIN cases c ON c.id = n.case_id WHERE n.user_id = $1 ORDER BY n.id DESC LIMIT $2",
    )
    .bind(user_id)
    .bind(limit)
    .fetch_all(pool)
    .await?);
    Ok(rows
        .into_iter()
        .map(|(id, case_id, opening, queue, kind, at, outbox, read_at)| Notification {
            id,
            case_id,
            opening,
            queue,
            kind,
            at,
            mailed: outbox.is_some(),
            read_at,
        })
        .collect())
}

/// How many of a user's notifications are unread, per queue of their case (the caller keeps the
/// queues the user may still read, as the list does).
pub async fn unread_by_queue(store: &Store, user_id: i64) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(on_db!(store.db(), pool => sqlx::query_as(
        "SELECT c.queue, COUNT(*) FROM notifications n JOIN cases c ON c.id = n.case_id
         WHERE n.user_id = $1 AND n.read_at IS NULL GROUP BY c.queue",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?))
}

/// Marks a user's notifications read: `ids`, or all of them when None. Only his own rows; returns
/// how many changed. Touches nothing but those rows, so it takes no sequencer lock.
pub async fn mark_read(store: &Store, user_id: i64, ids: Option<&[i64]>, now: i64) -> Result<u64, StoreError> {
    let changed = on_db!(store.db(), pool => {
        let mut b = QueryBuilder::new("UPDATE notifications SET read_at = ");
        b.push_bind(now).push(" WHERE read_at IS NULL AND user_id = ").push_bind(user_id);
        if let Some(ids) = ids {
            if ids.is_empty() {
                return Ok(0);
            }
            b.push(" AND id IN (");
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(*id);
            }
            b.push(")");
        }
        b.build().execute(pool).await?.rows_affected()
    });
    Ok(changed)
}
