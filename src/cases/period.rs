//! Statistics of a period (`GET /api/stats?from&to`, `mailroom stats`, the dashboard's period
//! panel): one computation for all three. The cases counted are those opened in the period
//! (local dates of the SLA calendar, `to` included), whatever happened to them since, so a
//! period's figures describe the mail that came in during it:
//!
//! * volume by local day, queue, category and customer tier;
//! * first-response and resolution time (median, p90) in WORKING time on the SLA calendar, from
//!   opening: a case opened on Friday evening and answered on Monday at 09:30 took 30 minutes;
//! * SLA: the due time is the first-response target, so a case is **met** when its first reply
//!   went out by the due time, **breached** when it went out later, or when there is none yet,
//!   the due time has passed and the clock runs (new or open: a case waiting on the customer
//!   does not breach, as the overdue counts everywhere else); **pending** otherwise;
//! * per agent (staff who sent replies on those cases): cases replied to, replies sent, and the
//!   first-response times of the cases whose first reply was theirs.
//!
//! No customer data: counts, durations and the names of queues, categories, tiers and staff.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::dashboard::{Durations, Volume, durations, volumes};
use super::{CaseError, Cases};
use crate::access::Principal;
use crate::intake::sla::Calendar;
use crate::store::audit::AuditEntry;
use crate::store::cases::{CLOCK_RUNNING, PeriodCase, PeriodReply};
use crate::store::{Store, StoreError, millis_to_rfc3339, now_millis};

/// The longest period asked for at once, in days (a leap year).
pub const MAX_SPAN_DAYS: i64 = 366;

/// A period of whole local days, `to` included; valid by construction ([`Period::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// `from` and `to` as `YYYY-MM-DD`; the reason names the parameter at fault.
    pub fn parse(from: &str, to: &str) -> Result<Period, String> {
        let date = |name: &str, text: &str| {
            // chrono accepts "2026-1-5"; the API promises exactly YYYY-MM-DD.
            let well_formed = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .filter(|_| well_formed)
                .ok_or_else(|| format!("{name} must be a date in the form YYYY-MM-DD, not {text:?}"))
        };
        let (from, to) = (date("from", from)?, date("to", to)?);
        if from > to {
            return Err(format!("from ({from}) is after to ({to})"));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_SPAN_DAYS {
            return Err(format!("the period is {days} days long; at most {MAX_SPAN_DAYS} are allowed"));
        }
        Ok(Period { from, to })
    }

    /// The period's days, oldest first.
    fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }

    /// `[start, end)` in unix ms: local midnight of `from` to local midnight after `to`.
    fn bounds(&self, calendar: &Calendar) -> (i64, i64) {
        let end = self.to.succ_opt().unwrap_or(self.to);
        (local_midnight(calendar, self.from), local_midnight(calendar, end))
    }
}

/// The first instant of a local date (a midnight skipped by the clocks starts when they jump).
fn local_midnight(calendar: &Calendar, day: NaiveDate) -> i64 {
    let tz = calendar.timezone();
    let mut local = day.and_time(NaiveTime::MIN);
    for _ in 0..24 * 60 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.timestamp_millis();
        }
        local += Duration::minutes(1);
    }
    day.and_time(NaiveTime::MIN).and_utc().timestamp_millis()
}

/// First responses by the due time and after it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct SlaCounts {
    /// First reply sent by the due time.
    pub met: i64,
    /// First reply sent after the due time, or none yet, past due, and not waiting on the customer.
    pub breached: i64,
    /// Not yet answered and not breached: not yet due, waiting on the customer, or closed without a reply.
    pub pending: i64,
    /// `met / (met + breached)` in percent (one decimal); null when neither.
    #[schema(required = true)]
    pub met_percent: Option<f64>,
}

/// One staff member's work on the period's cases.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentStats {
    /// Login name.
    pub agent: String,
    /// Cases they sent at least one reply on.
    pub cases_handled: i64,
    pub replies: i64,
    /// Working time to the first response of the cases whose first reply was theirs.
    pub first_response: Durations,
}

