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

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use super::audit::{self, AuditEntry};
use super::crypto::{DataKey, KeyRing, aad};
use super::priority::Priority;
use super::record::Record;
use super::{Store, StoreError, now_millis};

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
}

/// The columns `case_from_row` reads (a macro, so queries stay `&'static str`).
macro_rules! case_columns {
    () => {
        "c.id, c.opening_number, c.queue, c.status, c.priority, c.category, c.tags_ct, c.due_at, c.opened_at, c.updated_at, \
         c.assignee, (SELECT u.name FROM users u WHERE u.id = c.assignee), c.escalated, c.spam, c.follow_up_at, c.first_response_at, c.resolved_at, \
         c.uid, c.key_id, c.wrapped_key"
    };
}
const CASE_COLUMNS: &str = case_columns!();
const CASE_BY_ID: &str = concat!("SELECT ", case_columns!(), " FROM cases c WHERE c.id = ?");

/// A case's own data key, wrapped, and the row identity its ciphertexts are bound to. Made with
/// the case's first tag; cases that never had one have none.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseKey {
    pub uid: Vec<u8>,
    pub key_id: i64,
    pub wrapped_key: Vec<u8>,
}

/// A tag list ready to store: sealed under the case's key, with the blind index of each tag.
pub struct SealedTags {
    pub key: CaseKey,
    /// None for no tags.
    pub tags_ct: Option<Vec<u8>>,
    pub index: Vec<Vec<u8>>,
}

/// Seals `tags` under the case's key, making one (a fresh data key and uid) for its first tag.
pub fn seal_tags(keys: &KeyRing, key: Option<&CaseKey>, tags: &[String]) -> Result<SealedTags, StoreError> {
    let (key, data_key) = match key {
        Some(k) => (k.clone(), keys.unwrap(k.key_id as u32, &k.wrapped_key, &aad("dek", &k.uid))?),
        None => {
            let uid = crate::outbox::new_uid()?.to_vec();
            let data_key = DataKey::generate()?;
            let (key_id, wrapped_key) = keys.wrap(&data_key, &aad("dek", &uid))?;
            (CaseKey { uid, key_id: key_id as i64, wrapped_key }, data_key)
        }
    };
    let tags_ct = if tags.is_empty() {
        None
    } else {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(tags).expect("strings always serialise"));
        Some(data_key.seal(&aad("case-tags", &key.uid), &plain)?)
    };
    let mut index: Vec<Vec<u8>> = tags.iter().map(|t| keys.tag_index(t)).collect();
    index.sort();
    index.dedup();
    Ok(SealedTags { key, tags_ct, index })
}

/// A case row as read, its tags still sealed.
struct RawCase {
    row: CaseRow,
    key: Option<CaseKey>,
    tags_ct: Option<Vec<u8>>,
}

fn case_from_row(r: &SqliteRow) -> RawCase {
    let uid: Option<Vec<u8>> = r.get(17);
    let key_id: Option<i64> = r.get(18);
    let wrapped_key: Option<Vec<u8>> = r.get(19);
    let key = match (uid, key_id, wrapped_key) {
        (Some(uid), Some(key_id), Some(wrapped_key)) => Some(CaseKey { uid, key_id, wrapped_key }),
        _ => None,
    };
    let row = CaseRow {
        id: r.get(0),
        opening: r.get(1),
        queue: r.get(2),
        status: r.get(3),
        priority: r.get(4),
        category: r.get(5),
        tags: Vec::new(),
        due_at: r.get(7),
        opened_at: r.get(8),
        updated_at: r.get(9),
        assignee_id: r.get(10),
        assignee: r.get(11),
        escalated: r.get::<i64, _>(12) != 0,
        spam: r.get::<i64, _>(13) != 0,
        follow_up_at: r.get(14),
        first_response_at: r.get(15),
        resolved_at: r.get(16),
    };
    RawCase { row, key, tags_ct: r.get(6) }
}

impl Store {
    /// The tags of a case from its sealed column (empty when it has none).
    fn open_tags(&self, case_id: i64, key: Option<&CaseKey>, tags_ct: Option<&[u8]>) -> Result<Vec<String>, StoreError> {
        let (Some(key), Some(ct)) = (key, tags_ct) else {
            return match tags_ct {
                Some(_) => Err(StoreError::BatchFailed(format!("case {case_id} has sealed tags but no key"))),
                None => Ok(Vec::new()),
            };
        };
        let plain = zeroize::Zeroizing::new(self.row_key(&key.uid, key.key_id, &key.wrapped_key)?.open(&aad("case-tags", &key.uid), ct)?);
        serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("stored tags of case {case_id} unreadable: {e}")))
    }

    /// The case with its tags opened, and its key (for a change that re-seals them).
    fn open_case(&self, raw: RawCase) -> Result<(CaseRow, Option<CaseKey>), StoreError> {
        let mut row = raw.row;
        row.tags = self.open_tags(row.id, raw.key.as_ref(), raw.tags_ct.as_deref())?;
        Ok((row, raw.key))
    }
}

// ---------------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Due,
    Opened,
    Updated,
    /// Urgent first, then by due time.
    Priority,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub key: SortKey,
    pub descending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort { key: SortKey::Due, descending: false }
    }
}

impl Sort {
    pub const NAMES: [&str; 8] = ["due", "-due", "opened", "-opened", "updated", "-updated", "priority", "-priority"];

    pub fn name(self) -> String {
        let key = match self.key {
            SortKey::Due => "due",
            SortKey::Opened => "opened",
            SortKey::Updated => "updated",
            SortKey::Priority => "priority",
        };
        if self.descending { format!("-{key}") } else { key.to_string() }
    }

