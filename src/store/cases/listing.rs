//! A queue's cases listed straight from an index in sort order. A listing never sorts a whole
//! queue: each index holds one sorted run per status (and priority); the listing reads the first
//! page of every run it needs and merges them. Pages after the first are found by a keyset
//! cursor (the sort key of the last case shown).

use std::cmp::Ordering;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{CASE_COLUMNS, CLOCK_RUNNING, CaseColumns, CaseRow, PRIORITIES, RawCase, priority_rank};
use crate::store::engine::on_db;
use crate::store::priority::Priority;
use crate::store::{Store, StoreError};

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

    pub(super) fn column(self) -> &'static str {
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

    /// Total order of the listing; `None` (no due time) sorts first, as the SQL asks (`NULLS FIRST`
    /// ascending, `NULLS LAST` descending: SQLite's default order, not PostgreSQL's).
    pub(super) fn compare(self, a: &CaseRow, b: &CaseRow) -> Ordering {
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
/// `prefix` goes before the SELECT (tests ask for the query plan). For either engine: it binds
/// text, bytes and integers.
pub(super) fn run_query<'q, DB: Database>(
    q: &'q CaseQuery,
    status: &'static str,
    priority: Option<Priority>,
    now: i64,
    want: i64,
    prefix: &str,
) -> Option<QueryBuilder<DB>>
where
    DB::Arguments: Default,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    let sort = q.sort;
    let column = sort.column();
    let mut b = QueryBuilder::<DB>::new(format!("{prefix}SELECT {CASE_COLUMNS} FROM cases c WHERE c.queue = "));
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
    // NULL (no due time) first ascending, last descending, on both engines (SQLite's default, so
    // its plans still read the index in order).
    let direction = if sort.descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" };
    b.push(format!(" ORDER BY c.{column} {direction}, c.id {direction} LIMIT ")).push_bind(want);
    Some(b)
}

/// The runs a query reads: (status, priority) pairs.
pub(super) fn runs(q: &CaseQuery) -> Vec<(&'static str, Option<Priority>)> {
    let statuses = q.statuses.iter().copied().filter(|s| q.overdue != Some(true) || CLOCK_RUNNING.contains(s));
    if q.sort.runs_per_priority() {
        statuses.flat_map(|s| q.priorities.iter().map(move |p| (s, Some(*p)))).collect()
    } else {
        statuses.map(|s| (s, None)).collect()
    }
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
            let rows: Vec<CaseColumns> = on_db!(self.db(), pool => {
                let Some(mut query) = run_query(q, status, priority, now, want, "") else { continue };
                query.build_query_as().fetch_all(pool).await?
            });
            found.extend(rows.into_iter().map(RawCase::from));
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
}