/// Statistics of the cases opened in a period (see the module documentation).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeriodStats {
    /// `YYYY-MM-DD`, local dates of the SLA calendar; `to` is included.
    pub from: String,
    pub to: String,
    /// The SLA calendar's time zone (IANA name), in which days are counted.
    pub timezone: String,
    /// RFC 3339; SLA breaches of unanswered cases are judged at this time.
    pub generated_at: String,
    /// The queues counted.
    pub queues: Vec<String>,
    /// Cases opened in the period.
    pub cases: i64,
    /// More than the per-queue limit of cases were opened: the figures cover the oldest ones.
    pub truncated: bool,
    /// Every day of the period, oldest first; `name` is the date.
    pub by_day: Vec<Volume>,
    /// In configuration order, queues without cases included.
    pub by_queue: Vec<Volume>,
    /// Largest first, `none` last.
    pub by_category: Vec<Volume>,
    pub by_tier: Vec<Volume>,
    /// Working time from opening to the first reply, of the cases answered.
    pub first_response: Durations,
    /// Working time from opening to resolution, of the cases resolved (or closed) and not re-opened.
    pub resolution: Durations,
    pub sla: SlaCounts,
    /// By login name.
    pub agents: Vec<AgentStats>,
}

/// Working milliseconds between two unix-ms instants on the calendar.
pub fn working_ms(calendar: &Calendar, from: i64, to: i64) -> i64 {
    match (DateTime::<Utc>::from_timestamp_millis(from), DateTime::<Utc>::from_timestamp_millis(to)) {
        (Some(a), Some(b)) => calendar.working_time_between(a, b).num_milliseconds(),
        _ => 0,
    }
}

/// Where a case stands against its due time at `now`.
pub fn sla_outcome(case: &PeriodCase, now: i64) -> Option<bool> {
    let due = case.due_at?;
    match case.first_response_at {
        Some(answered) => Some(answered <= due),
        None if CLOCK_RUNNING.contains(&case.status.as_str()) && due < now => Some(false),
        None => None,
    }
}

/// The figures of `cases` (the period's, of `queues`) and their sent `replies`.
pub fn compute(
    calendar: &Calendar,
    period: Period,
    queues: &[String],
    cases: &[PeriodCase],
    replies: &[PeriodReply],
    now: i64,
) -> PeriodStats {
    let tz = calendar.timezone();
    let mut by_day: BTreeMap<NaiveDate, i64> = period.days().map(|d| (d, 0)).collect();
    let mut by_queue: Vec<Volume> = queues.iter().map(|q| Volume { name: q.clone(), cases: 0 }).collect();
    let (mut by_category, mut by_tier) = (BTreeMap::new(), BTreeMap::new());
    let (mut response_ms, mut resolution_ms) = (Vec::new(), Vec::new());
    let mut sla = SlaCounts::default();
    let mut response_of: HashMap<i64, i64> = HashMap::new();
    for case in cases {
        if let Some(local) = DateTime::<Utc>::from_timestamp_millis(case.opened_at).map(|t| t.with_timezone(&tz).date_naive()) {
            *by_day.entry(local).or_default() += 1;
        }
        if let Some(v) = by_queue.iter_mut().find(|v| v.name == case.queue) {
            v.cases += 1;
        }
        *by_category.entry(case.category.clone().unwrap_or_else(|| "none".into())).or_default() += 1;
        *by_tier.entry(case.tier.clone().unwrap_or_else(|| "none".into())).or_default() += 1;
        if let Some(at) = case.first_response_at {
            let ms = working_ms(calendar, case.opened_at, at);
            response_ms.push(ms);
            response_of.insert(case.id, ms);
        }
        if let Some(at) = case.resolved_at {
            resolution_ms.push(working_ms(calendar, case.opened_at, at));
        }
        match sla_outcome(case, now) {
            Some(true) => sla.met += 1,
            Some(false) => sla.breached += 1,
            None => sla.pending += 1,
        }
    }
    let decided = sla.met + sla.breached;
    sla.met_percent = (decided > 0).then(|| (sla.met as f64 * 1000.0 / decided as f64).round() / 10.0);
    PeriodStats {
        from: period.from.to_string(),
        to: period.to.to_string(),
        timezone: tz.name().to_string(),
        generated_at: millis_to_rfc3339(now),
        queues: queues.to_vec(),
        cases: cases.len() as i64,
        truncated: false,
        by_day: by_day.into_iter().map(|(day, cases)| Volume { name: day.to_string(), cases }).collect(),
        by_queue,
        by_category: volumes(by_category),
        by_tier: volumes(by_tier),
        first_response: durations(response_ms),
        resolution: durations(resolution_ms),
        sla,
        agents: agents(replies, &response_of),
    }
}

