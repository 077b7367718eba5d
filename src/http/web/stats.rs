//! `GET /stats`: the statistics of a period (`Cases::period_stats`, as `GET /api/stats?from&to`)
//! for supervisors: a period form, the tables, and `GET /stats.csv` with the same figures as
//! `mailroom stats --csv`. Without the supervise permission (or for a queue not supervised) the
//! 404 page, as the dashboard; a period that is not valid shows the form again with the reason.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use serde::Deserialize;

use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::session::PageSession;
use crate::cases::CaseError;
use crate::cases::dashboard::Volume;
use crate::cases::period::{Period, PeriodStats};
use crate::cases::period_export::to_csv;
use crate::http::HttpContext;

/// Days shown when no period is asked for: the last four weeks, today included.
const DEFAULT_DAYS: i64 = 28;

#[derive(Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    queue: String,
}

#[derive(Template)]
#[template(path = "stats.html")]
pub struct StatsPage {
    pub chrome: Chrome,
    pub from: String,
    pub to: String,
    /// The queue chosen, or empty for all.
    pub filter: String,
    pub supervised: Vec<String>,
    /// Why the period was refused; then there are no figures.
    pub error: Option<String>,
    pub stats: Option<PeriodStats>,
    /// The query string of the CSV link.
    pub query: String,
}

impl StatsPage {
    pub fn hours(&self, value: &Option<f64>) -> String {
        value.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
    }

    /// The volume tables: id, heading key, rows.
    pub fn volumes<'a>(&self, s: &'a PeriodStats) -> [(&'static str, &'static str, &'a [Volume]); 4] {
        [
            ("day", "stats.by_day", &s.by_day),
            ("queue", "stats.by_queue", &s.by_queue),
            ("category", "stats.by_category", &s.by_category),
            ("tier", "stats.by_tier", &s.by_tier),
        ]
    }

    pub fn percent(&self, value: &Option<f64>) -> String {
        value.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The page (or the page to answer with instead) for the session's user.
async fn load(ctx: &HttpContext, session: &PageSession, query: Result<Query<StatsQuery>, QueryRejection>) -> Result<StatsPage, Response> {
    let Ok(Query(StatsQuery { mut from, mut to, queue })) = query else {
        return Err(PageError::new(session.lang, Problem::BadForm).into_response());
    };
    let supervised = ctx.cases.supervised_queues(&session.principal);
    let filter = (!queue.is_empty()).then_some(queue.as_str());
    if supervised.is_empty() || filter.is_some_and(|q| !supervised.iter().any(|s| s == q)) {
        return Err(PageError::new(session.lang, Problem::NotFound).into_response());
    }
    if from.is_empty() && to.is_empty() {
        let today = Utc::now().with_timezone(&ctx.cases.settings().calendar.timezone()).date_naive();
        (from, to) = ((today - Duration::days(DEFAULT_DAYS - 1)).to_string(), today.to_string());
    }
    let query =
        format!("?from={}&to={}{}", encode(&from), encode(&to), filter.map(|q| format!("&queue={}", encode(q))).unwrap_or_default());
    let mut page = StatsPage { chrome: session.chrome(ctx), from, to, filter: queue.clone(), supervised, error: None, stats: None, query };
    match Period::parse(&page.from, &page.to) {
        Err(reason) => page.error = Some(reason),
        Ok(period) => match ctx.cases.period_stats(&session.principal, filter, period).await {
            Ok(stats) => page.stats = Some(stats),
            Err(CaseError::Refused(_)) => return Err(PageError::new(session.lang, Problem::NotFound).into_response()),
            Err(e) => return Err(PageError::internal(session.lang, e).into_response()),
        },
    }
    Ok(page)
}

/// `GET /stats`.
pub async fn show(State(ctx): State<Arc<HttpContext>>, session: PageSession, query: Result<Query<StatsQuery>, QueryRejection>) -> Response {
    match load(&ctx, &session, query).await {
        Ok(page) => render(if page.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, &page),
        Err(answer) => answer,
    }
}

/// `GET /stats.csv`: one figure per row (`section,name,measure,value`).
pub async fn csv(State(ctx): State<Arc<HttpContext>>, session: PageSession, query: Result<Query<StatsQuery>, QueryRejection>) -> Response {
    let page = match load(&ctx, &session, query).await {
        Ok(page) => page,
        Err(answer) => return answer,
    };
    let Some(stats) = &page.stats else {
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let name = format!("attachment; filename=\"stats-{}-{}.csv\"", stats.from, stats.to);
    let disposition = HeaderValue::from_str(&name).expect("dates are ASCII");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8")), (header::CONTENT_DISPOSITION, disposition)],
        to_csv(stats),
    )
        .into_response()
}
