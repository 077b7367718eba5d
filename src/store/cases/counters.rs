//! Queue counters: what a queue's counts (by status, unassigned, overdue, due soon) are read from,
//! kept in the same write transaction as every change of a case's queue, status, assignee or due
//! time, so reading them costs a few small rows whatever the backlog.
//!
//! * `queue_counters`: active cases per (queue, status, unassigned).
//! * `queue_due_buckets`: cases whose SLA clock runs, with a due time, per (queue, width, start)
//!   at four widths ([`WIDTHS`]). "Due before t" ([`DUE_BEFORE`]) sums the day buckets before
//!   t's day, the hour buckets of t's day before t's hour, the minute buckets of t's hour before
//!   t's minute, the second buckets of t's minute before t's second, and counts the cases of t's
//!   own second from the index: exact at every millisecond, O(days + 24 + 60 + 60) rows.
//!   (One width would be either many rows to sum or, when mail arrives in bursts, many cases in
//!   the bucket of `now` to count.)
//!
//! A writer collects [`Deltas`] (what each changed case took away and added) and [`apply`]s them
//! before its commit: one upsert per key that changed, and empty buckets are deleted. The
//! migration (0017) fills both tables from the cases; [`FULL_COUNTS`] / [`FULL_BUCKETS`] count
//! them again for `mailroom store counts` and the tests.

use std::collections::BTreeMap;

use super::{ACTIVE, CLOCK_RUNNING, DAY_MS};
use crate::store::audit::{self, AuditEntry};
use crate::store::engine::{Conn, on_conn};
use crate::store::{Store, StoreError, now_millis};

/// Bucket widths in ms, widest first (the literals in [`DUE_BEFORE`] and the migration).
pub const WIDTHS: [i64; 4] = [DAY_MS, 3_600_000, 60_000, 1_000];

/// The start of the `width` bucket that holds `t` (floor, also before 1970).
pub fn bucket(t: i64, width: i64) -> i64 {
    t - t.rem_euclid(width)
}

/// One counter row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Count { queue: String, status: String, unassigned: i64 },
    Due { queue: String, width: i64, start: i64 },
}

/// The part of a case row the counters depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct Counted {
    pub queue: String,
    pub status: String,
    pub unassigned: bool,
    pub due_at: Option<i64>,
}

impl Counted {
    /// The rows this case adds one to.
    fn keys(&self) -> Vec<Key> {
        let mut keys = Vec::with_capacity(5);
        if ACTIVE.contains(&self.status.as_str()) {
            keys.push(Key::Count { queue: self.queue.clone(), status: self.status.clone(), unassigned: i64::from(self.unassigned) });
        }
        if let Some(due) = self.due_at
            && CLOCK_RUNNING.contains(&self.status.as_str())
        {
            keys.extend(WIDTHS.iter().map(|&width| Key::Due { queue: self.queue.clone(), width, start: bucket(due, width) }));
        }
        keys
    }
}

impl From<&super::CaseRow> for Counted {
    fn from(case: &super::CaseRow) -> Counted {
        Counted { queue: case.queue.clone(), status: case.status.clone(), unassigned: case.assignee_id.is_none(), due_at: case.due_at }
    }
}

/// Changes to the counters, summed by row.
#[derive(Debug, Default)]
pub struct Deltas(BTreeMap<Key, i64>);

impl Deltas {
    /// A case entering (`+1`) or leaving (`-1`) the counts.
    pub fn add(&mut self, case: &Counted, sign: i64) {
        for key in case.keys() {
            *self.0.entry(key).or_default() += sign;
        }
    }

    /// A case changed from `before` to `after`.
    pub fn change(&mut self, before: &Counted, after: &Counted) {
        if before != after {
            self.add(before, -1);
            self.add(after, 1);
        }
    }

    pub fn add_key(&mut self, key: Key, n: i64) {
        *self.0.entry(key).or_default() += n;
    }

    /// The rows that change, with by how much.
    pub fn changed(&self) -> impl Iterator<Item = (&Key, i64)> {
        self.0.iter().filter(|(_, n)| **n != 0).map(|(k, n)| (k, *n))
    }

