//! The supervisors' dashboard: backlog, due times, flow per day, response and resolution times,
//! SLA per ISO week and volume by category and tier, over the queues the caller supervises. No
//! customer data: counts and durations only. Days and weeks are UTC.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike};
use serde::Serialize;
use utoipa::ToSchema;

use super::{CaseError, Cases};
use crate::access::{Permission, Principal};
use crate::store::cases::{DAY_MS, DashboardFigures, DashboardRanges};
use crate::store::{millis_to_rfc3339, now_millis};

/// Days of the per-day flow (today included).
pub const FLOW_DAYS: i64 = 14;
/// ISO weeks of the SLA chart (this week included).
pub const SLA_WEEKS: i64 = 8;
/// Days over which response and resolution times and the volumes are taken.
pub const DURATION_DAYS: i64 = 30;

/// One queue's backlog right now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Backlog {
    pub queue: String,
    /// New and open cases (someone has to act).
    pub open: i64,
    /// Active cases nobody is assigned to.
    pub unassigned: i64,
    /// Cases waiting on the customer.
    pub waiting: i64,
    pub overdue: i64,
    /// Due in the next 24 hours, not yet overdue.
    pub due_soon: i64,
}

/// Cases opened and resolved on one UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DayFlow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub opened: i64,
    pub resolved: i64,
}

/// Median and 90th percentile of a set of durations, in hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Durations {
    /// How many durations (cases).
    pub count: usize,
    #[schema(required = true)]
    pub median_hours: Option<f64>,
    #[schema(required = true)]
    pub p90_hours: Option<f64>,
}

/// SLA of the cases opened in one ISO week.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WeekSla {
    /// `YYYY-Www` (ISO 8601 week).
    pub week: String,
    /// First response by the due time.
    pub met: i64,
    /// First response late, or none yet and past due.
    pub missed: i64,
    /// `met / (met + missed)` in percent; null when neither.
    #[schema(required = true)]
    pub met_percent: Option<f64>,
}

/// A count under a name (a category code, a tier; `none` for cases without).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Volume {
    pub name: String,
    pub cases: i64,
}

/// The dashboard of the queues asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Dashboard {
    /// RFC 3339.
    pub generated_at: String,
    /// The queues counted.
    pub queues: Vec<String>,
    /// Every queue the caller supervises (what a filter may name).
    pub supervised: Vec<String>,
    pub backlog: Vec<Backlog>,
    /// Over the queues counted.
    pub overdue: i64,
    pub due_soon: i64,
    /// Oldest day first, [`FLOW_DAYS`] days ending today.
    pub flow: Vec<DayFlow>,
    /// Of the cases first answered in the last [`DURATION_DAYS`] days, from opening.
    pub first_response: Durations,
    /// Of the cases resolved in the last [`DURATION_DAYS`] days, from opening.
    pub resolution: Durations,
    /// Oldest week first, [`SLA_WEEKS`] weeks ending with this one.
    pub sla: Vec<WeekSla>,
    /// Cases opened in the last [`DURATION_DAYS`] days, by category code.
    pub by_category: Vec<Volume>,
    /// Cases opened in the last [`DURATION_DAYS`] days, by customer tier.
    pub by_tier: Vec<Volume>,
}

/// The `p`-quantile (0–1) of sorted values, interpolating between neighbours (so `0.5` of an
/// even count is the mean of the two middle values); `None` for no values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    let (a, b) = (sorted[low] as f64, sorted[high] as f64);
    Some(a + (b - a) * (position - low as f64))
}

