//! Case work for the staff views: a queue's cases listed straight from an index in sort order, a
//! case with its messages, staff entries and history, statistics, and the changes staff make.
//!
//! A listing never sorts a whole queue. The indexes (queue, status, priority, due_at),
//! (queue, status, opened_at) and (queue, status, updated_at) each hold one sorted run per
//! status (and priority); the listing reads the first page of every run it needs and merges them,
//! so its cost depends on the page size and the number of runs, not on the size of the queue.
//! Pages after the first are found by a keyset cursor (the sort key of the last case shown).
//!
//! A change ([`CaseChange`]) holds the write lock from reading the case until it commits, so the
//! caller's permission check, the update, the `case_history` row and the audit entry see one state
//! and are stored together or not at all. Staff entries (notes, replies, follow-ups) are sealed
//! like messages: a fresh data key per entry, wrapped by the master key, the row's uid bound in as
//! associated data. A case's tags are sealed the same way (a data key per case, made with its
//! first tag), and found by a keyed blind index per tag (`case_tags`), never by their text.

//!
//! * `listing`: the query planner, cursor and sort of a queue's listing.
//! * `read`: read models: a case, its messages, staff entries and history.
//! * `stats`: queue counts and statistics.
//! * `period`: the cases opened in a period and their sent replies (`cases::period`'s figures).
//! * `change`: the write path ([`CaseChange`]).
//! * `replies`: a reply's state, and taking its outbox row back within the undo window.
//! * `tags`: sealing, storing and opening a case's tags.
//! * `counters`: the queue counters kept with every change, which queue counts read.
//! * `escalate`: what an SLA escalation writes inside a change (event mark, notifications, mail).
//!
//! SQL uses `$N` placeholders and runs on both engines (`engine::on_db!` / `on_conn!`). Dynamic
//! queries (a listing's runs, `IN` lists) are built with sqlx's `QueryBuilder`, whose engine is
//! the one it is executed on.

mod change;
pub mod counters;
mod escalate;
mod listing;
mod period;
mod read;
mod replies;
mod stats;
mod tags;

pub use change::CaseChange;
pub use escalate::StaffMember;
pub use listing::{AssigneeFilter, CasePage, CaseQuery, CategoryFilter, Cursor, Sort, SortKey};
pub use period::{PeriodCase, PeriodReply};
pub use read::{CaseEntry, CaseMessage, HistoryEntry};
pub use replies::{AwaitingReview, ReplyEntry, TooLate};
pub use stats::{DAY_MS, DUE_SOON, DashboardFigures, DashboardRanges, MAX_DURATIONS, QueueCounts, QueueStats};
pub use tags::seal_tags;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::store::priority::Priority;

pub const STATUSES: [&str; 5] = ["new", "open", "waiting", "resolved", "closed"];
/// What a listing shows unless asked otherwise: the cases someone still has to work on.
pub const ACTIVE: [&str; 3] = ["new", "open", "waiting"];
/// Statuses in which the SLA clock runs: a case waiting on the customer is not overdue.
pub const CLOCK_RUNNING: [&str; 2] = ["new", "open"];
pub const PRIORITIES: [Priority; 3] = [Priority::Urgent, Priority::Normal, Priority::Low];

/// The canonical name of a known status.
pub fn status_name(status: &str) -> Option<&'static str> {
    STATUSES.iter().find(|s| **s == status).copied()
}

pub fn is_overdue(status: &str, due_at: Option<i64>, now: i64) -> bool {
    CLOCK_RUNNING.contains(&status) && due_at.is_some_and(|due| due < now)
}

fn priority_rank(priority: &str) -> u8 {
    match priority {
        "urgent" => 0,
        "normal" => 1,
        "low" => 2,
        _ => 3,
    }
}

/// A case's metadata (no customer data: that lives in the sealed messages and entries).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    pub id: i64,
    pub opening: String,
    pub queue: String,
    pub status: String,
    pub priority: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub due_at: Option<i64>,
    pub opened_at: i64,
    pub updated_at: i64,
    pub assignee_id: Option<i64>,
    pub assignee: Option<String>,
    pub escalated: bool,
    pub spam: bool,
    pub follow_up_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// The sender's customer tier when the case was opened (vip, long-term, prospect).
    pub tier: Option<String>,
}