    fn column(self) -> &'static str {
        match self.key {
            SortKey::Due | SortKey::Priority => "due_at",
            SortKey::Opened => "opened_at",
            SortKey::Updated => "updated_at",
        }
    }

    /// Due and priority order come from the (queue, status, priority, due_at) index, which has a
    /// sorted run per status and priority; the others have one run per status.
    fn runs_per_priority(self) -> bool {
        matches!(self.key, SortKey::Due | SortKey::Priority)
    }

    fn position(self, c: &CaseRow) -> (u8, Option<i64>, i64) {
        let rank = if self.key == SortKey::Priority { priority_rank(&c.priority) } else { 0 };
        let value = match self.key {
            SortKey::Due | SortKey::Priority => c.due_at,
            SortKey::Opened => Some(c.opened_at),
            SortKey::Updated => Some(c.updated_at),
        };
        (rank, value, c.id)
    }

    /// Total order of the listing; `None` (no due time) sorts first, as SQLite sorts NULL.
    fn compare(self, a: &CaseRow, b: &CaseRow) -> Ordering {
        let order = self.position(a).cmp(&self.position(b));
        if self.descending { order.reverse() } else { order }
    }

    pub fn cursor_after(self, c: &CaseRow) -> Cursor {
        let (rank, value, id) = self.position(c);
        Cursor { sort: self.name(), rank, value, id }
    }
}

impl FromStr for Sort {
    type Err = String;
    fn from_str(s: &str) -> Result<Sort, String> {
        let (descending, key) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let key = match key {
            "due" => SortKey::Due,
            "opened" => SortKey::Opened,
            "updated" => SortKey::Updated,
            "priority" => SortKey::Priority,
            _ => return Err(format!("unknown sort {s:?} (one of {})", Sort::NAMES.join(", "))),
        };
        Ok(Sort { key, descending })
    }
}

/// Where the previous page ended: the sort key of its last case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub sort: String,
    pub rank: u8,
    pub value: Option<i64>,
    pub id: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    Anyone,
    Nobody,
    User(i64),
    /// A name that is no user: matches no case, by the same query as a user's filter, so the
    /// answer (and its cost) is that of a user with no case here.
    NoOne,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CategoryFilter {
    Any,
    Uncategorised,
    Code(String),
}

#[derive(Clone, Debug)]
pub struct CaseQuery {
    pub queue: String,
    /// Non-empty.
    pub statuses: Vec<&'static str>,
    /// Non-empty (all three when not filtered).
    pub priorities: Vec<Priority>,
    pub category: CategoryFilter,
    /// The blind index of the tag to filter by ([`KeyRing::tag_index`]).
    pub tag_idx: Option<Vec<u8>>,
    pub assignee: AssigneeFilter,
    pub overdue: Option<bool>,
    pub sort: Sort,
    pub limit: usize,
    /// Used only without `after`.
    pub offset: usize,
    pub after: Option<Cursor>,
}

pub struct CasePage {
    pub cases: Vec<CaseRow>,
    /// Set when more cases follow.
    pub next: Option<Cursor>,
}

/// One sorted run of the listing: the SQL that reads it in order, `None` when the cursor is past it.
/// `prefix` goes before the SELECT (tests ask for the query plan).
fn run_query(
    q: &CaseQuery,
    status: &'static str,
    priority: Option<Priority>,
    now: i64,
    want: i64,
    prefix: &str,
) -> Option<QueryBuilder<Sqlite>> {
    let sort = q.sort;
    let column = sort.column();
    let mut b = QueryBuilder::<Sqlite>::new(format!("{prefix}SELECT {CASE_COLUMNS} FROM cases c WHERE c.queue = "));
    b.push_bind(q.queue.as_str()).push(" AND c.status = ").push_bind(status);
    match priority {
        Some(p) => {
            b.push(" AND c.priority = ").push_bind(p.as_str());
        }
        None if q.priorities.len() < PRIORITIES.len() => {
            b.push(" AND c.priority IN (");
            let mut list = b.separated(", ");
            for p in &q.priorities {
                list.push_bind(p.as_str());
            }
            b.push(")");
        }
        None => {}
    }
    match &q.category {
        CategoryFilter::Any => {}
        CategoryFilter::Uncategorised => {
            b.push(" AND c.category IS NULL");
        }
        CategoryFilter::Code(code) => {
            b.push(" AND c.category = ").push_bind(code.as_str());
        }
    }
    if let Some(tag_idx) = &q.tag_idx {
        b.push(" AND EXISTS (SELECT 1 FROM case_tags t WHERE t.case_id = c.id AND t.tag_idx = ").push_bind(tag_idx.as_slice()).push(")");
    }
    match q.assignee {
        AssigneeFilter::Anyone => {}
        AssigneeFilter::Nobody => {
            b.push(" AND c.assignee IS NULL");
        }
        AssigneeFilter::User(id) => {
            b.push(" AND c.assignee = ").push_bind(id);
        }
        AssigneeFilter::NoOne => {
            // Row ids are positive: no case is assigned to -1.
            b.push(" AND c.assignee = ").push_bind(-1i64);
        }
    }
    match q.overdue {
        Some(true) => {
            b.push(" AND c.due_at < ").push_bind(now);
        }
        Some(false) if CLOCK_RUNNING.contains(&status) => {
            b.push(" AND (c.due_at IS NULL OR c.due_at >= ").push_bind(now).push(")");
        }
        _ => {}
    }
    if let Some(cursor) = &q.after {
        let rank = match (sort.key, priority) {
            (SortKey::Priority, Some(p)) => priority_rank(p.as_str()),
            _ => 0,
        };
        let before = if sort.descending { rank > cursor.rank } else { rank < cursor.rank };
        let after = if sort.descending { rank < cursor.rank } else { rank > cursor.rank };
        if before {
            return None;
        }
        if !after {
            // Same run as the cursor: continue behind (value, id). `>=`/`<=` first, so SQLite
            // seeks into the index instead of filtering from the start of the run.
            let (cmp, cmp_eq) = if sort.descending { ("<", "<=") } else { (">", ">=") };
            match (cursor.value, sort.descending) {
                (Some(v), false) => {
                    b.push(format!(" AND c.{column} {cmp_eq} ")).push_bind(v);
                    b.push(format!(" AND (c.{column} {cmp} ")).push_bind(v).push(format!(" OR c.id {cmp} ")).push_bind(cursor.id).push(")");
                }
                // Descending, NULLs come last: they are still ahead.
                (Some(v), true) => {
                    b.push(format!(" AND (c.{column} IS NULL OR (c.{column} {cmp_eq} ")).push_bind(v);
                    b.push(format!(" AND (c.{column} {cmp} "))
                        .push_bind(v)
                        .push(format!(" OR c.id {cmp} "))
                        .push_bind(cursor.id)
                        .push(")))");
                }
                (None, false) => {
                    b.push(format!(" AND (c.{column} IS NOT NULL OR c.id > ")).push_bind(cursor.id).push(")");
                }
                (None, true) => {
                    b.push(format!(" AND c.{column} IS NULL AND c.id < ")).push_bind(cursor.id);
                }
            }
        }
    }
    let direction = if sort.descending { "DESC" } else { "ASC" };
    b.push(format!(" ORDER BY c.{column} {direction}, c.id {direction} LIMIT ")).push_bind(want);
    Some(b)
}

