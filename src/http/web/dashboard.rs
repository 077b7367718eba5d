//! `GET /dashboard`: the supervisors' dashboard (`Cases::dashboard`, as `GET /api/stats/dashboard`)
//! over the queues I supervise or the one chosen; each chart an SVG drawn here (`chart`) with its
//! data table beside it, and the same rows as CSV at `GET /dashboard/{chart}.csv`. Without the
//! supervise permission (or for a queue I do not supervise) the 404 page, as for anything else
//! one may not see.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chart::{BarChart, Group, format_value};
use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::queue::tier_key;
use super::session::PageSession;
use crate::cases::CaseError;
use crate::cases::dashboard::{Dashboard, Durations, Volume};
use crate::http::HttpContext;

/// The charts, in page order: the name is the chart's id and its CSV's file name.
pub const CHARTS: [&str; 6] = ["backlog", "flow", "times", "sla", "category", "tier"];

#[derive(Deserialize)]
pub struct DashboardQuery {
    #[serde(default)]
    queue: String,
}

/// A row of a volume table: the name as shown and the count.
pub struct VolumeRow {
    pub name: String,
    /// The code as stored (`none`, `vip`, a category code), for the CSV and tests.
    pub code: String,
    pub cases: i64,
}

/// A drawn chart and what the page says around it.
pub struct ChartView {
    pub id: &'static str,
    pub heading: String,
    pub svg: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    pub chrome: Chrome,
    pub d: Dashboard,
    /// The queue chosen, or empty for all.
    pub filter: String,
    /// `?queue=…` for the CSV links, or empty.
    pub query: String,
    pub categories: Vec<VolumeRow>,
    pub tiers: Vec<VolumeRow>,
    pub charts: Vec<ChartView>,
}

impl DashboardPage {
    pub fn chart(&self, id: &str) -> &ChartView {
        self.charts.iter().find(|c| c.id == id).expect("every chart is drawn")
    }

    pub fn hours(&self, value: &Option<f64>) -> String {
        value.map(format_value).unwrap_or_else(|| "–".into())
    }
}