    pub fn is_empty(&self) -> bool {
        self.changed().next().is_none()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}

// Placeholders in ascending order (the writer binds them with rusqlite by number).
pub const UPSERT_COUNT: &str = "INSERT INTO queue_counters (queue, status, unassigned, n) VALUES ($1, $2, $3, $4)
     ON CONFLICT (queue, status, unassigned) DO UPDATE SET n = queue_counters.n + excluded.n";
pub const DROP_EMPTY_COUNT: &str = "DELETE FROM queue_counters WHERE queue = $1 AND status = $2 AND unassigned = $3 AND n = 0";
pub const UPSERT_DUE: &str = "INSERT INTO queue_due_buckets (queue, width, start, n) VALUES ($1, $2, $3, $4)
     ON CONFLICT (queue, width, start) DO UPDATE SET n = queue_due_buckets.n + excluded.n";
pub const DROP_EMPTY_DUE: &str = "DELETE FROM queue_due_buckets WHERE queue = $1 AND width = $2 AND start = $3 AND n = 0";

/// PostgreSQL, the writer's batch: every counter row ($1 … $4 as columns) and bucket ($5 … $8)
/// at once (one round trip under the sequencer lock). Each key appears once.
pub const UPSERT_ALL_POSTGRES: &str = "WITH c AS (
         INSERT INTO queue_counters (queue, status, unassigned, n)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
         ON CONFLICT (queue, status, unassigned) DO UPDATE SET n = queue_counters.n + excluded.n)
     INSERT INTO queue_due_buckets (queue, width, start, n)
     SELECT * FROM unnest($5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
     ON CONFLICT (queue, width, start) DO UPDATE SET n = queue_due_buckets.n + excluded.n";
/// PostgreSQL: the rows a batch took from ($1 … $3 counters, $4 … $6 buckets), if now empty.
pub const DROP_ALL_EMPTY_POSTGRES: &str = "WITH c AS (
         DELETE FROM queue_counters WHERE n = 0
         AND (queue, status, unassigned) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])))
     DELETE FROM queue_due_buckets WHERE n = 0
     AND (queue, width, start) IN (SELECT * FROM unnest($4::text[], $5::bigint[], $6::bigint[]))";

/// Applies `deltas` inside the write transaction `tx` (a [`crate::store::engine::Db::begin_write`]).
pub async fn apply(tx: &mut Conn, deltas: &Deltas) -> Result<(), StoreError> {
    for (key, n) in deltas.changed() {
        on_conn!(&mut *tx, c => match key {
            Key::Count { queue, status, unassigned } => {
                sqlx::query(UPSERT_COUNT).bind(queue).bind(status).bind(unassigned).bind(n).execute(&mut *c).await?;
                if n < 0 {
                    sqlx::query(DROP_EMPTY_COUNT).bind(queue).bind(status).bind(unassigned).execute(&mut *c).await?;
                }
            }
            Key::Due { queue, width, start } => {
                sqlx::query(UPSERT_DUE).bind(queue).bind(width).bind(start).bind(n).execute(&mut *c).await?;
                if n < 0 {
                    sqlx::query(DROP_EMPTY_DUE).bind(queue).bind(width).bind(start).execute(&mut *c).await?;
                }
            }
        });
    }
    Ok(())
}

/// A queue's active cases: (status, unassigned, n).
pub const COUNTS_OF_QUEUE: &str = "SELECT status, unassigned, n FROM queue_counters WHERE queue = $1";

/// Cases of queue $1 whose clock runs, due before $6; $2 … $5 are $6's day, hour, minute and
/// second buckets. Naming every priority lets the index count the last second in each run.
pub const DUE_BEFORE: &str = "SELECT CAST(
       (SELECT COALESCE(SUM(n), 0) FROM queue_due_buckets WHERE queue = $1 AND width = 86400000 AND start < $2)
     + (SELECT COALESCE(SUM(n), 0) FROM queue_due_buckets WHERE queue = $1 AND width = 3600000 AND start >= $2 AND start < $3)
     + (SELECT COALESCE(SUM(n), 0) FROM queue_due_buckets WHERE queue = $1 AND width = 60000 AND start >= $3 AND start < $4)
     + (SELECT COALESCE(SUM(n), 0) FROM queue_due_buckets WHERE queue = $1 AND width = 1000 AND start >= $4 AND start < $5)
     + (SELECT COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open') AND priority IN ('urgent', 'normal', 'low')
                                     AND due_at >= $5 AND due_at < $6)
     AS BIGINT)";

/// Every counter row as the cases say it should be (as the migration fills them).
pub const FULL_COUNTS: &str = "SELECT queue, status, CAST(CASE WHEN assignee IS NULL THEN 1 ELSE 0 END AS BIGINT) AS unassigned, COUNT(*)
     FROM cases WHERE status IN ('new', 'open', 'waiting') GROUP BY 1, 2, 3";
pub const FULL_BUCKETS: &str = "SELECT c.queue, w.width, c.due_at - ((c.due_at % w.width) + w.width) % w.width AS start, COUNT(*)
     FROM cases c,
          (SELECT CAST(86400000 AS BIGINT) AS width UNION ALL SELECT 3600000 UNION ALL SELECT 60000 UNION ALL SELECT 1000) w
     WHERE c.status IN ('new', 'open') AND c.due_at IS NOT NULL GROUP BY 1, 2, 3";
pub const KEPT_COUNTS: &str = "SELECT queue, status, unassigned, n FROM queue_counters WHERE n <> 0";
pub const KEPT_BUCKETS: &str = "SELECT queue, width, start, n FROM queue_due_buckets WHERE n <> 0";

