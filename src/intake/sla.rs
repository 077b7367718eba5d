//! SLA deadlines: when a registered message is due, by priority, on a business-hours calendar.
//!
//! The clock starts at SMTP acceptance (`received`), not when someone first opens the case, so
//! the due time can be computed once, before the commit, and stored with the registration.
//! Working time is counted in the configured time zone: each working day is its configured
//! wall-clock hours (09:00-17:00 stays 09:00-17:00 local on the days the clocks change), turned
//! into UTC instants day by day with chrono-tz; everything outside is skipped.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// How far ahead (in local days) a working-time search looks before it gives up. Validation caps
/// every duration well inside this, so only a calendar that is all holidays for a century reaches
/// it; the deadline then saturates at the end of the horizon instead of looping.
const SEARCH_DAYS: i64 = 100 * 366;

/// Priorities are stored with each case, so the type is the store's.
pub use crate::store::priority::{ParsePriorityError, Priority};

/// The `[sla]` section of the configuration, as written; [`Calendar::from_config`] validates it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlaConfig {
    /// IANA name, e.g. "Europe/Berlin".
    pub timezone: String,
    /// "mon".."sun" (case-insensitive; full names also accepted).
    pub working_days: Vec<String>,
    /// "HH:MM-HH:MM" local wall-clock time; the end may be "24:00".
    pub hours: String,
    /// "YYYY-MM-DD" local dates with no working hours.
    pub holidays: Vec<String>,
    pub urgent: String,
    pub normal: String,
    pub low: String,
}

impl Default for SlaConfig {
    fn default() -> SlaConfig {
        SlaConfig {
            timezone: "UTC".to_string(),
            working_days: ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| d.to_string()).collect(),
            hours: "09:00-17:00".to_string(),
            holidays: Vec::new(),
            urgent: "24h".to_string(),
            normal: "3 working days".to_string(),
            low: "5 working days".to_string(),
        }
    }
}

/// A bad `[sla]` value. `key` is the full config key ("sla.hours"), so the config loader can
/// report FILE:LINE: key: reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SlaConfigError {
    pub key: &'static str,
    pub reason: String,
}

fn config_error(key: &'static str, reason: impl Into<String>) -> SlaConfigError {
    SlaConfigError { key, reason: reason.into() }
}

/// One SLA target. Elapsed and calendar targets ignore business hours; working targets count
/// only working time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaDuration {
    /// "24h", "24 h", "24 hours": clock time from acceptance.
    Hours(u32),
    /// "2 days": the same local wall-clock time N calendar days later (23 or 25 hours across a
    /// DST change, as a person reading the deadline would expect).
    Days(u32),
    /// "4 working hours".
    WorkingHours(u32),
    /// "3 working days": N × the length of one working day, counted in working time only, so
    /// a message received mid-afternoon is due mid-afternoon N working days later.
    WorkingDays(u32),
}

impl fmt::Display for SlaDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            SlaDuration::Hours(n) => (n, "hour"),
            SlaDuration::Days(n) => (n, "day"),
            SlaDuration::WorkingHours(n) => (n, "working hour"),
            SlaDuration::WorkingDays(n) => (n, "working day"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

impl FromStr for SlaDuration {
    type Err = String;

    /// Grammar (case-insensitive, any spacing): `N h|hour|hours`, `N day|days`,
    /// `N working hour|hours`, `N working day|days`; N a whole number ≥ 1. Each unit has an
    /// upper bound of about ten years, which keeps every search finite.
    fn from_str(s: &str) -> Result<SlaDuration, String> {
        const EXPECTED: &str = "expected e.g. \"24h\", \"24 hours\", \"2 days\", \"4 working hours\" or \"3 working days\"";
        let text = s.trim().to_ascii_lowercase();
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{s:?} does not start with a whole number; {EXPECTED}"));
        }
        let unit = text[digits..].split_whitespace().collect::<Vec<_>>().join(" ");
        let (make, max): (fn(u32) -> SlaDuration, u32) = match unit.as_str() {
            "h" | "hour" | "hours" => (SlaDuration::Hours, 87_600),
            "day" | "days" => (SlaDuration::Days, 3_650),
            "working hour" | "working hours" => (SlaDuration::WorkingHours, 20_000),
            "working day" | "working days" => (SlaDuration::WorkingDays, 2_500),
            _ => return Err(format!("{s:?}: unknown unit {unit:?}; {EXPECTED}")),
        };
        let n: u32 = text[..digits].parse().map_err(|_| format!("{s:?}: number too large"))?;
        if n == 0 {
            return Err(format!("{s:?}: must be at least 1"));
        }
        if n > max {
            return Err(format!("{s:?}: at most {max} allowed for this unit"));
        }
        Ok(make(n))
    }
}

/// A validated business-hours calendar and the three SLA targets.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: Tz,
    /// Indexed by `Weekday::num_days_from_monday()`.
    working: [bool; 7],
    /// Minutes after local midnight; `end` may be 1440 (24:00). Always `start < end`.
    start: u32,
    end: u32,
    holidays: HashSet<NaiveDate>,
    urgent: SlaDuration,
    normal: SlaDuration,
    low: SlaDuration,
}