/// The dashboard for the session's user, or the page to answer with instead.
async fn load(
    ctx: &HttpContext,
    session: &PageSession,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Result<(Dashboard, String), Response> {
    let Ok(Query(DashboardQuery { queue })) = query else {
        return Err(PageError::new(session.lang, Problem::BadForm).into_response());
    };
    let filter = (!queue.is_empty()).then_some(queue.as_str());
    match ctx.cases.dashboard(&session.principal, filter).await {
        Ok(d) => Ok((d, queue)),
        // No supervise permission, or not on that queue: as if there were no such page.
        Err(CaseError::Refused(_)) => Err(PageError::new(session.lang, Problem::NotFound).into_response()),
        Err(e) => Err(PageError::internal(session.lang, e).into_response()),
    }
}

fn volume_rows(list: &[Volume], name: impl Fn(&str) -> String) -> Vec<VolumeRow> {
    list.iter().map(|v| VolumeRow { name: name(&v.name), code: v.name.clone(), cases: v.cases }).collect()
}

fn draw(
    chrome: &Chrome,
    id: &'static str,
    heading_key: &str,
    series: &[&str],
    groups: Vec<Group>,
    max: Option<f64>,
    unit: &'static str,
) -> ChartView {
    let heading = chrome.t(heading_key).to_string();
    let chart = BarChart {
        id,
        title: heading.clone(),
        desc: chrome.fill("dashboard.chart_desc", &[("what", &heading)]),
        series: series.iter().map(|key| chrome.t(key).to_string()).collect(),
        groups,
        max,
        unit,
        empty: chrome.t("dashboard.no_data").to_string(),
    };
    ChartView { id, heading, svg: chart.svg() }
}

fn count(n: i64) -> Option<f64> {
    Some(n as f64)
}

fn charts(chrome: &Chrome, d: &Dashboard, categories: &[VolumeRow], tiers: &[VolumeRow]) -> Vec<ChartView> {
    let times = |label: &str, t: &Durations| Group { label: chrome.t(label).into(), values: vec![t.median_hours, t.p90_hours] };
    let volume = |rows: &[VolumeRow]| rows.iter().map(|r| Group { label: r.name.clone(), values: vec![count(r.cases)] }).collect();
    vec![
        draw(
            chrome,
            "backlog",
            "dashboard.backlog",
            &["dashboard.open", "dashboard.waiting", "dashboard.unassigned"],
            d.backlog
                .iter()
                .map(|b| Group { label: b.queue.clone(), values: vec![count(b.open), count(b.waiting), count(b.unassigned)] })
                .collect(),
            None,
            "",
        ),
        draw(
            chrome,
            "flow",
            "dashboard.flow",
            &["dashboard.new", "dashboard.resolved"],
            d.flow.iter().map(|f| Group { label: f.day.clone(), values: vec![count(f.opened), count(f.resolved)] }).collect(),
            None,
            "",
        ),
        draw(
            chrome,
            "times",
            "dashboard.times",
            &["dashboard.median", "dashboard.p90"],
            vec![times("dashboard.first_response", &d.first_response), times("dashboard.resolution", &d.resolution)],
            None,
            " h",
        ),
        draw(
            chrome,
            "sla",
            "dashboard.sla",
            &["dashboard.met_percent"],
            d.sla.iter().map(|w| Group { label: w.week.clone(), values: vec![w.met_percent] }).collect(),
            Some(100.0),
            "%",
        ),
        draw(chrome, "category", "dashboard.category", &["dashboard.cases"], volume(categories), None, ""),
        draw(chrome, "tier", "dashboard.tier", &["dashboard.cases"], volume(tiers), None, ""),
    ]
}

fn page(ctx: &HttpContext, chrome: Chrome, d: Dashboard, filter: String) -> DashboardPage {
    let settings = ctx.cases.settings();
    let none = chrome.t("dashboard.none").to_string();
    let categories = volume_rows(&d.by_category, |code| match settings.categories.iter().find(|c| c.code == code) {
        Some(c) => format!("{} {}", c.code, c.name),
        None if code == "none" => none.clone(),
        None => code.to_string(),
    });
    let tiers = volume_rows(&d.by_tier, |tier| {
        tier_key(tier).map_or_else(|| if tier == "none" { none.clone() } else { tier.to_string() }, |k| chrome.t(k).into())
    });
    let query = if filter.is_empty() { String::new() } else { format!("?queue={}", urlencoding(&filter)) };
    let charts = charts(&chrome, &d, &categories, &tiers);
    DashboardPage { chrome, d, filter, query, categories, tiers, charts }
}

/// Percent-encodes everything but unreserved characters (a queue name in a query string).
fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// `GET /dashboard`.
pub async fn show(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let (d, filter) = match load(&ctx, &session, query).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    render(StatusCode::OK, &page(&ctx, session.chrome(&ctx), d, filter))
}

/// `GET /dashboard/{chart}.csv`: the rows of one chart's table.
pub async fn csv(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path(file): Path<String>,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let Some(chart) = file.strip_suffix(".csv").and_then(|name| CHARTS.iter().find(|c| **c == name)) else {
        return PageError::new(session.lang, Problem::NotFound).into_response();
    };
    let (d, filter) = match load(&ctx, &session, query).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    let view = page(&ctx, session.chrome(&ctx), d, filter);
    let body = table_csv(&view, chart);
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"dashboard-{chart}.csv\"")).expect("a chart name is ASCII");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")), (header::CONTENT_DISPOSITION, disposition)],
        body,
    )
        .into_response()
}

/// One CSV field: quoted when it has to be; a leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so a spreadsheet does not run it as a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

fn opt(value: Option<f64>) -> String {
    value.map(format_value).unwrap_or_default()
}