/// The runs a query reads: (status, priority) pairs.
fn runs(q: &CaseQuery) -> Vec<(&'static str, Option<Priority>)> {
    let statuses = q.statuses.iter().copied().filter(|s| q.overdue != Some(true) || CLOCK_RUNNING.contains(s));
    if q.sort.runs_per_priority() {
        statuses.flat_map(|s| q.priorities.iter().map(move |p| (s, Some(*p)))).collect()
    } else {
        statuses.map(|s| (s, None)).collect()
    }
}

/// Counts shown next to a queue's name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCounts {
    /// Cases in each active status.
    pub by_status: BTreeMap<String, i64>,
    pub active: i64,
    pub overdue: i64,
}

/// One message of a case, as listed in the case view (metadata in clear, record decrypted by the caller).
#[derive(Debug, Clone)]
pub struct CaseMessage {
    pub id: i64,
    pub number: String,
    pub received_at: i64,
    pub size: i64,
    pub tags: Vec<String>,
    pub auth: Option<String>,
    pub automatic: bool,
    pub parsed: bool,
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
}

#[derive(Debug, Clone)]
pub struct CaseEntry {
    pub id: i64,
    pub at: i64,
    pub author: String,
    pub kind: String,
    pub outbox_id: Option<i64>,
    /// The outgoing mail's state (pending, sending, sent, failed) for a reply.
    pub outbox_status: Option<String>,
    pub body: EntryBody,
}

#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: Option<String>,
}

/// Statistics of one queue (no customer data).
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub total: i64,
    pub by_status: BTreeMap<String, i64>,
    pub by_priority: BTreeMap<String, i64>,
    /// Category code, or "none".
    pub by_category: BTreeMap<String, i64>,
    pub active: i64,
    pub overdue: i64,
    /// Answered after their due time, or still unanswered and past it.
    pub breached: i64,
    pub responded: i64,
    pub median_first_response_seconds: Option<f64>,
    pub resolved: i64,
    pub median_resolution_seconds: Option<f64>,
}

impl Store {
    /// A page of a queue's cases in the query's order.
    pub async fn list_cases(&self, q: &CaseQuery, now: i64) -> Result<CasePage, StoreError> {
        let window = match q.after {
            Some(_) => q.limit,
            None => q.offset + q.limit,
        };
        // One more than the page, to know whether another page follows.
        let want = (window + 1) as i64;
        let mut found: Vec<RawCase> = Vec::new();
        for (status, priority) in runs(q) {
            let Some(mut query) = run_query(q, status, priority, now, want, "") else { continue };
            let rows = query.build().fetch_all(&self.pool).await?;
            found.extend(rows.iter().map(case_from_row));
        }
        found.sort_by(|a, b| q.sort.compare(&a.row, &b.row));
        let skip = if q.after.is_some() { 0 } else { q.offset };
        let more = found.len() > skip + q.limit;
        // Only the page's tags are opened.
        let cases: Vec<CaseRow> =
            found.into_iter().skip(skip).take(q.limit).map(|raw| self.open_case(raw).map(|(row, _)| row)).collect::<Result<_, _>>()?;
        let next = if more { cases.last().map(|c| q.sort.cursor_after(c)) } else { None };
        Ok(CasePage { cases, next })
    }

    pub async fn queue_counts(&self, queue: &str, now: i64) -> Result<QueueCounts, StoreError> {
        let mut counts = QueueCounts::default();
        for status in ACTIVE {
            counts.by_status.insert(status.to_string(), 0);
        }
        let rows =
            sqlx::query("SELECT status, COUNT(*) FROM cases WHERE queue = ? AND status IN ('new', 'open', 'waiting') GROUP BY status")
                .bind(queue)
                .fetch_all(&self.pool)
                .await?;
        for r in rows {
            let n: i64 = r.get(1);
            counts.active += n;
            counts.by_status.insert(r.get(0), n);
        }
        // Naming every priority lets SQLite count a due_at range in each (status, priority) run.
        counts.overdue = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE queue = ? AND status IN ('new', 'open') AND priority IN ('urgent', 'normal', 'low') AND due_at < ?")
            .bind(queue)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(counts)
    }