impl Default for Calendar {
    fn default() -> Calendar {
        Calendar::from_config(&SlaConfig::default()).expect("the default SLA config is valid")
    }
}

impl Calendar {
    /// Validates every field of `[sla]`; the error names the offending key.
    pub fn from_config(config: &SlaConfig) -> Result<Calendar, SlaConfigError> {
        let tz: Tz = config.timezone.trim().parse().map_err(|_| {
            config_error(
                "sla.timezone",
                format!("unknown time zone {:?} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")", config.timezone),
            )
        })?;

        let mut working = [false; 7];
        for name in &config.working_days {
            let day = parse_weekday(name).ok_or_else(|| {
                config_error("sla.working_days", format!("unknown day {name:?} (expected mon, tue, wed, thu, fri, sat or sun)"))
            })?;
            if std::mem::replace(&mut working[day], true) {
                return Err(config_error("sla.working_days", format!("{name:?} is listed twice")));
            }
        }
        if !working.contains(&true) {
            return Err(config_error("sla.working_days", "at least one working day is required"));
        }

        let (start, end) = parse_hours(&config.hours).map_err(|reason| config_error("sla.hours", reason))?;

        let holidays = config
            .holidays
            .iter()
            .map(|h| parse_date(h).ok_or_else(|| config_error("sla.holidays", format!("{h:?} is not a date in the form YYYY-MM-DD"))))
            .collect::<Result<HashSet<_>, _>>()?;

        let duration = |key: &'static str, value: &str| value.parse::<SlaDuration>().map_err(|reason| config_error(key, reason));
        Ok(Calendar {
            tz,
            working,
            start,
            end,
            holidays,
            urgent: duration("sla.urgent", &config.urgent)?,
            normal: duration("sla.normal", &config.normal)?,
            low: duration("sla.low", &config.low)?,
        })
    }

