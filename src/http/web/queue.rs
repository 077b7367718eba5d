//! `GET /queues/{queue}`: a queue's cases (`Cases::list`, the API's filters and sorts), sorted by
//! due time unless asked otherwise, paged by cursor. The filter form is a plain GET form; htmx
//! (`HX-Request`) gets only the `rows` block of the same template. An unknown queue and one the
//! user may not read get the same 404 page, as in the API.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::bulk::BulkResult;
use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::presence::{Colleague, colleagues};
use super::session::PageSession;
use crate::cases::CaseError;
use crate::cases::queues::{CaseList, ListRequest, ListedCase};
use crate::http::HttpContext;
use crate::store::cases::Sort;
use crate::store::{millis_to_rfc3339, now_millis};

/// The filter form's fields as the browser sends them: an empty field means "any".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub assignee: String,
    /// `yes`, `no`, or empty.
    #[serde(default)]
    pub overdue: String,
    #[serde(default)]
    pub sort: String,
    /// Cases per page (not in the form; the API's `limit`, for a link or a test).
    #[serde(default)]
    pub limit: String,
    #[serde(default)]
    pub cursor: String,
}

fn given(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

impl Filters {
    /// The API's listing request; the one thing the form says differently is `overdue`.
    fn request(&self) -> Result<ListRequest, String> {
        let overdue = match self.overdue.trim() {
            "" => None,
            "yes" => Some(true),
            "no" => Some(false),
            other => return Err(format!("overdue must be yes or no, not {other:?}")),
        };
        let limit = match given(&self.limit) {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| format!("limit must be a whole number, not {text:?}"))?),
        };
        Ok(ListRequest {
            status: given(&self.status),
            priority: given(&self.priority),
            category: given(&self.category),
            overdue,
            tag: given(&self.tag),
            assignee: given(&self.assignee),
            sort: given(&self.sort),
            cursor: given(&self.cursor),
            limit,
            ..ListRequest::default()
        })
    }

    /// The filters (no cursor) as name and value, for the bulk form to bring back.
    pub fn kept(&self) -> Vec<(&'static str, &str)> {
        let pairs = [
            ("status", &self.status),
            ("priority", &self.priority),
            ("category", &self.category),
            ("tag", &self.tag),
            ("assignee", &self.assignee),
            ("overdue", &self.overdue),
            ("sort", &self.sort),
            ("limit", &self.limit),
        ];
        pairs.into_iter().filter(|(_, value)| !value.trim().is_empty()).map(|(name, value)| (name, value.as_str())).collect()
    }

    /// The filters the bulk form kept (`keep_status`, …): the list after the action shows the same.
    pub fn from_kept(form: &std::collections::HashMap<String, String>) -> Filters {
        let kept = |name: &str| form.get(&format!("keep_{name}")).cloned().unwrap_or_default();
        Filters {
            status: kept("status"),
            priority: kept("priority"),
            category: kept("category"),
            tag: kept("tag"),
            assignee: kept("assignee"),
            overdue: kept("overdue"),
            sort: kept("sort"),
            limit: kept("limit"),
            cursor: String::new(),
        }
    }

    /// The query string of these filters (no cursor): the list again, from its first page.
    pub fn first_page(&self) -> String {
        self.kept().into_iter().map(|(name, value)| format!("{name}={}", encode(value.trim()))).collect::<Vec<_>>().join("&")
    }

    /// The query string of the next page: these filters and `cursor`.
    fn next_page(&self, cursor: &str) -> String {
        let mut query: Vec<String> = self.kept().into_iter().map(|(name, value)| format!("{name}={}", encode(value.trim()))).collect();
        query.push(format!("cursor={}", encode(cursor)));
        query.join("&")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// A choice of a `<select>`: its value and catalog key.
pub struct Choice {
    pub value: &'static str,
    pub key: &'static str,
}

const fn choice(value: &'static str, key: &'static str) -> Choice {
    Choice { value, key }
}

pub const STATUS_CHOICES: [Choice; 7] = [
    choice("", "queue.status_active"),
    choice("all", "queue.status_all"),
    choice("new", "status.new"),
    choice("open", "status.open"),
    choice("waiting", "status.waiting"),
    choice("resolved", "status.resolved"),
    choice("closed", "status.closed"),
];
pub const PRIORITY_CHOICES: [Choice; 4] =
    [choice("", "queue.any"), choice("urgent", "priority.urgent"), choice("normal", "priority.normal"), choice("low", "priority.low")];
pub const OVERDUE_CHOICES: [Choice; 3] = [choice("", "queue.any"), choice("yes", "queue.overdue_yes"), choice("no", "queue.overdue_no")];
pub const SORT_CHOICES: [Choice; 8] = [
    choice("due", "sort.due"),
    choice("-due", "sort.due_desc"),
    choice("priority", "sort.priority"),
    choice("-priority", "sort.priority_desc"),
    choice("opened", "sort.opened"),
    choice("-opened", "sort.opened_desc"),
    choice("updated", "sort.updated"),
    choice("-updated", "sort.updated_desc"),
];

/// One row of the table, every value ready to show.
pub struct Row {
    pub id: i64,
    pub number: String,
    pub due: Option<Due>,
    /// Catalog keys: `priority.urgent`, `status.open`, ….
    pub priority_key: String,
    pub category_code: Option<String>,
    /// The configured name of the category (empty for a code no longer configured).
    pub category_name: String,
    pub customer_name: Option<String>,
    pub customer_address: Option<String>,
    /// Catalog key of the customer's tier badge (`tier.vip`, …), when the case has a tier.
    pub tier_key: Option<&'static str>,
    pub subject: Option<String>,
    pub status_key: String,
    pub assignee: Option<String>,
    /// Colleagues viewing or replying to it now ("viewing: olga").
    pub present: Vec<Colleague>,
}

/// A due time as text relative to now and as a machine-readable `<time datetime>`.
pub struct Due {
    pub datetime: String,
    pub overdue: bool,
    /// "in 3 h" / "overdue by 2 h", in the page's language.
    pub text: String,
}

/// `{n} min` / `{n} h` / `{n} d`, rounded down, at least one minute.
pub fn span(chrome: &Chrome, ms: i64) -> String {
    let minutes = (ms / 60_000).max(1);
    let (key, n) = match minutes {
        m if m < 60 => ("unit.minutes", m),
        m if m < 48 * 60 => ("unit.hours", m / 60),
        m => ("unit.days", m / (24 * 60)),
    };
    chrome.fill(key, &[("n", &n.to_string())])
}

pub fn due(chrome: &Chrome, due_at: i64, now: i64) -> Due {
    let overdue = due_at < now;
    let key = if overdue { "queue.overdue_by" } else { "queue.due_in" };
    let text = chrome.fill(key, &[("time", &span(chrome, (due_at - now).abs()))]);
    Due { datetime: millis_to_rfc3339(due_at), overdue, text }
}

/// The catalog key of a directory tier's badge.
pub fn tier_key(tier: &str) -> Option<&'static str> {
    match tier {
        "vip" => Some("tier.vip"),
        "long-term" => Some("tier.long_term"),
        "prospect" => Some("tier.prospect"),
        _ => None,
    }
}