    pub async fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        let row = sqlx::query(CASE_BY_ID).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(|r| self.open_case(case_from_row(r)).map(|(case, _)| case)).transpose()
    }

    /// The tags of several cases (for the operators' `message list`).
    pub async fn case_tags_many(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new("SELECT id, uid, key_id, wrapped_key, tags_ct FROM cases WHERE id IN (");
        let mut list = b.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        b.push(")");
        let mut out = HashMap::new();
        for r in b.build().fetch_all(&self.pool).await? {
            let id: i64 = r.get(0);
            let key = match (r.get::<Option<Vec<u8>>, _>(1), r.get::<Option<i64>, _>(2), r.get::<Option<Vec<u8>>, _>(3)) {
                (Some(uid), Some(key_id), Some(wrapped_key)) => Some(CaseKey { uid, key_id, wrapped_key }),
                _ => None,
            };
            out.insert(id, self.open_tags(id, key.as_ref(), r.get::<Option<&[u8]>, _>(4))?);
        }
        Ok(out)
    }

    /// Seals the clear tags that migration 0006 found (written before tags were sealed), in
    /// batches, and wipes their clear text: `secure_delete` zeroes the old row contents in the
    /// pages, and the WAL that held them is truncated. Cheap once done (the list is empty).
    pub async fn seal_clear_tags(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases_clear_tags").fetch_one(&mut *conn).await?;
        if pending == 0 {
            return Ok(0);
        }
        sqlx::query("PRAGMA secure_delete = ON").execute(&mut *conn).await?;
        let mut sealed = 0u64;
        loop {
            let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
            let rows = sqlx::query(
                "SELECT c.id, c.tags, c.tags_ct, c.uid, c.key_id, c.wrapped_key FROM cases_clear_tags p JOIN cases c ON c.id = p.case_id ORDER BY p.case_id LIMIT 500",
            )
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: i64 = r.get(0);
                let clear: Vec<String> = serde_json::from_str(r.get::<&str, _>(1)).unwrap_or_default();
                let key = match (r.get::<Option<Vec<u8>>, _>(3), r.get::<Option<i64>, _>(4), r.get::<Option<Vec<u8>>, _>(5)) {
                    (Some(uid), Some(key_id), Some(wrapped_key)) => Some(CaseKey { uid, key_id, wrapped_key }),
                    _ => None,
                };
                // Tags sealed since the migration come first, then the old clear ones.
                let mut tags = self.open_tags(id, key.as_ref(), r.get::<Option<&[u8]>, _>(2))?;
                for tag in clear {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                write_tags(&mut tx, &self.keys, id, key.as_ref(), &tags).await?;
                sqlx::query("UPDATE cases SET tags = '[]' WHERE id = ?").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM cases_clear_tags WHERE case_id = ?").bind(id).execute(&mut *tx).await?;
                sealed += 1;
            }
            tx.commit().await?;
        }
        sqlx::query("PRAGMA secure_delete = OFF").execute(&mut *conn).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut *conn).await?;
        Ok(sealed)
    }

    /// For each case: (number of messages, id of its first message).
    pub async fn case_message_counts(&self, case_ids: &[i64]) -> Result<HashMap<i64, (i64, i64)>, StoreError> {
        if case_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new("SELECT case_id, COUNT(*), MIN(message_id) FROM message_cases WHERE case_id IN (");
        let mut list = b.separated(", ");
        for id in case_ids {
            list.push_bind(*id);
        }
        b.push(") GROUP BY case_id");
        let rows = b.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
    }

    /// The extracted records of several messages in one query, decrypted by the same
    /// [`Store::open_record`] as [`Store::open_fields`] (a listing page needs up to 200, and one round trip per
    /// record would cost more than the decryption). A record that fails to open is an error for
    /// that id only. Not audited: the caller audits the listing.
    pub async fn open_fields_many(&self, ids: &[i64]) -> Result<HashMap<i64, Result<Record, StoreError>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut b = QueryBuilder::<Sqlite>::new("SELECT id, uid, key_id, wrapped_key, fields_ct FROM messages WHERE id IN (");
        let mut list = b.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        b.push(")");
        let rows = b.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get(0), self.open_record(r.get(1), r.get(2), r.get(3), r.get(4)))).collect())
    }

    pub async fn case_messages(&self, case_id: i64) -> Result<Vec<CaseMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.id, m.number, m.received_at, m.size, m.tags, m.auth, m.automatic, m.parsed
             FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = ? ORDER BY m.id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| CaseMessage {
                id: r.get(0),
                number: r.get(1),
                received_at: r.get(2),
                size: r.get(3),
                tags: serde_json::from_str(r.get::<&str, _>(4)).unwrap_or_default(),
                auth: r.get(5),
                automatic: r.get::<i64, _>(6) != 0,
                parsed: r.get::<i64, _>(7) != 0,
            })
            .collect())
    }

    /// Staff entries of a case, decrypted. Not audited: the caller audits the read of the case.
    pub async fn case_entries(&self, case_id: i64) -> Result<Vec<CaseEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.at, e.author, e.kind, e.outbox_id, o.status, e.uid, e.key_id, e.wrapped_key, e.body_ct
             FROM case_entries e LEFT JOIN outbox o ON o.id = e.outbox_id WHERE e.case_id = ? ORDER BY e.id",
        )
        .bind(case_id)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = Vec::with_capacity(rows.len());
        for r in rows {
            let uid: &[u8] = r.get(6);
            let data_key = self.row_key(uid, r.get(7), r.get(8))?;
            let plain = zeroize::Zeroizing::new(data_key.open(&aad("entry", uid), r.get::<&[u8], _>(9))?);
            let body = serde_json::from_slice(&plain).map_err(|e| StoreError::BatchFailed(format!("stored case entry unreadable: {e}")))?;
            entries.push(CaseEntry {
                id: r.get(0),
                at: r.get(1),
                author: r.get(2),
                kind: r.get(3),
                outbox_id: r.get(4),
                outbox_status: r.get(5),
                body,
            });
        }
        Ok(entries)
    }

    pub async fn case_history(&self, case_id: i64) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, at, actor, action, detail FROM case_history WHERE case_id = ? ORDER BY id")
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| HistoryEntry { id: r.get(0), at: r.get(1), actor: r.get(2), action: r.get(3), detail: r.get(4) }).collect())
    }

    /// The row id of a registration number (the check digit may be left out).
    pub async fn message_id_by_number(&self, number: &str) -> Result<Option<i64>, StoreError> {
        let format = &self.settings.reg_format;
        let (year, seq) = format.parse_number(number.trim(), true).map_err(|e| StoreError::BadNumber(number.to_string(), e.to_string()))?;
        Ok(sqlx::query_scalar("SELECT id FROM messages WHERE reg_year = ? AND reg_seq = ?")
            .bind(format.counter_year(year))
            .bind(seq as i64)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The queues in which message `id` has a case.
    pub async fn message_queues(&self, id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT DISTINCT c.queue FROM message_cases mc JOIN cases c ON c.id = mc.case_id WHERE mc.message_id = ?")
            .bind(id)
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn user_id(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE name = ?").bind(name).fetch_optional(&self.pool).await?)
    }

    pub async fn queue_stats(&self, queue: &str, now: i64) -> Result<QueueStats, StoreError> {
        let mut stats = QueueStats { queue: queue.to_string(), ..Default::default() };
        let rows = sqlx::query(
            "SELECT status, priority, category, COUNT(*),
                    SUM(CASE WHEN status IN ('new', 'open') AND due_at < ?1 THEN 1 ELSE 0 END),
                    SUM(CASE WHEN (first_response_at IS NOT NULL AND first_response_at > due_at)
                               OR (first_response_at IS NULL AND status IN ('new', 'open') AND due_at < ?1) THEN 1 ELSE 0 END)
             FROM cases WHERE queue = ?2 GROUP BY status, priority, category",
        )
        .bind(now)
        .bind(queue)
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let (status, priority, category, n): (String, String, Option<String>, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
            stats.total += n;
            if ACTIVE.contains(&status.as_str()) {
                stats.active += n;
            }
            stats.overdue += r.get::<i64, _>(4);
            stats.breached += r.get::<i64, _>(5);
            *stats.by_status.entry(status).or_default() += n;
            *stats.by_priority.entry(priority).or_default() += n;
            *stats.by_category.entry(category.unwrap_or_else(|| "none".into())).or_default() += n;
        }
        (stats.responded, stats.median_first_response_seconds) = self.median_ms(queue, "first_response_at").await?;
        (stats.resolved, stats.median_resolution_seconds) = self.median_ms(queue, "resolved_at").await?;
        Ok(stats)
    }

    /// How many cases of the queue have `column` (one of two fixed names) set, and the median of `column - opened_at` in seconds.
    async fn median_ms(&self, queue: &str, column: &'static str) -> Result<(i64, Option<f64>), StoreError> {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM cases WHERE queue = ? AND {column} IS NOT NULL")))
                .bind(queue)
                .fetch_one(&self.pool)
                .await?;
        if n == 0 {
            return Ok((0, None));
        }
        // The middle value, or the two middle values of an even count.
        let middle: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column} - opened_at AS d FROM cases WHERE queue = ? AND {column} IS NOT NULL ORDER BY d LIMIT ? OFFSET ?"
        )))
        .bind(queue)
        .bind(if n % 2 == 0 { 2 } else { 1 })
        .bind((n - 1) / 2)
        .fetch_all(&self.pool)
        .await?;
        let median = middle.iter().sum::<i64>() as f64 / middle.len().max(1) as f64 / 1000.0;
        Ok((n, Some(median)))
    }

    /// Starts a change of case `id`: takes the write lock and reads the case (None: no such case).
    pub async fn change_case(&self, id: i64) -> Result<Option<CaseChange<'_>>, StoreError> {
        let mut tx = super::sqlite::begin_write(&self.pool).await?;
        let Some(row) = sqlx::query(CASE_BY_ID).bind(id).fetch_optional(&mut *tx).await? else { return Ok(None) };
        let (case, key) = self.open_case(case_from_row(&row))?;
        Ok(Some(CaseChange { store: self, tx, tags_before: case.tags.clone(), key, case, now: now_millis() }))
    }
}