    /// The configured time zone, for showing due times in local time.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The SLA target for a priority, e.g. for "we aim to reply within 3 working days".
    pub fn target(&self, priority: Priority) -> SlaDuration {
        match priority {
            Priority::Urgent => self.urgent,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    /// The due time of a message accepted at `received` with `priority`.
    ///
    /// A working-time deadline that lands exactly on closing time is carried to the next
    /// opening: it is the same amount of working time, and "3 working days from Monday 09:00"
    /// reads as Thursday 09:00, not Wednesday 17:00. Results beyond chrono's range, or a calendar
    /// with no working time for a century, saturate instead of failing.
    pub fn due(&self, received: DateTime<Utc>, priority: Priority) -> DateTime<Utc> {
        match self.target(priority) {
            SlaDuration::Hours(n) => received.checked_add_signed(Duration::hours(n.into())).unwrap_or(DateTime::<Utc>::MAX_UTC),
            SlaDuration::Days(n) => self.add_calendar_days(received, n),
            SlaDuration::WorkingHours(n) => self.add_working(received, Duration::hours(n.into())),
            SlaDuration::WorkingDays(n) => self.add_working(received, self.working_day_length() * n as i32),
        }
    }

    /// Working time between two instants (zero if `b <= a`): the basis of first-response and
    /// resolution statistics, so a message that arrived on Friday evening and was answered on
    /// Monday at 09:30 counts as 30 minutes. Spans longer than a century are counted for the
    /// first century only, to keep the cost bounded.
    pub fn working_time_between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        let end = a.checked_add_signed(Duration::days(SEARCH_DAYS)).map_or(b, |cap| b.min(cap));
        let mut total = Duration::zero();
        let mut day = self.first_day(a);
        let last = end.with_timezone(&self.tz).date_naive();
        while day <= last {
            if let Some((s, e)) = self.window(day) {
                let (s, e) = (s.max(a), e.min(end));
                if s < e {
                    total += e - s;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        total
    }

    /// Working days from `a` to `b` as a person counts them on the calendar: the working days
    /// after `a`'s local date up to and including `b`'s (zero if `b` is on `a`'s date or
    /// earlier). "Due Thursday" seen on Wednesday is 1 working day away, seen on Friday for
    /// Monday too. At most a century is counted.
    pub fn working_days_until(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> u32 {
        let (mut day, last) = (self.first_day(a), self.first_day(b));
        let mut count = 0;
        for _ in 0..SEARCH_DAYS {
            match day.succ_opt() {
                Some(next) if next <= last => day = next,
                _ => break,
            }
            if self.is_working_day(day) {
                count += 1;
            }
        }
        count
    }

    /// Whether a case opened at `opened` and due at `due` is past its warning point at `now`:
    /// `share_permille`‰ of its time gone, counted the way its priority's SLA counts, so working
    /// time for working hours and days (a case due Monday at 10:00 is not warned about on Sunday
    /// night, but on Monday morning) and clock time otherwise. Not once it is due: that is a breach.
    pub fn warning_reached(
        &self,
        priority: Priority,
        opened: DateTime<Utc>,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        share_permille: i64,
    ) -> bool {
        if now >= due {
            return false;
        }
        let (gone, total) = match self.target(priority) {
            SlaDuration::Hours(_) | SlaDuration::Days(_) => (now - opened, due - opened),
            SlaDuration::WorkingHours(_) | SlaDuration::WorkingDays(_) => {
                (self.working_time_between(opened, now), self.working_time_between(opened, due))
            }
        };
        gone.num_milliseconds() * 1000 >= total.num_milliseconds() * share_permille
    }

    /// The latest due time at which a case of any priority can be past its warning point at
    /// `now` (with a minute to spare): one due later still has more than the rest of its SLA time
    /// ahead, so the SLA sweep reads only the cases due by then.
    pub fn warning_horizon(&self, now: DateTime<Utc>, share_permille: i64) -> DateTime<Utc> {
        let rest = |full: Duration| full * (1000 - share_permille.clamp(0, 1000)) as i32 / 1000 + Duration::minutes(1);
        let clock = |d: Duration| now.checked_add_signed(rest(d)).unwrap_or(DateTime::<Utc>::MAX_UTC);
        [Priority::Urgent, Priority::Normal, Priority::Low]
            .into_iter()
            .map(|priority| match self.target(priority) {
                SlaDuration::Hours(n) => clock(Duration::hours(n.into())),
                // A day across a DST change is 25 hours.
                SlaDuration::Days(n) => clock(Duration::hours(i64::from(n) * 25)),
                SlaDuration::WorkingHours(n) => self.add_working(now, rest(Duration::hours(n.into()))),
                SlaDuration::WorkingDays(n) => self.add_working(now, rest(self.working_day_length() * n as i32)),
            })
            .max()
            .unwrap_or(now)
    }

    /// The nominal length of a working day (end − start in wall-clock time).
    fn working_day_length(&self) -> Duration {
        Duration::minutes((self.end - self.start).into())
    }

    fn is_working_day(&self, day: NaiveDate) -> bool {
        self.working[day.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&day)
    }

    /// The working window of a local date as UTC instants, or None on a day off. On a DST day
    /// the window keeps its wall-clock hours, so it may be an hour shorter or longer in real time
    /// when the change falls inside the hours (and is empty if the hours vanish in a gap).
    fn window(&self, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(day) {
            return None;
        }
        let midnight = day.and_time(NaiveTime::MIN);
        let start = self.resolve(midnight.checked_add_signed(Duration::minutes(self.start.into()))?)?;
        let end = self.resolve(midnight.checked_add_signed(Duration::minutes(self.end.into()))?)?;
        (start < end).then_some((start, end))
    }

    /// The first instant whose local wall-clock time is at or after `local`: the time itself if
    /// it exists once, its first occurrence if the clocks went back, and the moment of the
    /// change if it was skipped by the clocks going forward. Monotonic in `local`, so windows of
    /// consecutive days never overlap.
    fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        if let Some(t) = self.tz.from_local_datetime(&local).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        // In a gap. Real gaps are at most a day (Samoa skipped 30 Dec 2011), so 2 days of minutes
        // always finds its end; then step back to the exact second of the change.
        let mut probe = local;
        for _ in 0..2 * 24 * 60 {
            probe = probe.checked_add_signed(Duration::minutes(1))?;
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                let mut t = t.with_timezone(&Utc);
                for _ in 0..60 {
                    let prev = t - Duration::seconds(1);
                    if prev.with_timezone(&self.tz).naive_local() < local {
                        break;
                    }
                    t = prev;
                }
                return Some(t);
            }
        }
        None
    }

    /// The first local date whose window may contain `t`: its own. Every window of an earlier
    /// date ends by the first instant showing that date's midnight (`resolve` is monotonic), and
    /// so at or before `t`.
    fn first_day(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// `from` plus `amount` of working time. Arrival outside the hours starts at the next opening.
    fn add_working(&self, from: DateTime<Utc>, amount: Duration) -> DateTime<Utc> {
        let mut remaining = amount;
        let mut cursor = from;
        let mut day = self.first_day(from);
        for _ in 0..SEARCH_DAYS {
            if let Some((s, e)) = self.window(day) {
                let s = s.max(cursor);
                if s < e {
                    let available = e - s;
                    if remaining < available {
                        return s + remaining;
                    }
                    remaining -= available;
                    cursor = e;
                }
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => break,
            }
        }
        from.checked_add_signed(Duration::days(SEARCH_DAYS)).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Same local wall-clock time `n` days later (the first such instant if it is ambiguous, the
    /// moment of the change if it falls in a gap).
    fn add_calendar_days(&self, from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        from.with_timezone(&self.tz)
            .naive_local()
            .checked_add_days(chrono::Days::new(n.into()))
            .and_then(|local| self.resolve(local))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

fn parse_weekday(name: &str) -> Option<usize> {
    const DAYS: [(&str, &str); 7] = [
        ("mon", "monday"),
        ("tue", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
        ("sun", "sunday"),
    ];
    let name = name.trim().to_ascii_lowercase();
    DAYS.iter().position(|(short, long)| name == *short || name == *long)
}

/// "HH:MM-HH:MM" → minutes after midnight; "24:00" is allowed as the end only.
fn parse_hours(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{text:?} is not a range of local times like \"09:00-17:00\"");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let start = parse_clock(a.trim()).ok_or_else(bad)?;
    let end = parse_clock(b.trim()).ok_or_else(bad)?;
    if start >= 24 * 60 {
        return Err(format!("{text:?}: 24:00 can only end the working hours"));
    }
    if start >= end {
        return Err(format!("{text:?}: the start must be before the end (hours cannot run past midnight)"));
    }
    Ok((start, end))
}

/// "H:MM" or "HH:MM", 00:00 to 24:00.
fn parse_clock(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// Strictly "YYYY-MM-DD" (chrono alone would also take "2026-1-5" or "+2026-01-05").
fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn working_days_until_counts_calendar_working_days() {
        let cal = Calendar::default();
        // 2026-12-02 is a Wednesday.
        assert_eq!(cal.working_days_until(utc("2026-12-02T10:00:00Z"), utc("2026-12-03T14:00:00Z")), 1);
        assert_eq!(cal.working_days_until(utc("2026-12-02T10:00:00Z"), utc("2026-12-02T16:00:00Z")), 0);
        assert_eq!(cal.working_days_until(utc("2026-12-04T16:00:00Z"), utc("2026-12-07T09:00:00Z")), 1, "Friday to Monday");
        assert_eq!(cal.working_days_until(utc("2026-12-02T10:00:00Z"), utc("2026-12-09T10:00:00Z")), 5);
        assert_eq!(cal.working_days_until(utc("2026-12-09T10:00:00Z"), utc("2026-12-02T10:00:00Z")), 0);
    }

    fn berlin() -> SlaConfig {
        SlaConfig {
            timezone: "Europe/Berlin".into(),
            holidays: ["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"].iter().map(|s| s.to_string()).collect(),
            ..SlaConfig::default()
        }
    }

    fn cal(config: SlaConfig) -> Calendar {
        Calendar::from_config(&config).unwrap()
    }

    fn err(config: SlaConfig) -> SlaConfigError {
        Calendar::from_config(&config).unwrap_err()
    }

    #[test]
    fn priority_strings() {
        assert_eq!(Priority::default(), Priority::Normal);
        for p in [Priority::Urgent, Priority::Normal, Priority::Low] {
            assert_eq!(p.as_str().parse::<Priority>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Priority>(&format!("\"{p}\"")).unwrap(), p);
        }
        assert_eq!(" URGENT ".parse::<Priority>().unwrap(), Priority::Urgent);
        assert!("high".parse::<Priority>().is_err());
        assert!(serde_json::from_str::<Priority>("\"Urgent\"").is_err());
    }

    #[test]
    fn duration_grammar() {
        use SlaDuration::*;
        for (text, want) in [
            ("24h", Hours(24)),
            ("24 h", Hours(24)),
            ("1 hour", Hours(1)),
            (" 36 HOURS ", Hours(36)),
            ("2 days", Days(2)),
            ("1day", Days(1)),
            ("4 working hours", WorkingHours(4)),
            ("1 working hour", WorkingHours(1)),
            ("3 working days", WorkingDays(3)),
            ("5  Working   Days", WorkingDays(5)),
        ] {
            assert_eq!(text.parse::<SlaDuration>(), Ok(want), "{text}");
        }
        for bad in [
            "",
            "h",
            "24",
            "0h",
            "-1h",
            "1.5h",
            "3 weeks",
            "3 working",
            "working days",
            "3 business days",
            "24hh",
            "99999999999h",
            "87601h",
            "2501 working days",
        ] {
            assert!(bad.parse::<SlaDuration>().is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(WorkingDays(3).to_string(), "3 working days");
        assert_eq!(Hours(1).to_string(), "1 hour");
    }

    #[test]
    fn defaults() {
        let c = Calendar::default();
        assert_eq!(c.target(Priority::Urgent), SlaDuration::Hours(24));
        assert_eq!(c.target(Priority::Normal), SlaDuration::WorkingDays(3));
        assert_eq!(c.target(Priority::Low), SlaDuration::WorkingDays(5));
        // Monday 10:00 + 3 working days (24 working hours) = Thursday 10:00.
        assert_eq!(c.due(utc("2026-06-01T10:00:00Z"), Priority::Normal), utc("2026-06-04T10:00:00Z"));
        // Friday 18:00: the clock starts Monday 09:00; due Thursday 09:00 (not Wednesday 17:00).
        assert_eq!(c.due(utc("2026-06-05T18:00:00Z"), Priority::Normal), utc("2026-06-11T09:00:00Z"));
        // Low, Wednesday 14:15 + 5 working days crosses a weekend: next Wednesday 14:15.
        assert_eq!(c.due(utc("2026-06-03T14:15:00Z"), Priority::Low), utc("2026-06-10T14:15:00Z"));
        // Monday 10:00 low: Monday 10:00 next week.
        assert_eq!(c.due(utc("2026-06-01T10:00:00Z"), Priority::Low), utc("2026-06-08T10:00:00Z"));
        // Urgent is 24 h of clock time, weekends included, to the second.
        assert_eq!(c.due(utc("2026-06-05T18:00:07Z"), Priority::Urgent), utc("2026-06-06T18:00:07Z"));
    }

    #[test]
    fn outside_hours_arrival() {
        let c = cal(SlaConfig { normal: "1 working hour".into(), ..SlaConfig::default() });
        // Before opening: counts from 09:00.
        assert_eq!(c.due(utc("2026-06-01T06:30:00Z"), Priority::Normal), utc("2026-06-01T10:00:00Z"));
        // Saturday and Sunday: counts from Monday 09:00.
        assert_eq!(c.due(utc("2026-06-06T12:00:00Z"), Priority::Normal), utc("2026-06-08T10:00:00Z"));
        assert_eq!(c.due(utc("2026-06-07T23:59:59Z"), Priority::Normal), utc("2026-06-08T10:00:00Z"));
        // Exactly at closing: next morning.
        assert_eq!(c.due(utc("2026-06-01T17:00:00Z"), Priority::Normal), utc("2026-06-02T10:00:00Z"));
        // At 16:30, half an hour today and half tomorrow.
        assert_eq!(c.due(utc("2026-06-01T16:30:00Z"), Priority::Normal), utc("2026-06-02T09:30:00Z"));
        // Within the day.
        assert_eq!(c.due(utc("2026-06-01T09:00:00Z"), Priority::Normal), utc("2026-06-01T10:00:00Z"));
    }

    #[test]
    fn holidays_are_skipped() {
        let c = cal(berlin());
        // Wednesday 23 Dec 10:00 CET: 7 h that day; 24-26 holidays, 27 Sunday; Mon 28 and Tue 29
        // give 16 h; the last hour is Wednesday 30 Dec 10:00 CET = 09:00 UTC.
        assert_eq!(c.due(utc("2026-12-23T09:00:00Z"), Priority::Normal), utc("2026-12-30T09:00:00Z"));
        // Arriving on a holiday: counts from Monday 28 Dec 09:00 CET; due Thursday 31 Dec 09:00 CET.
        assert_eq!(c.due(utc("2026-12-25T11:00:00Z"), Priority::Normal), utc("2026-12-31T08:00:00Z"));
        // Low from Tuesday 29 Dec 09:00 CET skips New Year's Day and the weekend.
        // 29, 30, 31, 4, 5 Jan → due at the opening of Wednesday 6 Jan.
        assert_eq!(c.due(utc("2026-12-29T08:00:00Z"), Priority::Low), utc("2027-01-06T08:00:00Z"));
        // Without the holidays, the first case is due on Monday 28th.
        let plain = cal(SlaConfig { timezone: "Europe/Berlin".into(), ..SlaConfig::default() });
        assert_eq!(plain.due(utc("2026-12-23T09:00:00Z"), Priority::Normal), utc("2026-12-28T09:00:00Z"));
    }

    #[test]
    fn dst_spring_forward_berlin() {
        // Clocks go 02:00 CET → 03:00 CEST on Sunday 2026-03-29 (01:00 UTC).
        let c = cal(SlaConfig { timezone: "Europe/Berlin".into(), ..SlaConfig::default() });
        // Friday 27 March 10:00 CET (09:00Z): due Wednesday 1 April 10:00 CEST (08:00Z).
        assert_eq!(c.due(utc("2026-03-27T09:00:00Z"), Priority::Normal), utc("2026-04-01T08:00:00Z"));
        // Friday 17:30 CET: starts Monday 09:00 CEST (07:00Z), due Thursday 09:00 CEST.
        assert_eq!(c.due(utc("2026-03-27T16:30:00Z"), Priority::Normal), utc("2026-04-02T07:00:00Z"));
        // Urgent 24 h is clock time: Saturday 09:00Z.
        assert_eq!(c.due(utc("2026-03-27T09:00:00Z"), Priority::Urgent), utc("2026-03-28T09:00:00Z"));
        // Working time across the weekend is just Friday 16:00-17:00 CET + Monday 09:00-10:00 CEST.
        assert_eq!(c.working_time_between(utc("2026-03-27T15:00:00Z"), utc("2026-03-30T08:00:00Z")), Duration::hours(2));

        // A working Sunday keeps 09:00-17:00 local: 08:00-16:00Z on Saturday, 07:00-15:00Z on Sunday.
        let all = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = cal(SlaConfig {
            timezone: "Europe/Berlin".into(),
            working_days: all.clone(),
            normal: "1 working day".into(),
            ..SlaConfig::default()
        });
        assert_eq!(
            c.window(NaiveDate::from_ymd_opt(2026, 3, 28).unwrap()),
            Some((utc("2026-03-28T08:00:00Z"), utc("2026-03-28T16:00:00Z")))
        );
        assert_eq!(
            c.window(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()),
            Some((utc("2026-03-29T07:00:00Z"), utc("2026-03-29T15:00:00Z")))
        );
        assert_eq!(c.due(utc("2026-03-28T12:00:00Z"), Priority::Normal), utc("2026-03-29T11:00:00Z"));

        // Hours that contain the change: 00:00-24:00 on the short day is 23 real hours, and a
        // 1-day calendar target is the same wall-clock time the next day (23 h later).
        let c = cal(SlaConfig {
            timezone: "Europe/Berlin".into(),
            working_days: all.clone(),
            hours: "00:00-24:00".into(),
            urgent: "1 day".into(),
            ..SlaConfig::default()
        });
        assert_eq!(c.working_time_between(utc("2026-03-28T23:00:00Z"), utc("2026-03-29T22:00:00Z")), Duration::hours(23));
        assert_eq!(c.due(utc("2026-03-28T09:00:00Z"), Priority::Urgent), utc("2026-03-29T08:00:00Z"));
        // Hours starting inside the skipped hour start at the change itself (03:00 CEST = 01:00Z).
        let c = cal(SlaConfig { timezone: "Europe/Berlin".into(), working_days: all, hours: "02:30-10:00".into(), ..SlaConfig::default() });
        assert_eq!(
            c.window(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()),
            Some((utc("2026-03-29T01:00:00Z"), utc("2026-03-29T08:00:00Z")))
        );
        assert_eq!(
            c.resolve(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap().and_hms_opt(2, 0, 0).unwrap()),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn gap_resolves_to_the_exact_second() {
        // Berlin left local mean time (+0:53:28) for CET on 1893-04-01: local 00:00:00-00:06:31
        // never happened. Both resolve to the change itself, 1893-03-31 23:06:32 UTC.
        let c = cal(SlaConfig { timezone: "Europe/Berlin".into(), ..SlaConfig::default() });
        let day = NaiveDate::from_ymd_opt(1893, 4, 1).unwrap();
        for (h, m, s) in [(0, 0, 0), (0, 3, 0), (0, 6, 31)] {
            assert_eq!(c.resolve(day.and_hms_opt(h, m, s).unwrap()), Some(utc("1893-03-31T23:06:32Z")));
        }
        assert_eq!(c.resolve(day.and_hms_opt(0, 6, 32).unwrap()), Some(utc("1893-03-31T23:06:32Z")));
        assert_eq!(c.resolve(day.and_hms_opt(0, 7, 0).unwrap()), Some(utc("1893-03-31T23:07:00Z")));
    }

    #[test]
    fn dst_fall_back_berlin() {
        // Clocks go 03:00 CEST → 02:00 CET on Sunday 2026-10-25 (01:00 UTC).
        let c = cal(SlaConfig { timezone: "Europe/Berlin".into(), ..SlaConfig::default() });
        // Friday 23 Oct 10:00 CEST (08:00Z): due Wednesday 28 Oct 10:00 CET (09:00Z).
        assert_eq!(c.due(utc("2026-10-23T08:00:00Z"), Priority::Normal), utc("2026-10-28T09:00:00Z"));
        assert_eq!(c.working_time_between(utc("2026-10-23T08:00:00Z"), utc("2026-10-28T09:00:00Z")), Duration::hours(24));
        // Low: Friday 30 Oct 10:00 CET.
        assert_eq!(c.due(utc("2026-10-23T08:00:00Z"), Priority::Low), utc("2026-10-30T09:00:00Z"));

        let all = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = cal(SlaConfig {
            timezone: "Europe/Berlin".into(),
            working_days: all.clone(),
            hours: "00:00-24:00".into(),
            urgent: "1 day".into(),
            ..SlaConfig::default()
        });
        // The long day has 25 real hours; a calendar day across it is 25 h.
        assert_eq!(c.working_time_between(utc("2026-10-24T22:00:00Z"), utc("2026-10-25T23:00:00Z")), Duration::hours(25));
        assert_eq!(c.due(utc("2026-10-24T08:00:00Z"), Priority::Urgent), utc("2026-10-25T09:00:00Z"));
        // An hour that happens twice starts at its first occurrence (02:30 CEST = 00:30Z).
        let c = cal(SlaConfig { timezone: "Europe/Berlin".into(), working_days: all, hours: "02:30-10:00".into(), ..SlaConfig::default() });
        assert_eq!(
            c.window(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()),
            Some((utc("2026-10-25T00:30:00Z"), utc("2026-10-25T09:00:00Z")))
        );
    }

    #[test]
    fn working_time_between_counts_only_working_time() {
        let c = cal(berlin());
        let zero = Duration::zero();
        assert_eq!(c.working_time_between(utc("2026-06-01T10:00:00Z"), utc("2026-06-01T10:00:00Z")), zero);
        assert_eq!(c.working_time_between(utc("2026-06-02T10:00:00Z"), utc("2026-06-01T10:00:00Z")), zero);
        // Monday 09:00-10:30 CEST.
        assert_eq!(c.working_time_between(utc("2026-06-01T07:00:00Z"), utc("2026-06-01T08:30:00Z")), Duration::minutes(90));
        // Friday evening to Monday 09:30 CEST: 30 minutes.
        assert_eq!(c.working_time_between(utc("2026-06-05T17:00:00Z"), utc("2026-06-08T07:30:00Z")), Duration::minutes(30));
        // Entirely outside hours, and over Christmas holidays.
        assert_eq!(c.working_time_between(utc("2026-06-06T08:00:00Z"), utc("2026-06-07T20:00:00Z")), zero);
        assert_eq!(c.working_time_between(utc("2026-12-24T00:00:00Z"), utc("2026-12-27T23:00:00Z")), zero);
        // A whole week: five 8-hour days.
        assert_eq!(c.working_time_between(utc("2026-06-01T00:00:00Z"), utc("2026-06-08T00:00:00Z")), Duration::hours(40));
        // Consistent with due(): the working time from arrival to deadline is the target.
        for received in ["2026-03-27T16:59:00Z", "2026-10-23T12:34:56Z", "2026-12-22T15:00:00Z", "2026-06-06T03:00:00Z"] {
            let r = utc(received);
            assert_eq!(c.working_time_between(r, c.due(r, Priority::Normal)), Duration::hours(24), "{received}");
            assert_eq!(c.working_time_between(r, c.due(r, Priority::Low)), Duration::hours(40), "{received}");
        }
        // Long spans stay bounded and correct: a plain year of UTC weekdays.
        let u = Calendar::default();
        assert_eq!(u.working_time_between(utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z")), Duration::hours(8 * 261));
    }

    #[test]
    fn other_units_and_hours() {
        let c = cal(SlaConfig {
            working_days: vec!["Mon".into(), "wednesday".into()],
            hours: "8:30-12:00".into(),
            urgent: "4 working hours".into(),
            normal: "2 days".into(),
            low: "2 working days".into(),
            ..SlaConfig::default()
        });
        // Monday 11:00: 1 h Monday, 3 h Wednesday from 08:30 → 11:30.
        assert_eq!(c.due(utc("2026-06-01T11:00:00Z"), Priority::Urgent), utc("2026-06-03T11:30:00Z"));
        // Calendar days ignore the working calendar.
        assert_eq!(c.due(utc("2026-06-06T11:00:00Z"), Priority::Normal), utc("2026-06-08T11:00:00Z"));
        // 2 working days = 7 h from Tuesday: Wednesday 08:30-12:00 + Monday 08:30-12:00 ends
        // exactly at closing, so it is due at the next opening, Wednesday 08:30.
        assert_eq!(c.due(utc("2026-06-02T11:00:00Z"), Priority::Low), utc("2026-06-10T08:30:00Z"));
    }

    #[test]
    fn saturates_instead_of_looping() {
        // Only Mondays work, and every Monday for 120 years is a holiday.
        let mut holidays = Vec::new();
        let mut d = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        while d.year() < 2146 {
            holidays.push(d.format("%Y-%m-%d").to_string());
            d += Duration::days(7);
        }
        let c = cal(SlaConfig { working_days: vec!["mon".into()], holidays, ..SlaConfig::default() });
        let r = utc("2026-06-01T10:00:00Z");
        assert_eq!(c.due(r, Priority::Normal), r + Duration::days(SEARCH_DAYS));
        assert_eq!(c.due(DateTime::<Utc>::MAX_UTC - Duration::days(3), Priority::Normal), DateTime::<Utc>::MAX_UTC);
        assert_eq!(c.due(DateTime::<Utc>::MAX_UTC - Duration::hours(1), Priority::Urgent), DateTime::<Utc>::MAX_UTC);
        assert!(Calendar::default().working_time_between(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC) > Duration::zero());
    }

    #[test]
    fn validation_names_the_key() {
        let d = SlaConfig::default;
        let cases: Vec<(SlaConfig, &str)> = vec![
            (SlaConfig { timezone: "Mars/Olympus_Mons".into(), ..d() }, "sla.timezone"),
            (SlaConfig { timezone: "".into(), ..d() }, "sla.timezone"),
            (SlaConfig { working_days: vec![], ..d() }, "sla.working_days"),
            (SlaConfig { working_days: vec!["mon".into(), "funday".into()], ..d() }, "sla.working_days"),
            (SlaConfig { working_days: vec!["mon".into(), "MON".into()], ..d() }, "sla.working_days"),
            (SlaConfig { hours: "9-17".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "09:00".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "17:00-09:00".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "09:00-09:00".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "09:60-17:00".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "24:00-24:00".into(), ..d() }, "sla.hours"),
            (SlaConfig { hours: "09:00-24:01".into(), ..d() }, "sla.hours"),
            (SlaConfig { holidays: vec!["2026-12-24".into(), "2026-13-01".into()], ..d() }, "sla.holidays"),
            (SlaConfig { holidays: vec!["2026-02-30".into()], ..d() }, "sla.holidays"),
            (SlaConfig { holidays: vec!["26-12-24".into()], ..d() }, "sla.holidays"),
            (SlaConfig { holidays: vec!["2026-1-05".into()], ..d() }, "sla.holidays"),
            (SlaConfig { urgent: "soon".into(), ..d() }, "sla.urgent"),
            (SlaConfig { normal: "3 weeks".into(), ..d() }, "sla.normal"),
            (SlaConfig { low: "0 working days".into(), ..d() }, "sla.low"),
        ];
        for (config, key) in cases {
            let e = err(config.clone());
            assert_eq!(e.key, key, "{config:?} → {e}");
            assert!(!e.reason.is_empty());
            assert!(e.to_string().starts_with(&format!("{key}: ")));
        }
        assert!(err(SlaConfig { hours: "24:00-24:00".into(), ..d() }).reason.contains("24:00 can only end"));
        // Accepted edge cases.
        cal(SlaConfig { hours: "00:00-24:00".into(), working_days: vec!["Sunday".into()], ..d() });
        cal(SlaConfig { timezone: "America/New_York".into(), holidays: vec!["2028-02-29".into()], ..d() });
    }

    #[test]
    fn toml_section() {
        #[derive(serde::Deserialize)]
        struct File {
            sla: SlaConfig,
        }
        let text = r#"
            [sla]
            timezone = "Europe/Berlin"
            working_days = ["mon", "tue", "wed", "thu", "fri"]
            hours = "09:00-17:00"
            holidays = ["2026-12-24", "2026-12-25", "2026-12-26", "2027-01-01"]
            urgent = "24h"
            normal = "3 working days"
            low = "5 working days"
        "#;
        let f: File = toml::from_str(text).unwrap();
        let c = cal(f.sla);
        assert_eq!(c.timezone(), chrono_tz::Europe::Berlin);
        assert_eq!(c.due(utc("2026-12-23T09:00:00Z"), Priority::Normal), utc("2026-12-30T09:00:00Z"));
        // Missing keys take the defaults; unknown keys are refused.
        let f: File = toml::from_str("[sla]\nlow = \"10 working days\"\n").unwrap();
        assert_eq!(f.sla.timezone, "UTC");
        assert_eq!(cal(f.sla).target(Priority::Low), SlaDuration::WorkingDays(10));
        assert!(toml::from_str::<File>("[sla]\nweekend = [\"sat\"]\n").is_err());
    }

    #[test]
    fn the_warning_point_counts_the_time_the_sla_counts() {
        let calendar = cal(SlaConfig { urgent: "8 working hours".into(), low: "24h".into(), ..berlin() });
        let local = |s: &str| calendar.tz.from_local_datetime(&s.parse::<NaiveDateTime>().unwrap()).unwrap().with_timezone(&Utc);
        let reached =
            |p: Priority, opened: DateTime<Utc>, due: DateTime<Utc>, now: &str| calendar.warning_reached(p, opened, due, local(now), 800);

        // 8 working hours from Friday 16:00: 1 hour on Friday, 7 on Monday, due Monday 16:00. 80 %
        // of the clock time is gone on Sunday at 17:36, of the working time on Monday at 14:24.
        let opened = local("2026-12-04T16:00:00");
        let due = calendar.due(opened, Priority::Urgent);
        assert_eq!(due, local("2026-12-07T16:00:00"));
        assert!(!reached(Priority::Urgent, opened, due, "2026-12-06T20:00:00"), "not on Sunday night");
        assert!(!reached(Priority::Urgent, opened, due, "2026-12-07T14:20:00"));
        assert!(reached(Priority::Urgent, opened, due, "2026-12-07T14:25:00"), "on Monday afternoon");
        assert!(!reached(Priority::Urgent, opened, due, "2026-12-07T16:00:00"), "due: a breach, not a warning");

        // 3 working days (normal) from Friday 16:00: due Wednesday 16:00, warned Wednesday 11:12.
        let due = calendar.due(opened, Priority::Normal);
        assert_eq!(due, local("2026-12-09T16:00:00"));
        assert!(!reached(Priority::Normal, opened, due, "2026-12-08T16:30:00"), "the clock's 80 % is Tuesday 16:00");
        assert!(reached(Priority::Normal, opened, due, "2026-12-09T11:15:00"));

        // A clock SLA (24h, low) warns by the clock, weekend or not.
        let due = calendar.due(opened, Priority::Low);
        assert_eq!(due, local("2026-12-05T16:00:00"));
        assert!(!reached(Priority::Low, opened, due, "2026-12-05T11:00:00"));
        assert!(reached(Priority::Low, opened, due, "2026-12-05T11:13:00"), "Saturday, 80 % of 24 hours");
    }

    #[test]
    fn the_warning_horizon_covers_every_case_past_its_warning_point() {
        let calendar = cal(SlaConfig { urgent: "8 working hours".into(), low: "2 days".into(), ..berlin() });
        let local = |s: &str| calendar.tz.from_local_datetime(&s.parse::<NaiveDateTime>().unwrap()).unwrap().with_timezone(&Utc);
        // Every hour of a fortnight around Christmas (holidays, a weekend, a New Year) as the
        // opening time of each priority, checked at every hour until it is due.
        let mut checked = 0;
        for start in 0..14 * 24 {
            let opened = local("2026-12-18T00:00:00") + Duration::hours(start);
            for priority in [Priority::Urgent, Priority::Normal, Priority::Low] {
                let due = calendar.due(opened, priority);
                let mut now = opened;
                while now < due {
                    if calendar.warning_reached(priority, opened, due, now, 800) {
                        assert!(due <= calendar.warning_horizon(now, 800), "{priority:?} opened {opened}, due {due}, at {now}");
                        checked += 1;
                    }
                    now += Duration::hours(1);
                }
            }
        }
        assert!(checked > 1000, "{checked}");
        let now = local("2026-12-07T10:00:00");
        assert!(calendar.warning_horizon(now, 800) < now + Duration::days(3), "a bounded read, not every open case");
    }
}