fn row(chrome: &Chrome, ctx: &HttpContext, item: ListedCase, now: i64) -> Row {
    let case = item.case;
    let category_name = case
        .category
        .as_ref()
        .and_then(|code| ctx.cases.settings().categories.iter().find(|c| &c.code == code).map(|c| c.name.clone()))
        .unwrap_or_default();
    let from = item.from;
    Row {
        id: case.id,
        number: case.opening,
        // A case whose clock is stopped (waiting, resolved) is not overdue, whatever its due time.
        due: case.due_at.filter(|_| matches!(case.status.as_str(), "new" | "open")).map(|at| due(chrome, at, now)),
        priority_key: format!("priority.{}", case.priority),
        category_code: case.category,
        category_name,
        customer_name: from.as_ref().and_then(|m| m.name.clone()).filter(|n| !n.trim().is_empty()),
        customer_address: from.and_then(|m| m.address),
        tier_key: case.tier.as_deref().and_then(tier_key),
        subject: item.subject,
        status_key: format!("status.{}", case.status),
        assignee: case.assignee,
        present: Vec::new(),
    }
}

/// What the list shows besides the frame.
pub struct QueueView {
    pub queue: String,
    pub filters: Filters,
    pub sort: String,
    /// Why the filters were not accepted; then there are no rows.
    pub invalid: Option<String>,
    pub rows: Vec<Row>,
    /// The query string of the next page.
    pub next: Option<String>,
    pub categories: Vec<(String, String)>,
    /// Other queues, for "transfer".
    pub other_queues: Vec<String>,
    pub results: Vec<BulkResult>,
    /// Catalog key of why a bulk action did nothing at all.
    pub bulk_problem: Option<&'static str>,
    /// When the list was read (unix ms): the "N new — refresh" poll counts cases opened after it.
    pub since: i64,
    /// Seconds between those polls (`[http] new_cases_poll`).
    pub poll: u64,
}

impl QueueView {
    pub fn status_choices(&self) -> &'static [Choice] {
        &STATUS_CHOICES
    }
    pub fn priority_choices(&self) -> &'static [Choice] {
        &PRIORITY_CHOICES
    }
    pub fn overdue_choices(&self) -> &'static [Choice] {
        &OVERDUE_CHOICES
    }
    pub fn sort_choices(&self) -> &'static [Choice] {
        &SORT_CHOICES
    }
}

