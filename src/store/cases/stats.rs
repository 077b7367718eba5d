//! Queue counts (next to a queue's name) and supervisors' statistics: no customer data.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ACTIVE, counters};
use crate::store::engine::on_db;
use crate::store::{Store, StoreError};

/// Counts shown next to a queue's name.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueCounts {
    /// Cases in each active status.
    pub by_status: BTreeMap<String, i64>,
    pub active: i64,
    pub overdue: i64,
    /// Active cases nobody is assigned to.
    pub unassigned: i64,
    /// New or open cases due from now to [`DUE_SOON`] ahead (not yet overdue).
    pub due_soon: i64,
}

/// How far ahead "due soon" looks: the next 24 hours.
pub const DUE_SOON: i64 = 24 * 3600 * 1000;

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
    /// Cases opened in `queue` after `since` (unix ms), whatever their status now. Naming every
    /// status lets SQLite count an `opened_at` range in each run of `cases_queue_status`.
    pub async fn cases_opened_since(&self, queue: &str, since: i64) -> Result<i64, StoreError> {
        Ok(on_db!(self.db(), pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open', 'waiting', 'resolved', 'closed') AND opened_at > $2",
        )
        .bind(queue)
        .bind(since)
        .fetch_one(pool)
        .await?))
    }

    /// A queue's counts, read from the counters kept with every change (see `counters`): a few
    /// small rows and the cases due within one second, whatever the backlog.
    pub async fn queue_counts(&self, queue: &str, now: i64) -> Result<QueueCounts, StoreError> {
        let mut counts = QueueCounts::default();
        for status in ACTIVE {
            counts.by_status.insert(status.to_string(), 0);
        }
        let rows: Vec<(String, i64, i64)> =
            on_db!(self.db(), pool => sqlx::query_as(counters::COUNTS_OF_QUEUE).bind(queue).fetch_all(pool).await?);
        for (status, unassigned, n) in rows {
            counts.active += n;
            if unassigned != 0 {
                counts.unassigned += n;
            }
            *counts.by_status.entry(status).or_default() += n;
        }
        counts.overdue = self.due_before(queue, now).await?;
        counts.due_soon = self.due_before(queue, now + DUE_SOON).await? - counts.overdue;
        Ok(counts)
    }

    /// Cases of `queue` whose clock runs, due before `t` (unix ms).
    async fn due_before(&self, queue: &str, t: i64) -> Result<i64, StoreError> {
        let [day, hour, minute, second] = counters::WIDTHS.map(|width| counters::bucket(t, width));
        Ok(on_db!(self.db(), pool => sqlx::query_scalar(counters::DUE_BEFORE)
            .bind(queue)
            .bind(day)
            .bind(hour)
            .bind(minute)
            .bind(second)
            .bind(t)
            .fetch_one(pool)
            .await?))
    }

    /// [`Store::queue_counts`] by counting the cases (what the counters replace): for tests and
    /// benchmarks that compare the two.
    pub async fn queue_counts_by_scan(&self, queue: &str, now: i64) -> Result<QueueCounts, StoreError> {
        let mut counts = QueueCounts::default();
        for status in ACTIVE {
            counts.by_status.insert(status.to_string(), 0);
        }
        let rows: Vec<(String, i64)> = on_db!(self.db(), pool => {
            sqlx::query_as("SELECT status, COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open', 'waiting') GROUP BY status")
                .bind(queue)
                .fetch_all(pool)
                .await?
        });
        for (status, n) in rows {
            counts.active += n;
            counts.by_status.insert(status, n);
        }
        on_db!(self.db(), pool => {
            // Naming every priority lets SQLite count a due_at range in each (status, priority) run.
            counts.overdue = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open') AND priority IN ('urgent', 'normal', 'low') AND due_at < $2")
                .bind(queue)
                .bind(now)
                .fetch_one(pool)
                .await?;
            counts.unassigned =
                sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open', 'waiting')
                                    AND assignee IS NULL")
                    .bind(queue)
                    .fetch_one(pool)
                    .await?;
            counts.due_soon = sqlx::query_scalar("SELECT COUNT(*) FROM cases WHERE queue = $1 AND status IN ('new', 'open') AND priority IN ('urgent', 'normal', 'low') AND due_at >= $2 AND due_at < $3")
                .bind(queue)
                .bind(now)
                .bind(now + DUE_SOON)
                .fetch_one(pool)
                .await?;
        });
        Ok(counts)
    }

    pub async fn queue_stats(&self, queue: &str, now: i64) -> Result<QueueStats, StoreError> {
        let mut stats = QueueStats { queue: queue.to_string(), ..Default::default() };
        // SUMs cast: PostgreSQL's SUM is wider than its argument.
        let rows: Vec<(String, String, Option<String>, i64, i64, i64)> = on_db!(self.db(), pool => sqlx::query_as(
            "SELECT status, priority, category, COUNT(*),
                    CAST(SUM(CASE WHEN status IN ('new', 'open') AND due_at < $1 THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN (first_response_at IS NOT NULL AND first_response_at > due_at)
                               OR (first_response_at IS NULL AND status IN ('new', 'open') AND due_at < $1) THEN 1 ELSE 0 END) AS BIGINT)
             FROM cases WHERE queue = $2 GROUP BY status, priority, category",
        )
        .bind(now)
        .bind(queue)
        .fetch_all(pool)
        .await?);
        for (status, priority, category, n, overdue, breached) in rows {
            stats.total += n;
            if ACTIVE.contains(&status.as_str()) {
                stats.active += n;
            }
            stats.overdue += overdue;
            stats.breached += breached;
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
        let n: i64 = on_db!(self.db(), pool => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM cases WHERE queue = $1 AND {column} IS NOT NULL")))
                .bind(queue)
                .fetch_one(pool)
                .await?
        });
        if n == 0 {
            return Ok((0, None));
        }
        // The middle value, or the two middle values of an even count.
        let middle: Vec<i64> = on_db!(self.db(), pool => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT {column} - opened_at AS d FROM cases WHERE queue = $1 AND {column} IS NOT NULL ORDER BY d LIMIT $2 OFFSET $3"
        )))
        .bind(queue)
        .bind(if n % 2 == 0 { 2i64 } else { 1 })
        .bind((n - 1) / 2)
        .fetch_all(pool)
        .await?);
        let median = middle.iter().sum::<i64>() as f64 / middle.len().max(1) as f64 / 1000.0;
        Ok((n, Some(median)))
    }
}

