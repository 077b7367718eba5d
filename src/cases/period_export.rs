//! A period's statistics as text for people (`mailroom stats`) and as CSV (`--csv`, the web
//! page's download): the same figures as the JSON, one row per figure.

use std::fmt::Write;

use super::dashboard::Durations;
use super::period::PeriodStats;

/// The CSV header: one figure per row, so every section fits one shape.
pub const CSV_HEADER: [&str; 4] = ["section", "name", "measure", "value"];

fn number(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

fn duration_rows(rows: &mut Vec<[String; 4]>, section: &str, name: &str, d: &Durations) {
    rows.push([section.into(), name.into(), "count".into(), d.count.to_string()]);
    rows.push([section.into(), name.into(), "median_hours".into(), number(d.median_hours)]);
    rows.push([section.into(), name.into(), "p90_hours".into(), number(d.p90_hours)]);
}

/// Every figure as (section, name, measure, value); an empty value is null (no data).
pub fn rows(s: &PeriodStats) -> Vec<[String; 4]> {
    let mut rows = vec![
        ["period".into(), "from".into(), "date".into(), s.from.clone()],
        ["period".into(), "to".into(), "date".into(), s.to.clone()],
        ["period".into(), "timezone".into(), "name".into(), s.timezone.clone()],
        ["period".into(), "all".into(), "cases".into(), s.cases.to_string()],
        ["period".into(), "all".into(), "truncated".into(), s.truncated.to_string()],
    ];
    for (section, list) in [("day", &s.by_day), ("queue", &s.by_queue), ("category", &s.by_category), ("tier", &s.by_tier)] {
        rows.extend(list.iter().map(|v| [section.into(), v.name.clone(), "cases".into(), v.cases.to_string()]));
    }
    duration_rows(&mut rows, "first_response", "all", &s.first_response);
    duration_rows(&mut rows, "resolution", "all", &s.resolution);
    for (measure, value) in [("met", s.sla.met), ("breached", s.sla.breached), ("pending", s.sla.pending)] {
        rows.push(["sla".into(), "all".into(), measure.into(), value.to_string()]);
    }
    rows.push(["sla".into(), "all".into(), "met_percent".into(), s.sla.met_percent.map(|p| format!("{p:.1}")).unwrap_or_default()]);
    for a in &s.agents {
        rows.push(["agent".into(), a.agent.clone(), "cases_handled".into(), a.cases_handled.to_string()]);
        rows.push(["agent".into(), a.agent.clone(), "replies".into(), a.replies.to_string()]);
        duration_rows(&mut rows, "agent_first_response", &a.agent, &a.first_response);
    }
    rows
}

/// [`rows`] as CSV with [`CSV_HEADER`] (RFC 4180 quoting by the csv crate).
pub fn to_csv(s: &PeriodStats) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER).expect("in memory");
    for row in rows(s) {
        writer.write_record(&row).expect("in memory");
    }
    String::from_utf8(writer.into_inner().expect("in memory")).expect("csv of strings is UTF-8")
}

fn hours(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// A readable report: the period, the volumes, the times in working hours, SLA and agents.
pub fn to_table(s: &PeriodStats) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Statistics {} to {} (days in {}), queues: {}", s.from, s.to, s.timezone, s.queues.join(", "));
    let _ = writeln!(out, "Cases opened: {}{}", s.cases, if s.truncated { " (truncated: more cases than counted)" } else { "" });
    for (title, list) in [("By day", &s.by_day), ("By queue", &s.by_queue), ("By category", &s.by_category), ("By tier", &s.by_tier)] {
        let _ = writeln!(out, "\n{title}");
        let width = list.iter().map(|v| v.name.chars().count()).max().unwrap_or(0).max(10);
        for v in list {
            let _ = writeln!(out, "  {:<width$}  {:>6}", v.name, v.cases);
        }
    }
    let _ = writeln!(out, "\nWorking hours            count  median     p90");
    for (title, d) in [("First response", &s.first_response), ("Resolution", &s.resolution)] {
        let _ = writeln!(out, "  {:<22} {:>5}  {:>6}  {:>6}", title, d.count, hours(d.median_hours), hours(d.p90_hours));
    }
    let percent = s.sla.met_percent.map(|p| format!("{p:.1}%")).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "\nSLA (first response by the due time)\n  met {}  breached {}  pending {}  met {}",
        s.sla.met, s.sla.breached, s.sla.pending, percent
    );
    let _ = writeln!(out, "\nAgents");
    if s.agents.is_empty() {
        let _ = writeln!(out, "  (no replies)");
    } else {
        let width = s.agents.iter().map(|a| a.agent.chars().count()).max().unwrap_or(0).max(10);
        let _ = writeln!(out, "  {:<width$}  {:>5}  {:>7}  {:>6}  {:>14}", "agent", "cases", "replies", "firsts", "median first h");
        for a in &s.agents {
            let _ = writeln!(
                out,
                "  {:<width$}  {:>5}  {:>7}  {:>6}  {:>14}",
                a.agent,
                a.cases_handled,
                a.replies,
                a.first_response.count,
                hours(a.first_response.median_hours)
            );
        }
    }
    out
}
