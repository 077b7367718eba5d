//! `/admin/audit`: the audit log, newest first, filtered by action, actor and time range (a plain
//! GET form), a page at a time ("Older entries" continues below the last id shown), and
//! "Verify chain" (a POST) running the verification of `GET /api/admin/audit/verify`. Entries are
//! shown as stored: actions, objects and details hold no customer content by design. Reading the
//! log is itself audited (`audit.read`), as the API does.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Deserialize;

use super::admin::{Notice, OfficerSession, not_an_officer};
use super::admin_users::short_time;
use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::{PageSession, Posted};
use crate::http::HttpContext;
use crate::store::audit::{ChainCheck, ListedEntry, NewestFilter, list_newest};

/// Entries per page.
pub const AUDIT_PAGE: i64 = 50;

/// The filter form's fields, as typed (shown again on the form).
#[derive(Deserialize, Default, Clone)]
pub struct AuditQuery {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    /// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` (a `datetime-local` field), UTC.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Continue below this id (the "Older entries" link).
    #[serde(default)]
    before: String,
}

/// A time typed into the form, in milliseconds (UTC); a bare date is its midnight.
fn parse_time(text: &str) -> Result<Option<i64>, ()> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()))
        .map_err(|_| ())?;
    Ok(Some(at.and_utc().timestamp_millis()))
}

fn optional(text: &str) -> Option<&str> {
    Some(text.trim()).filter(|t| !t.is_empty())
}

impl AuditQuery {
    /// The store's filter, or the catalog key of the field that does not read as a time.
    fn filter(&self) -> Result<NewestFilter<'_>, &'static str> {
        let before = optional(&self.before).map(str::parse).transpose().map_err(|_| "admin.audit.bad_before")?;
        Ok(NewestFilter {
            before,
            action: optional(&self.action),
            actor: optional(&self.actor),
            from: parse_time(&self.from).map_err(|()| "admin.audit.bad_from")?,
            to: parse_time(&self.to).map_err(|()| "admin.audit.bad_to")?,
        })
    }

    /// The query string of the next page: these filters, below `last`.
    fn older(&self, last: i64) -> String {
        let mut pairs = vec![("before", last.to_string())];
        for (name, value) in [("action", &self.action), ("actor", &self.actor), ("from", &self.from), ("to", &self.to)] {
            if !value.trim().is_empty() {
                pairs.push((name, value.trim().to_string()));
            }
        }
        pairs.iter().map(|(n, v)| format!("{n}={}", encode(v))).collect::<Vec<_>>().join("&")
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// One entry as the table shows it.
pub struct EntryRow {
    pub id: i64,
    pub at: String,
    pub at_short: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub detail: String,
}

impl From<ListedEntry> for EntryRow {
    fn from(e: ListedEntry) -> EntryRow {
        EntryRow {
            id: e.id,
            at_short: short_time(&e.at),
            at: e.at,
            actor: e.actor,
            action: e.action,
            object: e.object.unwrap_or_default(),
            detail: e.detail.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    chrome: Chrome,
    notice: Option<Notice>,
    query: AuditQuery,
    entries: Vec<EntryRow>,
    /// The "Older entries" link's query string, when there may be more.
    older: Option<String>,
}

async fn audit_page(ctx: &HttpContext, session: &PageSession, query: AuditQuery, notice: Option<Notice>) -> Response {
    let chrome = session.chrome(ctx);
    let filter = match query.filter() {
        Ok(filter) => filter,
        Err(key) => {
            let notice = Notice::refused(chrome.t(key).to_string());
            let page = AuditPage { chrome, notice: Some(notice), query: query.clone(), entries: vec![], older: None };
            return render(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let rows = match list_newest(&ctx.access.store, &filter, AUDIT_PAGE).await {
        Ok(rows) => rows,
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let entries: Vec<EntryRow> = rows.into_iter().map(EntryRow::from).collect();
    let older = (entries.len() as i64 == AUDIT_PAGE).then(|| entries.last().map(|e| query.older(e.id))).flatten();
    let detail = format!("page before={} entries={}", filter.before.map_or("-".to_string(), |b| b.to_string()), entries.len());
    if let Err(e) = ctx.access.audit(&session.principal.actor(), "audit.read", None, Some(detail)).await {
        return PageError::internal(session.lang, e).into_response();
    }
    render(StatusCode::OK, &AuditPage { chrome, notice, query, entries, older })
}

/// `GET /admin/audit?action=&actor=&from=&to=&before=`.
pub async fn list(
    State(ctx): State<Arc<HttpContext>>,
    OfficerSession(session): OfficerSession,
    Query(query): Query<AuditQuery>,
) -> Response {
    audit_page(&ctx, &session, query, None).await
}

/// `POST /admin/audit/verify`: re-computes the hash chain; "intact, N entries" or the first
/// entry that does not fit.
pub async fn verify(State(ctx): State<Arc<HttpContext>>, posted: Posted<HashMap<String, String>>) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let notice = match ctx.access.store.verify_audit().await {
        Ok(ChainCheck::Intact { entries, .. }) => Notice::done(chrome.fill("admin.audit.intact", &[("entries", &entries.to_string())])),
        Ok(ChainCheck::Broken { id, reason }) => {
            Notice::alarm(chrome.fill("admin.audit.broken", &[("id", &id.to_string()), ("reason", &reason)]))
        }
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    tracing::info!(target: "mailroom::http", by = %session.principal.name, outcome = notice.outcome(), "page: audit chain verified");
    audit_page(&ctx, &session, AuditQuery::default(), Some(notice)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn times_read_as_dates_or_minutes_in_utc() {
        assert_eq!(parse_time(""), Ok(None));
        assert_eq!(parse_time("2026-11-30"), Ok(Some(1_795_996_800_000)));
        assert_eq!(parse_time("2026-11-30T01:00"), Ok(Some(1_795_996_800_000 + 3_600_000)));
        assert_eq!(parse_time("yesterday"), Err(()));
    }

    #[test]
    fn the_older_link_keeps_the_filters() {
        let query = AuditQuery {
            action: "user.lock".into(),
            actor: "user:olga".into(),
            from: " ".into(),
            to: "2026-11-30T01:00".into(),
            before: "9".into(),
        };
        assert_eq!(query.older(41), "before=41&action=user.lock&actor=user%3Aolga&to=2026-11-30T01%3A00");
    }

    #[test]
    fn the_page_lists_entries_with_the_filter_form_and_the_verify_button() {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true);
        let entry = EntryRow {
            id: 7,
            at: "2026-11-30T05:40:12.345Z".into(),
            at_short: "2026-11-30 05:40 UTC".into(),
            actor: "user:olga".into(),
            action: "user.lock".into(),
            object: "user:anna".into(),
            detail: String::new(),
        };
        let query = AuditQuery { action: "user.lock".into(), ..Default::default() };
        let page = AuditPage { chrome, notice: None, query, entries: vec![entry], older: Some("before=7".into()) };
        let html = page.render().unwrap();
        assert!(html.contains("<tr data-entry=\"7\">"), "{html}");
        assert!(html.contains("name=\"action\" value=\"user.lock\""), "the filter is shown again: {html}");
        assert!(html.contains("href=\"/admin/audit?before=7\""), "{html}");
        assert!(html.contains("action=\"/admin/audit/verify\""), "{html}");
    }
}