/// Per agent: replies (oldest first) counted, and each case's first reply credited with the
/// case's first-response time.
fn agents(replies: &[PeriodReply], response_of: &HashMap<i64, i64>) -> Vec<AgentStats> {
    #[derive(Default)]
    struct Tally {
        cases: std::collections::HashSet<i64>,
        replies: i64,
        first_ms: Vec<i64>,
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut answered = std::collections::HashSet::new();
    for reply in replies {
        let tally = tallies.entry(reply.author.as_str()).or_default();
        tally.replies += 1;
        tally.cases.insert(reply.case_id);
        if answered.insert(reply.case_id)
            && let Some(ms) = response_of.get(&reply.case_id)
        {
            tally.first_ms.push(*ms);
        }
    }
    tallies
        .into_iter()
        .map(|(agent, t)| AgentStats {
            agent: agent.to_string(),
            cases_handled: t.cases.len() as i64,
            replies: t.replies,
            first_response: durations(t.first_ms),
        })
        .collect()
}

/// Reads the period's cases of `queues` and computes their statistics (no permission check:
/// the caller decides who may see which queues).
pub async fn report(store: &Store, calendar: &Calendar, queues: &[String], period: Period) -> Result<PeriodStats, StoreError> {
    let (since, until) = period.bounds(calendar);
    let now = now_millis();
    let (mut cases, mut truncated) = (Vec::new(), false);
    for queue in queues {
        let (rows, more) = store.period_cases(queue, since, until).await?;
        cases.extend(rows);
        truncated |= more;
    }
    let ids: Vec<i64> = cases.iter().map(|c| c.id).collect();
    let replies = store.sent_replies(&ids).await?;
    let mut stats = compute(calendar, period, queues, &cases, &replies, now);
    stats.truncated = truncated;
    Ok(stats)
}

/// The audit entry of a statistics read: who, which period, which queues (no figures).
pub fn audit_entry(actor: &str, period: Period, queues: &[String]) -> AuditEntry {
    AuditEntry {
        at: now_millis(),
        actor: actor.into(),
        action: "stats.read".into(),
        object: None,
        detail: Some(format!("from={} to={} queues={}", period.from, period.to, queues.join(","))),
    }
}

impl Cases {
    /// The statistics of a period over the queues `who` supervises (or the one named, which
    /// they must supervise): refused as the dashboard is. Audited (`stats.read`).
    pub async fn period_stats(&self, who: &Principal, queue: Option<&str>, period: Period) -> Result<PeriodStats, CaseError> {
        let supervised = self.supervised_queues(who);
        if supervised.is_empty() {
            return Err(CaseError::Refused("statistics need the supervise permission on a queue".into()));
        }
        let queues: Vec<String> = match queue {
            None => supervised,
            Some(q) if supervised.iter().any(|s| s == q) => vec![q.to_string()],
            Some(q) => return Err(CaseError::Refused(format!("you do not supervise queue {q:?}"))),
        };
        let stats = report(self.store(), &self.settings().calendar, &queues, period).await?;
        self.store().append_audit(vec![audit_entry(&who.actor(), period, &queues)]).await?;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::sla::SlaConfig;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    fn case(id: i64, status: &str, opened: &str, due: &str, first: Option<&str>, resolved: Option<&str>) -> PeriodCase {
        PeriodCase {
            id,
            queue: "support".into(),
            status: status.into(),
            category: (id % 2 == 0).then(|| "BIL".into()),
            tier: None,
            opened_at: ms(opened),
            due_at: Some(ms(due)),
            first_response_at: first.map(ms),
            resolved_at: resolved.map(ms),
        }
    }

    #[test]
    fn periods_are_validated_with_a_reason() {
        let p = Period::parse("2026-06-01", "2026-06-07").unwrap();
        assert_eq!(p.days().count(), 7);
        assert_eq!(Period::parse("2026-06-01", "2026-06-01").unwrap().days().count(), 1);
        assert!(Period::parse("2026-06-02", "2026-06-01").unwrap_err().contains("is after"));
        assert!(Period::parse("2026-6-1", "2026-06-01").unwrap_err().starts_with("from must be a date"));
        assert!(Period::parse("2026-06-01", "2026-02-30").unwrap_err().starts_with("to must be a date"));
        assert!(Period::parse("2024-01-01", "2024-12-31").is_ok(), "a leap year is 366 days");
        assert!(Period::parse("2024-01-01", "2025-01-01").unwrap_err().contains("367 days"));
    }

    #[test]
    fn bounds_are_local_midnights() {
        let berlin = Calendar::from_config(&SlaConfig { timezone: "Europe/Berlin".into(), ..SlaConfig::default() }).unwrap();
        let p = Period::parse("2026-06-01", "2026-06-02").unwrap();
        assert_eq!(p.bounds(&berlin), (ms("2026-05-31T22:00:00Z"), ms("2026-06-02T22:00:00Z")));
        // Across the spring change the day after is 23 hours long.
        let p = Period::parse("2026-03-29", "2026-03-29").unwrap();
        assert_eq!(p.bounds(&berlin), (ms("2026-03-28T23:00:00Z"), ms("2026-03-29T22:00:00Z")));
    }

    #[test]
    fn figures_use_working_time_and_judge_the_sla_by_the_first_reply() {
        // UTC, Monday to Friday 09:00-17:00.
        let calendar = Calendar::default();
        let now = ms("2026-06-20T12:00:00Z");
        let cases = [
            // Monday 09:00, answered 10:30 (1.5 h), resolved Tuesday 10:00 (9 h); in time.
            case(1, "resolved", "2026-06-01T09:00:00Z", "2026-06-04T09:00:00Z", Some("2026-06-01T10:30:00Z"), Some("2026-06-02T10:00:00Z")),
            // Friday 16:00, answered Monday 09:30: 1 h + 0.5 h = 1.5 h of working time; late.
            case(2, "waiting", "2026-06-05T16:00:00Z", "2026-06-08T09:00:00Z", Some("2026-06-08T09:30:00Z"), None),
            // Saturday, unanswered, past due, open: breached.
            case(3, "open", "2026-06-06T10:00:00Z", "2026-06-11T09:00:00Z", None, None),
            // Unanswered, past due, but waiting on the customer: pending.
            case(4, "waiting", "2026-06-02T09:00:00Z", "2026-06-05T09:00:00Z", None, None),
        ];
        let replies = [
            PeriodReply { case_id: 1, author: "anna".into(), at: ms("2026-06-01T10:30:00Z") },
            PeriodReply { case_id: 1, author: "ben".into(), at: ms("2026-06-01T11:00:00Z") },
            PeriodReply { case_id: 2, author: "ben".into(), at: ms("2026-06-08T09:30:00Z") },
        ];
        let p = Period::parse("2026-06-01", "2026-06-07").unwrap();
        let s = compute(&calendar, p, &["support".into(), "sales".into()], &cases, &replies, now);
        assert_eq!(s.cases, 4);
        let days: Vec<(String, i64)> = s.by_day.iter().map(|v| (v.name.clone(), v.cases)).collect();
        assert_eq!(days[0], ("2026-06-01".into(), 1));
        assert_eq!(days[4], ("2026-06-05".into(), 1));
        assert_eq!(days[5], ("2026-06-06".into(), 1));
        assert_eq!(days.len(), 7);
        assert_eq!((s.by_queue[0].cases, s.by_queue[1].name.as_str(), s.by_queue[1].cases), (4, "sales", 0));
        assert_eq!(s.by_category.iter().map(|v| (v.name.as_str(), v.cases)).collect::<Vec<_>>(), [("BIL", 2), ("none", 2)]);
        assert_eq!((s.first_response.count, s.first_response.median_hours, s.first_response.p90_hours), (2, Some(1.5), Some(1.5)));
        assert_eq!((s.resolution.count, s.resolution.median_hours), (1, Some(9.0)));
        assert_eq!(s.sla, SlaCounts { met: 1, breached: 2, pending: 1, met_percent: Some(33.3) });
        let anna = &s.agents[0];
        assert_eq!((anna.agent.as_str(), anna.cases_handled, anna.replies, anna.first_response.count), ("anna", 1, 1, 1));
        let ben = &s.agents[1];
        assert_eq!((ben.agent.as_str(), ben.cases_handled, ben.replies, ben.first_response.count), ("ben", 2, 2, 1));
        assert_eq!(ben.first_response.median_hours, Some(1.5));
    }

    #[test]
    fn csv_has_one_figure_per_row() {
        let p = Period::parse("2026-06-01", "2026-06-01").unwrap();
        let s = compute(&Calendar::default(), p, &["support".into()], &[], &[], 0);
        let csv = crate::cases::period_export::to_csv(&s);
        assert!(csv.starts_with("section,name,measure,value\nperiod,from,date,2026-06-01\n"), "{csv}");
        assert!(csv.contains("\nday,2026-06-01,cases,0\n"));
        assert!(csv.contains("\nfirst_response,all,median_hours,\n"), "no data is an empty value");
        assert!(crate::cases::period_export::to_table(&s).contains("Cases opened: 0"));
    }
}