/// Stores a case's tags sealed (making its key with the first tag) and their blind indexes.
async fn write_tags(
    tx: &mut Transaction<'_, Sqlite>,
    keys: &KeyRing,
    case_id: i64,
    key: Option<&CaseKey>,
    tags: &[String],
) -> Result<CaseKey, StoreError> {
    let sealed = seal_tags(keys, key, tags)?;
    sqlx::query("UPDATE cases SET uid = ?, key_id = ?, wrapped_key = ?, tags_ct = ? WHERE id = ?")
        .bind(&sealed.key.uid)
        .bind(sealed.key.key_id)
        .bind(&sealed.key.wrapped_key)
        .bind(&sealed.tags_ct)
        .bind(case_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM case_tags WHERE case_id = ?").bind(case_id).execute(&mut **tx).await?;
    for idx in &sealed.index {
        sqlx::query("INSERT INTO case_tags (case_id, tag_idx) VALUES (?, ?)").bind(case_id).bind(idx).execute(&mut **tx).await?;
    }
    Ok(sealed.key)
}

/// A change to one case in progress. Edit `case`, call the methods for what is more than a field,
/// then [`CaseChange::commit`]; dropping it rolls everything back.
pub struct CaseChange<'s> {
    store: &'s Store,
    tx: Transaction<'static, Sqlite>,
    /// The tags as read, so a commit re-seals them only when they changed.
    tags_before: Vec<String>,
    key: Option<CaseKey>,
    pub case: CaseRow,
    /// The time of the change (unix ms).
    pub now: i64,
}