/// A day in the store's dashboard figures: days since 1970-01-01 (UTC).
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// The time ranges the dashboard asks one queue's figures for (unix ms, each `[since, now)`).
#[derive(Debug, Clone, Copy)]
pub struct DashboardRanges {
    pub now: i64,
    /// Opened and resolved per day.
    pub days_since: i64,
    /// SLA met per ISO week (cases opened since).
    pub weeks_since: i64,
    /// First-response and resolution times, and volume by category and tier.
    pub durations_since: i64,
}

/// At most this many durations are read per queue and measure, whatever the range holds.
pub const MAX_DURATIONS: i64 = 200_000;

/// One queue's dashboard figures (no customer data).
#[derive(Debug, Clone, Default)]
pub struct DashboardFigures {
    /// Day (days since 1970-01-01, UTC) → cases opened that day.
    pub opened_per_day: BTreeMap<i64, i64>,
    /// Day → cases resolved that day (and not re-opened since).
    pub resolved_per_day: BTreeMap<i64, i64>,
    /// ISO week (weeks since Monday 1969-12-29) → (first response in time, late or still missing past due).
    pub sla_per_week: BTreeMap<i64, (i64, i64)>,
    /// Milliseconds from opening to the first response, of the cases first answered in the range.
    pub response_ms: Vec<i64>,
    /// Milliseconds from opening to resolution, of the cases resolved in the range.
    pub resolution_ms: Vec<i64>,
    /// Category code ("none" for none) → cases opened in the range.
    pub by_category: BTreeMap<String, i64>,
    /// Tier ("none" for none) → cases opened in the range.
    pub by_tier: BTreeMap<String, i64>,
}