/// The CSV of one chart's table: a header line, then one line per row (CRLF, as RFC 4180).
pub fn table_csv(view: &DashboardPage, chart: &str) -> String {
    let d = &view.d;
    let mut lines: Vec<Vec<String>> = Vec::new();
    match chart {
        "backlog" => {
            lines.push(["queue", "open", "unassigned", "waiting", "overdue", "due_soon"].map(String::from).to_vec());
            for b in &d.backlog {
                lines.push(vec![
                    b.queue.clone(),
                    b.open.to_string(),
                    b.unassigned.to_string(),
                    b.waiting.to_string(),
                    b.overdue.to_string(),
                    b.due_soon.to_string(),
                ]);
            }
        }
        "flow" => {
            lines.push(["day", "new", "resolved"].map(String::from).to_vec());
            for f in &d.flow {
                lines.push(vec![f.day.clone(), f.opened.to_string(), f.resolved.to_string()]);
            }
        }
        "times" => {
            lines.push(["measure", "cases", "median_hours", "p90_hours"].map(String::from).to_vec());
            for (name, t) in [("first_response", &d.first_response), ("resolution", &d.resolution)] {
                lines.push(vec![name.to_string(), t.count.to_string(), opt(t.median_hours), opt(t.p90_hours)]);
            }
        }
        "sla" => {
            lines.push(["week", "met", "missed", "met_percent"].map(String::from).to_vec());
            for w in &d.sla {
                lines.push(vec![w.week.clone(), w.met.to_string(), w.missed.to_string(), opt(w.met_percent)]);
            }
        }
        "category" | "tier" => {
            lines.push(vec![chart.to_string(), "cases".to_string()]);
            for r in if chart == "category" { &view.categories } else { &view.tiers } {
                lines.push(vec![r.code.clone(), r.cases.to_string()]);
            }
        }
        _ => {}
    }
    lines.iter().map(|line| line.iter().map(|f| field(f)).collect::<Vec<_>>().join(",") + "\r\n").collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::dashboard::{Backlog, DayFlow, WeekSla};
    use crate::http::web::i18n::Lang;

    fn sample() -> Dashboard {
        let b = Backlog { queue: "support".into(), open: 5, unassigned: 3, waiting: 2, overdue: 1, due_soon: 4 };
        Dashboard {
            generated_at: "2026-11-30T06:00:00.000Z".into(),
            queues: vec!["support".into()],
            supervised: vec!["support".into(), "a b".into()],
            backlog: vec![b],
            overdue: 1,
            due_soon: 4,
            flow: vec![
                DayFlow { day: "2026-11-29".into(), opened: 0, resolved: 0 },
                DayFlow { day: "2026-11-30".into(), opened: 7, resolved: 2 },
            ],
            first_response: Durations { count: 3, median_hours: Some(1.5), p90_hours: Some(4.0) },
            resolution: Durations { count: 0, median_hours: None, p90_hours: None },
            sla: vec![WeekSla { week: "2026-W49".into(), met: 3, missed: 1, met_percent: Some(75.0) }],
            by_category: vec![Volume { name: "none".into(), cases: 7 }],
            by_tier: vec![Volume { name: "vip".into(), cases: 2 }, Volume { name: "none".into(), cases: 5 }],
        }
    }

    fn render_in(lang: Lang) -> (String, DashboardPage) {
        let chrome = Chrome::logged_in(lang, "sam".into(), "TOKEN".into()).supervising(true);
        let d = sample();
        let categories = volume_rows(&d.by_category, str::to_string);
        let tiers = volume_rows(&d.by_tier, |t| tier_key(t).map_or(t.to_string(), |k| chrome.t(k).to_string()));
        let charts = charts(&chrome, &d, &categories, &tiers);
        let page = DashboardPage { chrome, d, filter: "a b".into(), query: "?queue=a%20b".into(), categories, tiers, charts };
        (page.render().unwrap(), page)
    }

    #[test]
    fn the_page_has_every_chart_beside_its_table_in_every_language() {
        for lang in Lang::ALL {
            let (html, _) = render_in(lang);
            assert!(html.contains(&format!("<html lang=\"{}\">", lang.tag())), "{html}");
            assert!(html.contains("<a href=\"/dashboard\">"), "the header links the dashboard");
            assert_eq!(html.matches("<svg ").count(), CHARTS.len());
            for chart in CHARTS {
                assert!(html.contains(&format!("data-table=\"{chart}\"")) && html.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
                assert!(html.contains(&format!("href=\"/dashboard/{chart}.csv?queue=a%20b\"")), "{chart}: CSV keeps the filter");
            }
            assert!(html.contains("<option value=\"a b\" selected>"), "{html}");
            assert!(html.contains("data-figure=\"overdue\">1</dd>") && html.contains("data-figure=\"due-soon\">4</dd>"));
        }
        let (en, _) = render_in(Lang::En);
        assert!(en.contains("<th scope=\"row\">VIP</th>"), "tiers are named through the catalog");
        assert!(en.contains(">75%</text>") && en.contains("data-col=\"met_percent\">75</td>"), "{en}");
    }

    #[test]
    fn each_csv_has_a_header_and_the_rows_of_its_table() {
        let (_, page) = render_in(Lang::Ru);
        assert_eq!(table_csv(&page, "backlog"), "queue,open,unassigned,waiting,overdue,due_soon\r\nsupport,5,3,2,1,4\r\n");
        assert_eq!(table_csv(&page, "flow"), "day,new,resolved\r\n2026-11-29,0,0\r\n2026-11-30,7,2\r\n");
        assert_eq!(table_csv(&page, "times"), "measure,cases,median_hours,p90_hours\r\nfirst_response,3,1.5,4\r\nresolution,0,,\r\n");
        assert_eq!(table_csv(&page, "sla"), "week,met,missed,met_percent\r\n2026-W49,3,1,75\r\n");
        assert_eq!(table_csv(&page, "tier"), "tier,cases\r\nvip,2\r\nnone,5\r\n", "codes, not the translated names");
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(field("support"), "support");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(field("-1"), "'-1");
    }

    #[test]
    fn queue_names_are_encoded_for_the_query_string() {
        assert_eq!(urlencoding("a b&c"), "a%20b%26c");
        assert_eq!(urlencoding("support-2"), "support-2");
    }
}