pub(crate) fn durations(mut ms: Vec<i64>) -> Durations {
    ms.sort_unstable();
    let hours = |q: Option<f64>| q.map(|v| (v / 3_600_000.0 * 100.0).round() / 100.0);
    Durations { count: ms.len(), median_hours: hours(percentile(&ms, 0.5)), p90_hours: hours(percentile(&ms, 0.9)) }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn day_name(day: i64) -> String {
    DateTime::from_timestamp_millis(day * DAY_MS).map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

/// `YYYY-Www` of a week number (weeks since Monday 1969-12-29).
fn week_name(week: i64) -> String {
    DateTime::from_timestamp_millis((week * 7 - 3) * DAY_MS)
        .map(|t| {
            let iso = t.iso_week();
            format!("{}-W{:02}", iso.year(), iso.week())
        })
        .unwrap_or_default()
}

pub(crate) fn volumes(map: BTreeMap<String, i64>) -> Vec<Volume> {
    let mut list: Vec<Volume> = map.into_iter().map(|(name, cases)| Volume { name, cases }).collect();
    // Largest first; "none" last, whatever its size.
    list.sort_by_key(|v| (v.name == "none", -v.cases));
    list
}

impl Cases {
    /// The configured queues where `who` may supervise, in configuration order.
    pub fn supervised_queues(&self, who: &Principal) -> Vec<String> {
        self.settings().queues.iter().map(|q| q.name.clone()).filter(|q| who.can(q, Permission::Supervise)).collect()
    }

    /// The dashboard of every queue `who` supervises, or of the one named (which they must
    /// supervise). Refused without the supervise permission anywhere, as [`Cases::stats`].
    pub async fn dashboard(&self, who: &Principal, queue: Option<&str>) -> Result<Dashboard, CaseError> {
        let supervised = self.supervised_queues(who);
        if supervised.is_empty() {
            return Err(CaseError::Refused("the dashboard needs the supervise permission on a queue".into()));
        }
        let queues: Vec<String> = match queue {
            None => supervised.clone(),
            Some(q) if supervised.iter().any(|s| s == q) => vec![q.to_string()],
            Some(q) => return Err(CaseError::Refused(format!("you do not supervise queue {q:?}"))),
        };
        let now = now_millis();
        let today = now.div_euclid(DAY_MS);
        let this_week = (today + 3).div_euclid(7);
        let ranges = DashboardRanges {
            now,
            days_since: (today - FLOW_DAYS + 1) * DAY_MS,
            weeks_since: ((this_week - SLA_WEEKS + 1) * 7 - 3) * DAY_MS,
            durations_since: now - DURATION_DAYS * DAY_MS,
        };
        let store = self.store();
        let mut backlog = Vec::new();
        let mut all = DashboardFigures::default();
        for queue in &queues {
            let c = store.queue_counts(queue, now).await?;
            let status = |s: &str| c.by_status.get(s).copied().unwrap_or(0);
            backlog.push(Backlog {
                queue: queue.clone(),
                open: status("new") + status("open"),
                unassigned: c.unassigned,
                waiting: status("waiting"),
                overdue: c.overdue,
                due_soon: c.due_soon,
            });
            let f = store.dashboard_figures(queue, &ranges).await?;
            let add = |into: &mut BTreeMap<i64, i64>, from: BTreeMap<i64, i64>| {
                from.into_iter().for_each(|(k, n)| *into.entry(k).or_default() += n)
            };
            add(&mut all.opened_per_day, f.opened_per_day);
            add(&mut all.resolved_per_day, f.resolved_per_day);
            for (week, (met, missed)) in f.sla_per_week {
                let e = all.sla_per_week.entry(week).or_default();
                (e.0, e.1) = (e.0 + met, e.1 + missed);
            }
            all.response_ms.extend(f.response_ms);
            all.resolution_ms.extend(f.resolution_ms);
            for (name, n) in f.by_category {
                *all.by_category.entry(name).or_default() += n;
            }
            for (name, n) in f.by_tier {
                *all.by_tier.entry(name).or_default() += n;
            }
        }
        let flow = (today - FLOW_DAYS + 1..=today)
            .map(|day| DayFlow {
                day: day_name(day),
                opened: all.opened_per_day.get(&day).copied().unwrap_or(0),
                resolved: all.resolved_per_day.get(&day).copied().unwrap_or(0),
            })
            .collect();
        let sla = (this_week - SLA_WEEKS + 1..=this_week)
            .map(|week| {
                let (met, missed) = all.sla_per_week.get(&week).copied().unwrap_or((0, 0));
                let met_percent = (met + missed > 0).then(|| (met as f64 * 1000.0 / (met + missed) as f64).round() / 10.0);
                WeekSla { week: week_name(week), met, missed, met_percent }
            })
            .collect();
        Ok(Dashboard {
            generated_at: millis_to_rfc3339(now),
            overdue: backlog.iter().map(|b| b.overdue).sum(),
            due_soon: backlog.iter().map(|b| b.due_soon).sum(),
            queues,
            supervised,
            backlog,
            flow,
            first_response: durations(all.response_ms),
            resolution: durations(all.resolution_ms),
            sla,
            by_category: volumes(all.by_category),
            by_tier: volumes(all.by_tier),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_and_handles_empty_and_one_value() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.5), Some(7.0));
        assert_eq!(percentile(&[7], 0.9), Some(7.0));
        assert_eq!(percentile(&[1, 3], 0.5), Some(2.0), "the mean of the two middle values");
        assert_eq!(percentile(&[1, 2, 3], 0.5), Some(2.0));
        let ten: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&ten, 0.9), Some(9.1));
        assert_eq!(percentile(&ten, 0.0), Some(1.0));
        assert_eq!(percentile(&ten, 1.0), Some(10.0));
    }

    #[test]
    fn durations_are_in_hours() {
        let d = durations(vec![3 * 3_600_000, 3_600_000, 2 * 3_600_000]);
        assert_eq!((d.count, d.median_hours, d.p90_hours), (3, Some(2.0), Some(2.8)));
        let none = durations(Vec::new());
        assert_eq!((none.count, none.median_hours, none.p90_hours), (0, None, None));
    }

    #[test]
    fn days_and_iso_weeks_are_named_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        // 2026-11-30 is a Monday, in ISO week 49 of 2026.
        let day =
            chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis() / DAY_MS;
        assert_eq!(day_name(day), "2026-11-30");
        assert_eq!(week_name((day + 3) / 7), "2026-W49");
        assert_eq!(week_name((day - 1 + 3) / 7), "2026-W48", "the Sunday before is the week before");
        // 2027-01-01 (a Friday) belongs to ISO week 53 of 2026.
        assert_eq!(week_name((day + 32 + 3) / 7), "2026-W53");
    }

    #[test]
    fn volumes_put_the_largest_first_and_none_last() {
        let map = BTreeMap::from([("none".to_string(), 9), ("BIL".to_string(), 2), ("TEC".to_string(), 5)]);
        let names: Vec<String> = volumes(map).into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["TEC", "BIL", "none"]);
    }
}