impl CaseChange<'_> {
    /// Moves the case to `queue`. Its messages get fresh IMAP UIDs from the global message
    /// sequence, so UIDs only ever grow in the target queue's mailbox (UIDVALIDITY stays).
    pub async fn transfer(&mut self, queue: &str) -> Result<(), StoreError> {
        let messages: Vec<i64> = sqlx::query_scalar("SELECT message_id FROM message_cases WHERE case_id = ? ORDER BY uid, message_id")
            .bind(self.case.id)
            .fetch_all(&mut *self.tx)
            .await?;
        if !messages.is_empty() {
            let n = messages.len() as i64;
            let last: i64 = sqlx::query_scalar("UPDATE counters SET value = value + ? WHERE name = 'message' RETURNING value")
                .bind(n)
                .fetch_one(&mut *self.tx)
                .await?;
            for (i, message_id) in messages.iter().enumerate() {
                sqlx::query("UPDATE message_cases SET uid = ? WHERE case_id = ? AND message_id = ?")
                    .bind(last - n + 1 + i as i64)
                    .bind(self.case.id)
                    .bind(message_id)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.case.queue = queue.to_string();
        Ok(())
    }

    /// The case's messages, newest first: (id, automatic).
    pub async fn messages_newest_first(&mut self) -> Result<Vec<(i64, bool)>, StoreError> {
        let rows = sqlx::query("SELECT m.id, m.automatic FROM message_cases mc JOIN messages m ON m.id = mc.message_id WHERE mc.case_id = ? ORDER BY m.id DESC")
            .bind(self.case.id)
            .fetch_all(&mut *self.tx)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get::<i64, _>(1) != 0)).collect())
    }

    /// Seals and stores a staff entry; returns its id.
    pub async fn add_entry(&mut self, kind: &str, author: &str, body: &EntryBody, outbox_id: Option<i64>) -> Result<i64, StoreError> {
        let uid = crate::outbox::new_uid()?;
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(body).expect("strings always serialise"));
        let data_key = DataKey::generate()?;
        let body_ct = data_key.seal(&aad("entry", &uid), &plain)?;
        let (key_id, wrapped_key) = self.store.keys.wrap(&data_key, &aad("dek", &uid))?;
        let id: i64 = sqlx::query_scalar("INSERT INTO case_entries (case_id, at, author, kind, outbox_id, uid, key_id, wrapped_key, body_ct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
            .bind(self.case.id)
            .bind(self.now)
            .bind(author)
            .bind(kind)
            .bind(outbox_id)
            .bind(&uid[..])
            .bind(key_id as i64)
            .bind(wrapped_key)
            .bind(body_ct)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(id)
    }

    /// Writes outgoing mail into the outbox in this transaction; returns the outbox row id.
    pub async fn enqueue_mail(&mut self, answers: i64, kind: &str, from: &str, to: &str, data: &[u8]) -> Result<i64, StoreError> {
        let uid = crate::outbox::new_uid()?;
        let (key_id, wrapped_key, mail_ct) = crate::outbox::seal_mail(&self.store.keys, &uid, from, &[to], data)?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO outbox (message_id, kind, rcpt_idx, created_at, next_attempt_at, uid, key_id, wrapped_key, mail_ct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id")
                .bind(answers)
                .bind(kind)
                .bind(crate::outbox::rcpt_index(&self.store.keys, to))
                .bind(self.now)
                .bind(self.now)
                .bind(&uid[..])
                .bind(key_id as i64)
                .bind(wrapped_key)
                .bind(mail_ct)
                .fetch_one(&mut *self.tx)
                .await?;
        Ok(id)
    }

    /// Stores the case, its history row (`actor` is the staff login name) and the audit entry
    /// `case.<action>`, commits, and tells watchers. `detail` must not contain customer data (nor
    /// tag text: tags are sealed).
    pub async fn commit(mut self, actor: &str, action: &str, detail: &str) -> Result<CaseRow, StoreError> {
        if self.case.tags != self.tags_before {
            self.key = Some(write_tags(&mut self.tx, &self.store.keys, self.case.id, self.key.as_ref(), &self.case.tags).await?);
        }
        let c = &self.case;
        sqlx::query(
            "UPDATE cases SET queue = ?, status = ?, priority = ?, category = ?, due_at = ?, assignee = ?, escalated = ?,
                    follow_up_at = ?, first_response_at = ?, resolved_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&c.queue)
        .bind(&c.status)
        .bind(&c.priority)
        .bind(&c.category)
        .bind(c.due_at)
        .bind(c.assignee_id)
        .bind(c.escalated as i64)
        .bind(c.follow_up_at)
        .bind(c.first_response_at)
        .bind(c.resolved_at)
        .bind(self.now)
        .bind(c.id)
        .execute(&mut *self.tx)
        .await?;
        let detail = (!detail.is_empty()).then(|| detail.to_string());
        sqlx::query("INSERT INTO case_history (case_id, at, actor, action, detail) VALUES (?, ?, ?, ?, ?)")
            .bind(c.id)
            .bind(self.now)
            .bind(actor)
            .bind(action)
            .bind(&detail)
            .execute(&mut *self.tx)
            .await?;
        let entry = AuditEntry {
            at: self.now,
            actor: format!("user:{actor}"),
            action: format!("case.{action}"),
            object: Some(format!("case:{}", c.id)),
            detail,
        };
        audit::append(&self.store.keys, &mut self.tx, &[entry]).await?;
        self.tx.commit().await?;
        self.store.changed();
        self.case.updated_at = self.now;
        Ok(self.case)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    async fn store(dir: &std::path::Path) -> Store {
        let settings = crate::config::Settings::from_str(
            "test.toml",
            "[mail]\ndomains = [\"example.com\"]\n[[queues]]\nname = \"support\"\naddresses = [\"support@example.com\"]\n[[queues]]\nname = \"sales\"\naddresses = [\"sales@example.com\"]\n",
            dir,
        )
        .unwrap();
        Store::open(Arc::new(settings)).await.unwrap()
    }

    /// `n` cases spread over both queues, every status and priority, due times out of order.
    async fn seed(store: &Store, n: i64) {
        sqlx::query(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?)
             INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags, category, assignee)
             SELECT i, 'MR-' || i, CASE i % 2 WHEN 0 THEN 'support' ELSE 'sales' END,
                    CASE (i / 2) % 5 WHEN 0 THEN 'new' WHEN 1 THEN 'open' WHEN 2 THEN 'waiting' WHEN 3 THEN 'resolved' ELSE 'closed' END,
                    1000 + i, 2000 + (i * 7919) % 100003,
                    CASE (i / 10) % 3 WHEN 0 THEN 'urgent' WHEN 1 THEN 'normal' ELSE 'low' END,
                    CASE WHEN i % 97 = 0 THEN NULL ELSE 5000 + (i * 104729) % 1000003 END,
                    '[]',
                    CASE WHEN i % 3 = 0 THEN 'BZZX' ELSE NULL END, NULL
             FROM k",
        )
        .bind(n)
        .execute(&store.pool)
        .await
        .unwrap();
        // Every 11th case is tagged vip, sealed as the API would store it.
        let mut tx = store.pool.begin().await.unwrap();
        for id in (11..=n).step_by(11) {
            write_tags(&mut tx, &store.keys, id, None, &["vip".to_string()]).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    fn query(sort: &str) -> CaseQuery {
        CaseQuery {
            queue: "support".into(),
            statuses: ACTIVE.to_vec(),
            priorities: PRIORITIES.to_vec(),
            category: CategoryFilter::Any,
            tag_idx: None,
            assignee: AssigneeFilter::Anyone,
            overdue: None,
            sort: sort.parse().unwrap(),
            limit: 7,
            offset: 0,
            after: None,
        }
    }

    /// The same listing computed the slow way: every case, filtered and sorted in memory.
    async fn reference(store: &Store, q: &CaseQuery, tag: Option<&str>, now: i64) -> Vec<i64> {
        let rows = sqlx::query(concat!("SELECT ", case_columns!(), " FROM cases c")).fetch_all(&store.pool).await.unwrap();
        let mut all: Vec<CaseRow> = rows
            .iter()
            .map(|r| store.open_case(case_from_row(r)).unwrap().0)
            .filter(|c| {
                c.queue == q.queue && q.statuses.contains(&c.status.as_str()) && q.priorities.iter().any(|p| p.as_str() == c.priority)
            })
            .filter(|c| match &q.category {
                CategoryFilter::Any => true,
                CategoryFilter::Uncategorised => c.category.is_none(),
                CategoryFilter::Code(code) => c.category.as_deref() == Some(code),
            })
            .filter(|c| tag.is_none_or(|t| c.tags.iter().any(|x| x == t)))
            .filter(|c| q.overdue.is_none_or(|o| is_overdue(&c.status, c.due_at, now) == o))
            .collect();
        all.sort_by(|a, b| q.sort.compare(a, b));
        all.iter().map(|c| c.id).collect()
    }

    #[tokio::test]
    async fn listing_pages_match_a_full_sort_for_every_order_and_filter() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        seed(&store, 3000).await;
        let now = 500_000;
        let mut variants = Vec::new();
        for sort in Sort::NAMES {
            variants.push((query(sort), None));
            let mut q = query(sort);
            q.statuses = STATUSES.to_vec();
            q.overdue = Some(true);
            variants.push((q, None));
            let mut q = query(sort);
            q.priorities = vec![Priority::Low, Priority::Urgent];
            q.tag_idx = Some(store.keys.tag_index("vip"));
            variants.push((q, Some("vip")));
            let mut q = query(sort);
            q.category = CategoryFilter::Code("BZZX".into());
            q.overdue = Some(false);
            q.statuses = vec!["waiting", "new"];
            variants.push((q, None));
        }
        for (q, tag) in variants {
            let expected = reference(&store, &q, tag, now).await;
            // By cursor, page after page…
            let mut got = Vec::new();
            let mut cursor_q = q.clone();
            loop {
                let page = store.list_cases(&cursor_q, now).await.unwrap();
                got.extend(page.cases.iter().map(|c| c.id));
                match page.next {
                    Some(next) => cursor_q.after = Some(next),
                    None => break,
                }
                assert!(got.len() <= expected.len(), "{:?}: more cases than exist", q.sort);
            }
            assert_eq!(got, expected, "cursor paging, sort {} statuses {:?} overdue {:?}", q.sort.name(), q.statuses, q.overdue);
            // …and by offset.
            let mut offset_q = q.clone();
            offset_q.offset = 20;
            let page = store.list_cases(&offset_q, now).await.unwrap();
            let want: Vec<i64> = expected.iter().skip(20).take(7).copied().collect();
            assert_eq!(page.cases.iter().map(|c| c.id).collect::<Vec<_>>(), want, "offset paging, sort {}", q.sort.name());
        }
    }

    /// Every run of a listing is read from an index in order: no table scan, no sort of the queue.
    #[tokio::test]
    async fn listing_reads_indexes_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        seed(&store, 200).await;
        for sort in Sort::NAMES {
            let rank = if sort.ends_with("priority") { 1 } else { 0 };
            for cursor in [None, Some(Cursor { sort: sort.to_string(), rank, value: Some(9000), id: 40 })] {
                let mut q = query(sort);
                q.after = cursor;
                q.tag_idx = Some(store.keys.tag_index("vip"));
                for (status, priority) in runs(&q) {
                    let Some(mut b) = run_query(&q, status, priority, 1, 8, "EXPLAIN QUERY PLAN ") else { continue };
                    let sql = b.sql().as_str().to_string();
                    let plan: Vec<String> = b.build().fetch_all(&store.pool).await.unwrap().iter().map(|r| r.get::<String, _>(3)).collect();
                    let plan = plan.join(" | ");
                    let index = if sort.contains("opened") {
                        "cases_queue_status"
                    } else if sort.contains("updated") {
                        "cases_queue_updated"
                    } else {
                        "cases_queue_priority_due"
                    };
                    assert!(plan.contains(&format!("USING INDEX {index}")), "sort {sort}: {plan}");
                    assert!(!plan.contains("TEMP B-TREE"), "sort {sort} sorts instead of reading in order: {plan}");
                    assert!(!plan.contains("SCAN c"), "sort {sort} scans the table: {plan}");
                    if sql.contains(&format!("c.{} >= ", q.sort.column())) {
                        assert!(
                            plan.contains(&format!("{}>?", q.sort.column())),
                            "sort {sort} filters from the start of the run instead of seeking: {plan}"
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn transfer_gives_fresh_growing_uids_and_everything_commits_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        seed(&store, 4).await;
        sqlx::query("UPDATE counters SET value = 50 WHERE name = 'message'").execute(&store.pool).await.unwrap();
        // Two message links for case 2 (messages need not exist for the link table's uid logic,
        // but foreign keys are on: create minimal rows).
        for id in [7i64, 9] {
            sqlx::query(
                "INSERT INTO messages (id, uid, number, reg_year, reg_seq, received_at, size, protocol, parsed, case_id, key_id, wrapped_key, trace_ct, fields_ct, dedupe_idx)
                 VALUES (?, x'00', 'MR-x', 2026, ?, 0, 0, 'smtp', 1, 2, 1, x'00', x'00', x'00', x'00')",
            )
            .bind(id)
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
            sqlx::query("INSERT INTO message_cases (message_id, case_id, uid) VALUES (?, 2, ?)")
                .bind(id)
                .bind(id)
                .execute(&store.pool)
                .await
                .unwrap();
        }
        let mut change = store.change_case(2).await.unwrap().unwrap();
        assert_eq!(change.case.queue, "support");
        change.transfer("sales").await.unwrap();
        let entry = change.add_entry("note", "anna", &EntryBody { text: "moved".into(), ..Default::default() }, None).await.unwrap();
        let case = change.commit("anna", "transfer", "queue support→sales").await.unwrap();
        assert_eq!(case.queue, "sales");
        let uids: Vec<i64> =
            sqlx::query_scalar("SELECT uid FROM message_cases WHERE case_id = 2 ORDER BY message_id").fetch_all(&store.pool).await.unwrap();
        assert_eq!(uids, vec![51, 52]);
        let counter: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'message'").fetch_one(&store.pool).await.unwrap();
        assert_eq!(counter, 52, "later messages get ids above the fresh uids");
        let entries = store.case_entries(2).await.unwrap();
        assert_eq!((entries[0].id, entries[0].body.text.as_str()), (entry, "moved"));
        let history = store.case_history(2).await.unwrap();
        assert_eq!((history[0].action.as_str(), history[0].detail.as_deref()), ("transfer", Some("queue support→sales")));
        let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE action = 'case.transfer' AND object = 'case:2'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(audited, 1);
        let sealed: Vec<u8> = sqlx::query_scalar("SELECT body_ct FROM case_entries").fetch_one(&store.pool).await.unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"moved"), "entries are sealed");

        // A change that is dropped leaves nothing behind.
        let mut change = store.change_case(2).await.unwrap().unwrap();
        change.transfer("support").await.unwrap();
        change.add_entry("note", "anna", &EntryBody { text: "lost".into(), ..Default::default() }, None).await.unwrap();
        drop(change);
        assert_eq!(store.case(2).await.unwrap().unwrap().queue, "sales");
        assert_eq!(store.case_entries(2).await.unwrap().len(), 1);
        let counter: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'message'").fetch_one(&store.pool).await.unwrap();
        assert_eq!(counter, 52);
        assert!(store.change_case(999).await.unwrap().is_none());
    }

    /// A store that an earlier version wrote (tags in clear) is sealed on the first open after
    /// migration 0006: same tags, filterable by blind index, and no clear text left in the files.
    #[tokio::test]
    async fn clear_tags_written_before_0006_are_sealed_and_wiped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("clear-tag-marker-{}", std::process::id());
        {
            let settings = crate::config::Settings::from_str(
                "test.toml",
                "[mail]\ndomains = [\"example.com\"]\n[[queues]]\nname = \"support\"\naddresses = [\"support@example.com\"]\n",
                dir.path(),
            )
            .unwrap();
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(crate::store::sqlite::connect_options(&settings.database_path()))
                .await
                .unwrap();
            crate::store::MIGRATOR.run_to(5, &pool).await.unwrap();
            for (id, tags) in [(1, format!("[\"{marker}\",\"vip\"]")), (2, "[]".to_string()), (3, "[\"vip\"]".to_string())] {
                sqlx::query("INSERT INTO cases (id, opening_number, queue, status, opened_at, updated_at, priority, due_at, tags) VALUES (?, 'MR-1', 'support', 'new', 1, 1, 'normal', 10, ?)")
                    .bind(id)
                    .bind(tags)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
        let db_path = dir.path().join("mailroom.db");
        let raw = std::fs::read(&db_path).unwrap();
        assert!(raw.windows(marker.len()).any(|w| w == marker.as_bytes()), "the old database holds the tag in clear (control)");

        let store = store(dir.path()).await;
        assert_eq!(store.case(1).await.unwrap().unwrap().tags, vec![marker.clone(), "vip".to_string()]);
        assert!(store.case(2).await.unwrap().unwrap().tags.is_empty());
        let mut q = query("due");
        q.tag_idx = Some(store.keys.tag_index("vip"));
        let page = store.list_cases(&q, 0).await.unwrap();
        assert_eq!(page.cases.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 3]);
        let clear: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE tags != '[]'").fetch_one(&store.pool).await.unwrap();
        assert_eq!(clear, 0);
        assert_eq!(store.seal_clear_tags().await.unwrap(), 0, "done once");
        store.pool.close().await;
        for file in ["mailroom.db", "mailroom.db-wal", "mailroom.db-shm"] {
            let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
            assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "{file} still holds the clear tag");
        }
    }

    #[test]
    fn sorts_parse_and_name_themselves() {
        for name in Sort::NAMES {
            assert_eq!(name.parse::<Sort>().unwrap().name(), name);
        }
        assert!("size".parse::<Sort>().is_err());
        assert!("--due".parse::<Sort>().is_err());
    }
}