/// Every status named, so SQLite reads an `opened_at` range in each run of (queue, status, opened_at).
const ALL_STATUSES: &str = "status IN ('new', 'open', 'waiting', 'resolved', 'closed')";

impl Store {
    /// The dashboard's figures of `queue` over the ranges: each query reads an index range.
    pub async fn dashboard_figures(&self, queue: &str, r: &DashboardRanges) -> Result<DashboardFigures, StoreError> {
        let mut f = DashboardFigures::default();
        let per_day = |column: &str| {
            let filter = if column == "opened_at" { ALL_STATUSES.to_string() } else { format!("{column} IS NOT NULL") };
            format!(
                "SELECT {column} / {DAY_MS}, COUNT(*) FROM cases WHERE queue = $1 AND {filter} AND {column} >= $2 AND {column} < $3 GROUP BY 1"
            )
        };
        for (column, out) in [("opened_at", &mut f.opened_per_day), ("resolved_at", &mut f.resolved_per_day)] {
            let rows: Vec<(i64, i64)> = on_db!(self.db(), pool => {
                sqlx::query_as(sqlx::AssertSqlSafe(per_day(column))).bind(queue).bind(r.days_since).bind(r.now).fetch_all(pool).await?
            });
            out.extend(rows);
        }
        // Day 0 was a Thursday: adding 3 makes weeks start on Monday, as ISO weeks do.
        let weeks: Vec<(i64, i64, i64)> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (opened_at / {DAY_MS} + 3) / 7,
                    CAST(SUM(CASE WHEN first_response_at IS NOT NULL AND first_response_at <= due_at THEN 1 ELSE 0 END) AS BIGINT),
                    CAST(SUM(CASE WHEN (first_response_at IS NOT NULL AND first_response_at > due_at)
                               OR (first_response_at IS NULL AND status IN ('new', 'open') AND due_at < $1) THEN 1 ELSE 0 END) AS BIGINT)
             FROM cases WHERE queue = $2 AND {ALL_STATUSES} AND opened_at >= $3 AND opened_at < $1 GROUP BY 1"
        )))
        .bind(r.now)
        .bind(queue)
        .bind(r.weeks_since)
        .fetch_all(pool)
        .await?);
        f.sla_per_week = weeks.into_iter().map(|(week, met, missed)| (week, (met, missed))).collect();
        for (column, out) in [("first_response_at", &mut f.response_ms), ("resolved_at", &mut f.resolution_ms)] {
            *out = on_db!(self.db(), pool => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {column} - opened_at FROM cases WHERE queue = $1 AND {column} IS NOT NULL AND {column} >= $2 AND {column} < $3 LIMIT $4"
            )))
            .bind(queue)
            .bind(r.durations_since)
            .bind(r.now)
            .bind(MAX_DURATIONS)
            .fetch_all(pool)
            .await?);
        }
        let volume: Vec<(Option<String>, Option<String>, i64)> = on_db!(self.db(), pool => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT category, tier, COUNT(*) FROM cases WHERE queue = $1 AND {ALL_STATUSES} AND opened_at >= $2 AND opened_at < $3 GROUP BY category, tier"
        )))
        .bind(queue)
        .bind(r.durations_since)
        .bind(r.now)
        .fetch_all(pool)
        .await?);
        for (category, tier, n) in volume {
            *f.by_category.entry(category.unwrap_or_else(|| "none".into())).or_default() += n;
            *f.by_tier.entry(tier.unwrap_or_else(|| "none".into())).or_default() += n;
        }
        Ok(f)
    }
}
