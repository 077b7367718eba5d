//! `/admin/changes`: access changes that wait for a second person, with approve and reject, and
//! the decided ones; the requester of an approved reset collects its code here, once. What
//! `http::admin::changes` does: open to officers and to supervisors (who see only the changes
//! concerning queues they supervise); the service refuses the requester's own approval, with its
//! reason.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::admin::{Notice, ShownCode, forbidden_page, settle};
use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::{PageSession, Posted};
use crate::access::admin::{AdminError, By};
use crate::access::approvals::{ASSIGN, Change, GRANT};
use crate::access::{Permission, Principal};
use crate::http::HttpContext;

/// Who may see and decide changes: as `http::admin::Approver`.
fn approver(principal: &Principal) -> bool {
    principal.officer || principal.grants.values().any(|set| set.contains(&Permission::Supervise))
}

/// A page request of an officer or a supervisor.
pub struct ApproverSession(pub PageSession);

impl FromRequestParts<Arc<HttpContext>> for ApproverSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, Response> {
        let session = PageSession::from_request_parts(parts, ctx).await.map_err(IntoResponse::into_response)?;
        match not_an_approver(ctx, &session) {
            Some(refused) => Err(refused),
            None => Ok(ApproverSession(session)),
        }
    }
}

fn not_an_approver(ctx: &HttpContext, session: &PageSession) -> Option<Response> {
    (!approver(&session.principal)).then(|| forbidden_page(ctx, session, "admin.changes.approvers_only"))
}

/// One change as the table shows it.
pub struct ChangeRow {
    pub id: i64,
    /// What it does, as a sentence.
    pub what: String,
    pub requested_by: String,
    pub requested_at: String,
    /// Catalog key of its status.
    pub status: &'static str,
    pub pending: bool,
    pub decided_by: Option<String>,
    /// An approved reset whose code this viewer requested and has not collected yet.
    pub collectable: bool,
}

fn describe(chrome: &Chrome, c: &Change) -> String {
    let user = c.user.as_deref().unwrap_or("");
    let role = c.role.as_deref().unwrap_or("");
    match c.kind.as_str() {
        ASSIGN => chrome.fill("admin.changes.assign", &[("user", user), ("role", role)]),
        GRANT => {
            let permissions: Vec<&str> = c.permissions.iter().map(|p| p.as_str()).collect();
            chrome.fill(
                "admin.changes.grant",
                &[("role", role), ("permissions", &permissions.join(", ")), ("queue", c.queue.as_deref().unwrap_or(""))],
            )
        }
        _ => chrome.fill("admin.changes.reset", &[("user", user)]),
    }
}

impl ChangeRow {
    fn new(chrome: &Chrome, viewer: &Principal, c: Change) -> ChangeRow {
        let status = match c.status.as_str() {
            "pending" => "admin.changes.status_pending",
            "approved" => "admin.changes.status_approved",
            _ => "admin.changes.status_rejected",
        };
        ChangeRow {
            id: c.id,
            what: describe(chrome, &c),
            collectable: c.code == Some("ready") && c.requested_by == viewer.name,
            pending: c.status == "pending",
            requested_by: c.requested_by,
            requested_at: c.requested_at,
            status,
            decided_by: c.decided_by,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_changes.html")]
struct ChangesPage {
    chrome: Chrome,
    notice: Option<Notice>,
    pending: Vec<ChangeRow>,
    /// Decided changes, newest first.
    decided: Vec<ChangeRow>,
}

/// How many decided changes the page lists.
const DECIDED_SHOWN: usize = 50;

async fn changes_page(ctx: &HttpContext, session: &PageSession, status: StatusCode, notice: Option<Notice>) -> Response {
    let changes = match ctx.access.list_changes(By::Staff(&session.principal), None).await {
        Ok(changes) => changes,
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let chrome = session.chrome(ctx);
    let (pending, mut decided): (Vec<ChangeRow>, Vec<ChangeRow>) =
        changes.into_iter().map(|c| ChangeRow::new(&chrome, &session.principal, c)).partition(|c| c.pending);
    decided.reverse();
    decided.truncate(DECIDED_SHOWN);
    render(status, &ChangesPage { chrome, notice, pending, decided })
}

async fn answer(ctx: &HttpContext, session: &PageSession, result: Result<Notice, AdminError>) -> Response {
    match settle(result, session) {
        Ok((status, notice)) => changes_page(ctx, session, status, Some(notice)).await,
        Err(e) => e.into_response(),
    }
}

/// `GET /admin/changes`.
pub async fn list(State(ctx): State<Arc<HttpContext>>, ApproverSession(session): ApproverSession) -> Response {
    changes_page(&ctx, &session, StatusCode::OK, None).await
}

/// `POST /admin/changes/{id}/approve`.
pub async fn approve(State(ctx): State<Arc<HttpContext>>, Path(id): Path<i64>, posted: Posted<HashMap<String, String>>) -> Response {
    decide(ctx, id, posted.session, true).await
}

/// `POST /admin/changes/{id}/reject`.
pub async fn reject(State(ctx): State<Arc<HttpContext>>, Path(id): Path<i64>, posted: Posted<HashMap<String, String>>) -> Response {
    decide(ctx, id, posted.session, false).await
}

async fn decide(ctx: Arc<HttpContext>, id: i64, session: PageSession, approve: bool) -> Response {
    if let Some(refused) = not_an_approver(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let key = if approve { "admin.changes.approved" } else { "admin.changes.rejected" };
    let result = ctx.access.decide_change(By::Staff(&session.principal), id, approve).await;
    let result = result.map(|_| Notice::done(chrome.fill(key, &[("id", &id.to_string())])));
    answer(&ctx, &session, result).await
}

/// `POST /admin/changes/{id}/code`: the requester of an approved reset sees its code, once.
pub async fn collect(State(ctx): State<Arc<HttpContext>>, Path(id): Path<i64>, posted: Posted<HashMap<String, String>>) -> Response {
    let session = posted.session;
    if let Some(refused) = super::admin::not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = ctx.access.collect_code(&session.principal, id).await.map(|collected| {
        let text = chrome.fill("admin.changes.collected", &[("user", &collected.name)]);
        Notice::done(text).with_code(ShownCode::new(&collected.name, collected.enrolment))
    });
    answer(&ctx, &session, result).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn row(id: i64, pending: bool, collectable: bool) -> ChangeRow {
        ChangeRow {
            id,
            what: format!("change number {id}"),
            requested_by: "olga".into(),
            requested_at: "2026-11-30T05:40:12.345Z".into(),
            status: if pending { "admin.changes.status_pending" } else { "admin.changes.status_approved" },
            pending,
            decided_by: (!pending).then(|| "oleg".into()),
            collectable,
        }
    }

    #[test]
    fn pending_changes_offer_approve_and_reject_and_a_ready_code_its_collection() {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true);
        let page = ChangesPage {
            chrome,
            notice: None,
            pending: vec![row(3, true, false)],
            decided: vec![row(2, false, true), row(1, false, false)],
        };
        let html = page.render().unwrap();
        assert!(html.contains("action=\"/admin/changes/3/approve\"") && html.contains("action=\"/admin/changes/3/reject\""), "{html}");
        assert!(!html.contains("action=\"/admin/changes/2/approve\""), "{html}");
        assert!(html.contains("action=\"/admin/changes/2/code\"") && !html.contains("action=\"/admin/changes/1/code\""), "{html}");
        assert!(html.contains("change number 1") && html.contains("oleg"), "{html}");
    }
}
