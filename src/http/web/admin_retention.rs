//! `/admin/retention`: the security officer's view of retention and erasure — the configured
//! `[[retention]]` policies, the cases under legal hold, and the latest runs, purges and erasures
//! as the audit log recorded them (numbers and counts only: no customer content). Reading it is
//! audited (`retention.read`). Changes stay on the command line (`mailroom erase`, `case hold`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::admin::OfficerSession;
use super::admin_audit::EntryRow;
use super::chrome::Chrome;
use super::error::{PageError, render};
use crate::cases::retention::RetentionPolicy;
use crate::http::HttpContext;
use crate::store::audit::{NewestFilter, list_newest};
use crate::store::holds::Hold;

/// Entries of each kind shown (runs, purges, erasures).
const RUNS: i64 = 20;

/// A hold as the table shows it.
pub struct HoldRow {
    pub opening: String,
    pub queue: String,
    pub at: String,
    pub by: String,
    pub reason: String,
}

impl From<Hold> for HoldRow {
    fn from(h: Hold) -> HoldRow {
        HoldRow {
            at: crate::store::millis_to_rfc3339(h.held_at).chars().take(16).collect::<String>().replace('T', " ") + " UTC",
            opening: h.opening,
            queue: h.queue,
            by: h.held_by,
            reason: h.reason,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_retention.html")]
struct RetentionPage {
    chrome: Chrome,
    policies: Vec<RetentionPolicy>,
    holds: Vec<HoldRow>,
    runs: Vec<EntryRow>,
}

/// `GET /admin/retention`.
pub async fn show(State(ctx): State<Arc<HttpContext>>, OfficerSession(session): OfficerSession) -> Response {
    let store = &ctx.access.store;
    let holds = match store.holds().await {
        Ok(holds) => holds.into_iter().map(HoldRow::from).collect::<Vec<_>>(),
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let mut runs = Vec::new();
    for action in ["retention.run", "retention.purge", "erasure"] {
        let filter = NewestFilter { before: None, action: Some(action), actor: None, from: None, to: None };
        match list_newest(store, &filter, RUNS).await {
            Ok(rows) => runs.extend(rows.into_iter().map(EntryRow::from)),
            Err(e) => return PageError::internal(session.lang, e).into_response(),
        }
    }
    runs.sort_by_key(|e| std::cmp::Reverse(e.id));
    runs.truncate(RUNS as usize);
    let detail = format!("policies={} holds={} entries={}", ctx.settings.retention.len(), holds.len(), runs.len());
    if let Err(e) = ctx.access.audit(&session.principal.actor(), "retention.read", None, Some(detail)).await {
        return PageError::internal(session.lang, e).into_response();
    }
    let chrome = session.chrome(&ctx);
    render(StatusCode::OK, &RetentionPage { chrome, policies: ctx.settings.retention.clone(), holds, runs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn the_page_lists_policies_holds_and_runs() {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true);
        let policies = vec![RetentionPolicy { name: "support-2y".into(), queue: Some("support".into()), category: None, keep_days: 730 }];
        let holds = vec![HoldRow {
            opening: "MR-2026-000001-5".into(),
            queue: "support".into(),
            at: "2026-11-30 05:40 UTC".into(),
            by: "user:olga".into(),
            reason: "matter 17".into(),
        }];
        let runs = vec![EntryRow {
            id: 9,
            at: "2026-11-30T05:40:12.345Z".into(),
            at_short: "2026-11-30 05:40 UTC".into(),
            actor: "system:retention".into(),
            action: "retention.run".into(),
            object: String::new(),
            detail: "dry_run=false purged=1 support-2y=1".into(),
        }];
        let html = RetentionPage { chrome, policies, holds, runs }.render().unwrap();
        assert!(html.contains("data-policy=\"support-2y\"") && html.contains("730"), "{html}");
        assert!(html.contains("data-hold=\"MR-2026-000001-5\"") && html.contains("matter 17"), "{html}");
        assert!(html.contains("data-entry=\"9\"") && html.contains("support-2y=1"), "{html}");
        let empty = RetentionPage {
            chrome: Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true),
            policies: vec![],
            holds: vec![],
            runs: vec![],
        };
        let html = empty.render().unwrap();
        assert!(html.contains("data-none=\"policies\"") && html.contains("data-none=\"holds\""), "{html}");
    }
}