/// A counter row that differs from a full count of the cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub key: Key,
    pub kept: i64,
    pub counted: i64,
}

/// The counters compared with a full count.
#[derive(Debug, Clone, Default)]
pub struct CounterCheck {
    /// Non-empty rows a full count makes.
    pub rows: usize,
    pub mismatches: Vec<Mismatch>,
}

impl Store {
    /// Compares the counters with a full count of the cases, both read under the write lock (one
    /// state), which nothing is written with. Reads every active case: an admin's check, not a page's.
    pub async fn check_queue_counters(&self) -> Result<CounterCheck, StoreError> {
        let mut tx = self.db().begin_write().await?;
        compare(&mut tx).await
    }

    /// Rewrites the counters from a full count (after a check found them wrong), with an audit
    /// entry `store.recount` by `actor`; returns what the check before found.
    pub async fn recount_queue_counters(&self, actor: &str) -> Result<CounterCheck, StoreError> {
        let mut tx = self.db().begin_write().await?;
        let check = compare(&mut tx).await?;
        on_conn!(&mut tx, c => {
            sqlx::query("DELETE FROM queue_counters").execute(&mut *c).await?;
            sqlx::query("DELETE FROM queue_due_buckets").execute(&mut *c).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO queue_counters (queue, status, unassigned, n) {FULL_COUNTS}")))
                .execute(&mut *c)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO queue_due_buckets (queue, width, start, n) {FULL_BUCKETS}")))
                .execute(&mut *c)
                .await?;
        });
        let entry = AuditEntry {
            at: now_millis(),
            actor: actor.to_string(),
            action: "store.recount".into(),
            object: None,
            detail: Some(format!("rows={} mismatches={}", check.rows, check.mismatches.len())),
        };
        audit::append(&self.keys, &mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(check)
    }
}

/// The counters and a full count of the cases, row by row, inside `tx`.
async fn compare(tx: &mut Conn) -> Result<CounterCheck, StoreError> {
    let mut kept: BTreeMap<Key, i64> = BTreeMap::new();
    let mut counted: BTreeMap<Key, i64> = BTreeMap::new();
    for (sql, out) in [(KEPT_COUNTS, &mut kept), (FULL_COUNTS, &mut counted)] {
        let rows: Vec<(String, String, i64, i64)> = on_conn!(&mut *tx, c => sqlx::query_as(sql).fetch_all(c).await?);
        out.extend(rows.into_iter().map(|(queue, status, unassigned, n)| (Key::Count { queue, status, unassigned }, n)));
    }
    for (sql, out) in [(KEPT_BUCKETS, &mut kept), (FULL_BUCKETS, &mut counted)] {
        let rows: Vec<(String, i64, i64, i64)> = on_conn!(&mut *tx, c => sqlx::query_as(sql).fetch_all(c).await?);
        out.extend(rows.into_iter().map(|(queue, width, start, n)| (Key::Due { queue, width, start }, n)));
    }
    let keys: std::collections::BTreeSet<&Key> = kept.keys().chain(counted.keys()).collect();
    let mismatches = keys
        .into_iter()
        .filter_map(|key| {
            let (k, c) = (kept.get(key).copied().unwrap_or(0), counted.get(key).copied().unwrap_or(0));
            (k != c).then(|| Mismatch { key: key.clone(), kept: k, counted: c })
        })
        .collect();
    Ok(CounterCheck { rows: counted.len(), mismatches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_starts_at_or_before_its_time_also_before_1970() {
        assert_eq!(bucket(1_999, 1_000), 1_000);
        assert_eq!(bucket(2_000, 1_000), 2_000);
        assert_eq!(bucket(-1, 1_000), -1_000);
        assert_eq!(bucket(DAY_MS + 5, DAY_MS), DAY_MS);
    }

    #[test]
    fn a_change_that_leaves_the_counted_fields_alone_changes_nothing() {
        let case = Counted { queue: "support".into(), status: "open".into(), unassigned: true, due_at: Some(5_000) };
        let mut deltas = Deltas::default();
        deltas.change(&case, &case.clone());
        assert!(deltas.is_empty());
        let resolved = Counted { status: "resolved".into(), ..case.clone() };
        deltas.change(&case, &resolved);
        // The status row and the four buckets lose one; resolved cases are not counted.
        assert_eq!(deltas.changed().count(), 5);
        assert!(deltas.changed().all(|(_, n)| n == -1));
        let waiting = Counted { status: "waiting".into(), ..case.clone() };
        let mut deltas = Deltas::default();
        deltas.change(&case, &waiting);
        // Waiting: still active (moves between status rows), its clock stopped (leaves the buckets).
        let counts: Vec<i64> = deltas.changed().map(|(_, n)| n).collect();
        assert_eq!(counts.iter().filter(|n| **n == 1).count(), 1);
        assert_eq!(counts.iter().filter(|n| **n == -1).count(), 5);
    }
}