#[derive(Template)]
#[template(path = "queue.html")]
pub struct QueuePage {
    pub chrome: Chrome,
    pub view: QueueView,
}

/// The table and the paging link alone, for htmx.
#[derive(Template)]
#[template(path = "queue.html", block = "rows")]
pub struct QueueRows {
    pub chrome: Chrome,
    pub view: QueueView,
}

/// Whether `queue` is configured and the user may read it (otherwise: 404, as the API).
pub fn readable(ctx: &HttpContext, session: &PageSession, queue: &str) -> bool {
    ctx.cases.settings().queues.iter().any(|q| q.name == queue) && session.principal.can(queue, crate::access::Permission::Read)
}

/// The list of `queue` under `filters`, with the results of a bulk action above it. `Err` is
/// the page to answer with instead (404 for a queue the user may not read, 500).
pub async fn build(
    ctx: &HttpContext,
    session: &PageSession,
    queue: &str,
    filters: Filters,
    results: Vec<BulkResult>,
) -> Result<(StatusCode, Chrome, QueueView), Response> {
    let chrome = session.chrome(ctx);
    let settings = ctx.cases.settings();
    let listed = match filters.request() {
        Ok(request) => ctx.cases.list(&session.principal, queue, request).await.map_err(|e| match e {
            CaseError::Invalid(reason) => Ok(reason),
            other => Err(other),
        }),
        Err(reason) => {
            // Still a 404 for a queue the user may not read, before telling what was wrong.
            if !readable(ctx, session, queue) { Err(Err(CaseError::NoSuchQueue(queue.to_string()))) } else { Err(Ok(reason)) }
        }
    };
    let (status, invalid, list) = match listed {
        Ok(list) => (StatusCode::OK, None, Some(list)),
        Err(Ok(reason)) => (StatusCode::UNPROCESSABLE_ENTITY, Some(reason), None),
        Err(Err(CaseError::NoSuchQueue(_))) => return Err(PageError::new(session.lang, Problem::NotFound).into_response()),
        Err(Err(e)) => return Err(PageError::internal(session.lang, e).into_response()),
    };
    let (mut rows, next, sort, since) = match list {
        Some(CaseList { items, next_cursor, now, sort, .. }) => {
            let rows: Vec<Row> = items.into_iter().map(|item| row(&chrome, ctx, item, now)).collect();
            (rows, next_cursor.map(|c| filters.next_page(&c)), sort, now)
        }
        None => (Vec::new(), None, Sort::default().name(), now_millis()),
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut present = ctx.cases.present(&session.principal, &ids);
    for r in &mut rows {
        r.present = colleagues(present.remove(&r.id).unwrap_or_default());
    }
    let view = QueueView {
        queue: queue.to_string(),
        sort,
        invalid,
        rows,
        next,
        categories: settings.categories.iter().map(|c| (c.code.clone(), c.name.clone())).collect(),
        other_queues: settings.queues.iter().map(|q| q.name.clone()).filter(|q| q != queue).collect(),
        results,
        bulk_problem: None,
        filters,
        since,
        poll: ctx.settings.http.new_cases_poll.as_secs().max(1),
    };
    Ok((status, chrome, view))
}

/// `GET /queues/{queue}`.
pub async fn list(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path(queue): Path<String>,
    headers: HeaderMap,
    filters: Result<Query<Filters>, QueryRejection>,
) -> Response {
    // A query string that is not even a form (`?status=%ff`) is a bad request, shown as a page.
    let Ok(Query(filters)) = filters else { return PageError::new(session.lang, Problem::BadForm).into_response() };
    match build(&ctx, &session, &queue, filters, Vec::new()).await {
        // htmx swaps no 4xx answer by default: the rows with the reason come as 200 so it shows them.
        Ok((_, chrome, view)) if headers.contains_key("hx-request") => render(StatusCode::OK, &QueueRows { chrome, view }),
        Ok((status, chrome, view)) => render(status, &QueuePage { chrome, view }),
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn due_times_read_as_text_relative_to_now() {
        let chrome = Chrome::logged_in(Lang::En, "anna".into(), "T".into());
        let hour = 3_600_000;
        let now = 1_800_000_000_000;
        assert_eq!(due(&chrome, now + 3 * hour + 5, now).text, "in 3 h");
        let late = due(&chrome, now - 2 * hour, now);
        assert_eq!((late.text.as_str(), late.overdue), ("overdue by 2 h", true));
        assert_eq!(due(&chrome, now + 30 * 60_000, now).text, "in 30 min");
        assert_eq!(due(&chrome, now + 72 * hour, now).text, "in 3 d");
        assert_eq!(due(&chrome, now, now).text, "in 1 min");
        assert_eq!(late.datetime, "2027-01-15T06:00:00.000Z");
        let ru = Chrome::logged_in(Lang::Ru, "anna".into(), "T".into());
        assert_eq!(due(&ru, now - 2 * hour, now).text, "просрочено на 2 ч");
    }

    #[test]
    fn every_choice_status_and_priority_has_its_text_in_every_language() {
        let keys = STATUS_CHOICES.iter().chain(&PRIORITY_CHOICES).chain(&OVERDUE_CHOICES).chain(&SORT_CHOICES).map(|c| c.key.to_string());
        let states = crate::store::cases::STATUSES.iter().map(|s| format!("status.{s}"));
        let priorities = crate::store::cases::PRIORITIES.iter().map(|p| format!("priority.{p}"));
        let bulk = ["bulk.needs_value", "bulk.no_action", "bulk.none_ticked", "bulk.too_many"].map(String::from);
        for key in keys.chain(states).chain(priorities).chain(bulk) {
            for lang in Lang::ALL {
                assert_ne!(lang.catalog().get(&key), key, "{}: no message {key}", lang.tag());
            }
        }
    }

    fn view(rows: Vec<Row>) -> QueueView {
        QueueView {
            queue: "support".into(),
            filters: Filters::default(),
            sort: "due".into(),
            invalid: None,
            rows,
            next: Some("cursor=AB".into()),
            categories: vec![("BIL".into(), "Billing".into())],
            other_queues: vec!["sales".into()],
            results: Vec::new(),
            bulk_problem: None,
            since: 1_800_000_000_000,
            poll: 30,
        }
    }

    fn sample() -> Row {
        let chrome = Chrome::logged_in(Lang::En, "anna".into(), "T".into());
        Row {
            id: 7,
            number: "MR-2026-000007-3".into(),
            due: Some(due(&chrome, 10 * 3_600_000, 13 * 3_600_000)),
            priority_key: "priority.urgent".into(),
            category_code: Some("BIL".into()),
            category_name: "Billing".into(),
            customer_name: Some("Ann <b>".into()),
            customer_address: Some("ann@client.example".into()),
            tier_key: Some("tier.vip"),
            subject: Some("Help & more".into()),
            status_key: "status.open".into(),
            assignee: None,
            present: vec![Colleague { user: "olga".into(), replying: false }, Colleague { user: "ivan".into(), replying: true }],
        }
    }

    #[test]
    fn the_page_has_every_column_and_htmx_gets_only_the_rows() {
        let chrome = || Chrome::logged_in(Lang::En, "anna".into(), "TOKEN".into());
        let html = QueuePage { chrome: chrome(), view: view(vec![sample()]) }.render().unwrap();
        for part in [
            "<caption>",
            "<a href=\"/cases/7\" data-open>MR-2026-000007-3</a>",
            "<time datetime=\"1970-01-01T10:00:00.000Z\" class=\"overdue\">overdue by 3 h</time>",
            ">Urgent</td>",
            "<span class=\"code\">BIL</span> Billing",
            "Ann &#60;b&#62;",
            "<span class=\"badge tier\" data-tier>VIP</span>",
            "Help &#38; more",
            ">Open</td>",
            ">Unassigned</td>",
            "name=\"case-7\" value=\"MR-2026-000007-3\"",
            "<input type=\"hidden\" name=\"csrf\" value=\"TOKEN\">",
            "action=\"/queues/support/bulk\"",
            "hx-get=\"/queues/support\"",
            "href=\"/queues/support?cursor=AB\">Next page</a>",
            "<span class=\"colleague\" data-user=\"olga\">viewing: olga</span>",
            "<span class=\"colleague\" data-user=\"ivan\">replying: ivan</span>",
            "hx-get=\"/queues/support/new?since=1800000000000\" hx-trigger=\"every 30s\"",
        ] {
            assert!(html.contains(part), "{part}: {html}");
        }
        let rows = QueueRows { chrome: chrome(), view: view(vec![sample()]) }.render().unwrap();
        assert!(rows.trim_start().starts_with("<div id=\"rows\">") && rows.contains("MR-2026-000007-3"), "{rows}");
        assert!(!rows.contains("<html") && !rows.contains("<form"), "the fragment is the rows alone: {rows}");
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        let filters = Filters { status: "all".into(), tag: "a b".into(), cursor: "old".into(), ..Filters::default() };
        assert_eq!(filters.next_page("XYZ"), "status=all&tag=a%20b&cursor=XYZ");
        assert_eq!(
            Filters { overdue: "maybe".into(), ..Filters::default() }.request().unwrap_err(),
            "overdue must be yes or no, not \"maybe\""
        );
    }
}
