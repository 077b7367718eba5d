//! The SLA line of the case page, computed on the server in the reader's language: "due Thu 14:00,
//! in 1 working day" (more than a day ahead: local time of the case's calendar, working days by
//! its working days and holidays), "due in 3 h" (within a day), "overdue by 3 h", "paused —
//! waiting on the customer", "resolved". The text never relies on colour.

use chrono::{DateTime, Datelike, Utc};

use super::chrome::Chrome;
use crate::intake::sla::Calendar;
use crate::store::cases::CaseRow;
use crate::store::millis_to_rfc3339;

/// The line, with the due time for a `<time datetime>` element when there is one.
pub struct SlaLine {
    pub text: String,
    pub datetime: Option<String>,
    /// The due time has passed (a class for the eye; the text says it too).
    pub overdue: bool,
}

const WEEKDAYS: [&str; 7] = ["weekday.mon", "weekday.tue", "weekday.wed", "weekday.thu", "weekday.fri", "weekday.sat", "weekday.sun"];

const DAY_MS: i64 = 24 * 3_600_000;

pub fn sla_line(chrome: &Chrome, calendar: &Calendar, case: &CaseRow, now: i64) -> SlaLine {
    let plain = |key: &str| SlaLine { text: chrome.t(key).to_string(), datetime: None, overdue: false };
    match case.status.as_str() {
        "waiting" => return plain("case.sla_waiting"),
        "resolved" => return plain("case.sla_resolved"),
        "closed" => return plain("case.sla_closed"),
        _ => {}
    }
    let Some(due_at) = case.due_at else { return plain("case.sla_none") };
    let datetime = Some(millis_to_rfc3339(due_at));
    if due_at < now {
        let text = chrome.fill("case.sla_overdue", &[("time", &super::queue::span(chrome, now - due_at))]);
        return SlaLine { text, datetime, overdue: true };
    }
    if due_at - now < DAY_MS {
        let text = chrome.fill("case.sla_due_in", &[("time", &super::queue::span(chrome, due_at - now))]);
        return SlaLine { text, datetime, overdue: false };
    }
    let (Some(due), Some(at)) = (DateTime::<Utc>::from_timestamp_millis(due_at), DateTime::<Utc>::from_timestamp_millis(now)) else {
        return plain("case.sla_none");
    };
    let local = due.with_timezone(&calendar.timezone());
    // Within a week the weekday names the day; further out the date does.
    let day = if due_at - now < 6 * DAY_MS {
        chrome.t(WEEKDAYS[local.weekday().num_days_from_monday() as usize]).to_string()
    } else {
        local.format("%Y-%m-%d").to_string()
    };
    let when = format!("{day} {}", local.format("%H:%M"));
    let days = calendar.working_days_until(at, due).to_string();
    let key = if days == "1" { "case.sla_due_on_one" } else { "case.sla_due_on" };
    let text = chrome.fill(key, &[("when", &when), ("days", &days)]);
    SlaLine { text, datetime, overdue: false }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn case(status: &str, due_at: Option<i64>) -> CaseRow {
        CaseRow {
            id: 1,
            opening: "MR-1".into(),
            queue: "support".into(),
            status: status.into(),
            priority: "normal".into(),
            category: None,
            tags: vec![],
            due_at,
            opened_at: 0,
            updated_at: 0,
            assignee_id: None,
            assignee: None,
            escalated: false,
            spam: false,
            follow_up_at: None,
            first_response_at: None,
            resolved_at: None,
            tier: None,
        }
    }

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis()
    }

    #[test]
    fn the_sla_line_reads_as_a_person_would_say_it() {
        let calendar = Calendar::default();
        let en = Chrome::logged_in(Lang::En, "anna".into(), "T".into());
        // Wednesday 2026-12-02 10:00 UTC.
        let now = ms("2026-12-02T10:00:00Z");
        let line = |status: &str, due: Option<&str>| sla_line(&en, &calendar, &case(status, due.map(ms)), now).text;
        assert_eq!(line("open", Some("2026-12-03T14:00:00Z")), "due Thu 14:00, in 1 working day");
        assert_eq!(line("open", Some("2026-12-02T13:00:00Z")), "due in 3 h");
        assert_eq!(line("new", Some("2026-12-02T07:00:00Z")), "overdue by 3 h");
        assert_eq!(line("waiting", Some("2026-12-02T07:00:00Z")), "paused — waiting on the customer");
        assert_eq!(line("resolved", Some("2026-12-02T07:00:00Z")), "resolved");
        assert_eq!(line("open", Some("2026-12-14T09:00:00Z")), "due 2026-12-14 09:00, in 8 working days");
        let full = sla_line(&en, &calendar, &case("open", Some(ms("2026-12-03T14:00:00Z"))), now);
        assert_eq!(full.datetime.as_deref(), Some("2026-12-03T14:00:00.000Z"));
        let ru = Chrome::logged_in(Lang::Ru, "anna".into(), "T".into());
        let zh = Chrome::logged_in(Lang::ZhCn, "anna".into(), "T".into());
        let due = case("open", Some(ms("2026-12-03T14:00:00Z")));
        assert!(sla_line(&ru, &calendar, &due, now).text.contains("чт 14:00"));
        assert!(sla_line(&zh, &calendar, &due, now).text.contains("周四 14:00"));
    }
}