/// The columns of [`CaseColumns`], by name (a macro, so queries stay `&'static str`).
macro_rules! case_columns {
    () => {
        "c.id, c.opening_number, c.queue, c.status, c.priority, c.category, c.tags_ct, c.due_at, c.opened_at, c.updated_at, \
         c.assignee, (SELECT u.name FROM users u WHERE u.id = c.assignee) AS assignee_name, c.escalated, c.spam, c.follow_up_at, \
         c.first_response_at, c.resolved_at, c.uid, c.key_id, c.wrapped_key, c.tier"
    };
}
const CASE_COLUMNS: &str = case_columns!();
const CASE_BY_ID: &str = concat!("SELECT ", case_columns!(), " FROM cases c WHERE c.id = $1");

/// A case's own data key, wrapped, and the row identity its ciphertexts are bound to. Made with
/// the case's first tag; cases that never had one have none.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseKey {
    pub uid: Vec<u8>,
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
}

impl CaseKey {
    /// The key from a case row's `uid, key_id, wrapped_key` (all NULL: the case has none yet).
    fn from_columns(uid: Option<Vec<u8>>, key_id: Option<i64>, wrapped_key: Option<Vec<u8>>) -> Option<CaseKey> {
        match (uid, key_id, wrapped_key) {
            (Some(uid), Some(key_id), Some(wrapped_key)) => Some(CaseKey { uid, key_id, wrapped_key }),
            _ => None,
        }
    }
}

/// A tag list ready to store: sealed under the case's key, with the blind index of each tag.
pub struct SealedTags {
    pub key: CaseKey,
    /// None for no tags.
    pub tags_ct: Option<Vec<u8>>,
    pub index: Vec<Vec<u8>>,
}

/// A case row as read, its tags still sealed.
struct RawCase {
    row: CaseRow,
    key: Option<CaseKey>,
    tags_ct: Option<Vec<u8>>,
}

/// A case row as [`case_columns!`] selects it, decoded by column name on either engine. Flags
/// are 0/1 integers in both.
#[derive(sqlx::FromRow)]
struct CaseColumns {
    id: i64,
    opening_number: String,
    queue: String,
    status: String,
    priority: String,
    category: Option<String>,
    tags_ct: Option<Vec<u8>>,
    due_at: Option<i64>,
    opened_at: i64,
    updated_at: i64,
    assignee: Option<i64>,
    assignee_name: Option<String>,
    escalated: i64,
    spam: i64,
    follow_up_at: Option<i64>,
    first_response_at: Option<i64>,
    resolved_at: Option<i64>,
    uid: Option<Vec<u8>>,
    key_id: Option<i64>,
    wrapped_key: Option<Vec<u8>>,
    tier: Option<String>,
}

impl From<CaseColumns> for RawCase {
    fn from(c: CaseColumns) -> RawCase {
        let key = CaseKey::from_columns(c.uid, c.key_id, c.wrapped_key);
        let row = CaseRow {
            id: c.id,
            opening: c.opening_number,
            queue: c.queue,
            status: c.status,
            priority: c.priority,
            category: c.category,
            tags: Vec::new(),
            due_at: c.due_at,
            opened_at: c.opened_at,
            updated_at: c.updated_at,
            assignee_id: c.assignee,
            assignee: c.assignee_name,
            escalated: c.escalated != 0,
            spam: c.spam != 0,
            follow_up_at: c.follow_up_at,
            first_response_at: c.first_response_at,
            resolved_at: c.resolved_at,
            tier: c.tier,
        };
        RawCase { row, key, tags_ct: c.tags_ct }
    }
}

impl Store {
    /// The case with its tags opened, and its key (for a change that re-seals them).
    fn open_case(&self, raw: RawCase) -> Result<(CaseRow, Option<CaseKey>), StoreError> {
        let mut row = raw.row;
        row.tags = self.open_tags(row.id, raw.key.as_ref(), raw.tags_ct.as_deref())?;
        Ok((row, raw.key))
    }
}

/// The sealed part of a staff entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EntryBody {
    pub text: String,
    /// Reply: the recipient, the subject and the Message-ID it went out with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Follow-up: when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// A reviewer's comment: the reply entry it returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<i64>,
}

// After `case_columns!`, which the tests use.
#[cfg(test)]
mod engines_agree;
#[cfg(test)]
mod tests;
