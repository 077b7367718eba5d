//! `/admin/roles`: each role with its description, grants (queue → permissions), members and the
//! changes to it that wait for a second person; forms to add a role, grant or revoke, give or
//! take a member. What `http::admin::roles` does, through the same `access` calls.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::admin::{Notice, OfficerSession, not_an_officer, settle};
use super::admin_users::ticked;
use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::{PageSession, Posted};
use crate::access::admin::{AdminError, By, RoleInfo, Touches};
use crate::access::approvals::{ASSIGN, Change, GRANT, Outcome};
use crate::access::{Permission, SECURITY_OFFICER};
use crate::http::HttpContext;

/// One role as the page shows it.
pub struct RoleView {
    pub name: String,
    pub description: String,
    /// (queue, "read, act") in queue order.
    pub grants: Vec<(String, String)>,
    pub members: Vec<String>,
    /// The changes to this role that wait for a second person, as sentences.
    pub pending: Vec<String>,
    /// The security-officer role gets no grants: its grant form is not offered.
    pub officer_role: bool,
}

fn permission_list(permissions: impl IntoIterator<Item = Permission>) -> String {
    permissions.into_iter().map(Permission::as_str).collect::<Vec<_>>().join(", ")
}

/// A pending change as a sentence under its role.
fn pending_line(chrome: &Chrome, change: &Change) -> String {
    let id = change.id.to_string();
    if change.kind == ASSIGN {
        chrome.fill("admin.roles.pending_member", &[("user", change.user.as_deref().unwrap_or("")), ("id", &id)])
    } else {
        let permissions = permission_list(change.permissions.iter().copied());
        chrome.fill(
            "admin.roles.pending_grant",
            &[("permissions", &permissions), ("queue", change.queue.as_deref().unwrap_or("")), ("id", &id)],
        )
    }
}

impl RoleView {
    fn new(chrome: &Chrome, role: RoleInfo, changes: &[Change]) -> RoleView {
        let pending = changes
            .iter()
            .filter(|c| (c.kind == ASSIGN || c.kind == GRANT) && c.role.as_deref() == Some(role.name.as_str()))
            .map(|c| pending_line(chrome, c))
            .collect();
        RoleView {
            officer_role: role.name == SECURITY_OFFICER,
            grants: role.grants.into_iter().map(|(queue, set)| (queue, permission_list(set))).collect(),
            name: role.name,
            description: role.description,
            members: role.members,
            pending,
        }
    }
}

#[derive(Template)]
#[template(path = "admin_roles.html")]
struct RolesPage {
    chrome: Chrome,
    notice: Option<Notice>,
    roles: Vec<RoleView>,
    /// The configured queues and "*", for the grant forms.
    queues: Vec<String>,
    /// Every user, for the "add member" forms.
    users: Vec<String>,
    permissions: [Permission; Permission::ALL.len()],
}

async fn roles_page(ctx: &HttpContext, session: &PageSession, status: StatusCode, notice: Option<Notice>) -> Response {
    let loaded = async {
        let roles = ctx.access.list_roles().await?;
        let users = ctx.access.list_users().await?.into_iter().map(|u| u.name).collect();
        let changes = ctx.access.list_changes(By::Staff(&session.principal), Some("pending")).await?;
        Ok::<_, AdminError>((roles, users, changes))
    };
    let (roles, users, changes) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let chrome = session.chrome(ctx);
    let roles = roles.into_iter().map(|r| RoleView::new(&chrome, r, &changes)).collect();
    let queues = ctx.settings.queues.iter().cloned().chain(["*".to_string()]).collect();
    render(status, &RolesPage { chrome, notice, roles, queues, users, permissions: Permission::ALL })
}

async fn answer(ctx: &HttpContext, session: &PageSession, result: Result<Notice, AdminError>) -> Response {
    match settle(result, session) {
        Ok((status, notice)) => roles_page(ctx, session, status, Some(notice)).await,
        Err(e) => e.into_response(),
    }
}

/// Done, or waiting for a second person.
fn outcome_notice(chrome: &Chrome, outcome: Outcome, done: String) -> Notice {
    match outcome {
        Outcome::Applied => Notice::done(done),
        Outcome::Pending(change) => Notice::pending(chrome, change.id),
    }
}

fn text<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|v| v.trim()).unwrap_or("")
}

/// `GET /admin/roles`.
pub async fn list(State(ctx): State<Arc<HttpContext>>, OfficerSession(session): OfficerSession) -> Response {
    roles_page(&ctx, &session, StatusCode::OK, None).await
}

/// `POST /admin/roles` (name, description).
pub async fn add(State(ctx): State<Arc<HttpContext>>, Posted { session, form }: Posted<HashMap<String, String>>) -> Response {
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let (name, description) = (text(&form, "name"), text(&form, "description"));
    let chrome = session.chrome(&ctx);
    let result = ctx.access.add_role(name, description, &session.principal.actor()).await;
    let result = result.map(|()| Notice::done(chrome.fill("admin.roles.added", &[("role", name)])));
    answer(&ctx, &session, result).await
}

/// `POST /admin/roles/{role}/grants` (queue, `perm-{permission}` checkboxes, `op` = grant or
/// revoke). Revoking with no permission ticked takes all of them on the queue, as the API does.
pub async fn grants(
    State(ctx): State<Arc<HttpContext>>,
    Path(role): Path<String>,
    Posted { session, form }: Posted<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let queue = text(&form, "queue");
    let mut permissions = Vec::new();
    for name in ticked(&form, "perm-") {
        match name.parse::<Permission>() {
            Ok(p) => permissions.push(p),
            Err(reason) => return answer(&ctx, &session, Err(AdminError::Invalid(reason))).await,
        }
    }
    let chrome = session.chrome(&ctx);
    let listed =
        if permissions.is_empty() { chrome.t("admin.roles.all_permissions").to_string() } else { permission_list(permissions.clone()) };
    let values = [("role", role.as_str()), ("queue", queue), ("permissions", listed.as_str())];
    let result = async {
        if text(&form, "op") == "revoke" {
            ctx.access.refuse_own(&session.principal, "role.revoke", Touches::Grants(&role)).await?;
            ctx.access.revoke(&role, queue, &permissions, &session.principal.actor()).await?;
            Ok(Notice::done(chrome.fill("admin.roles.revoked", &values)))
        } else {
            let outcome = ctx.access.request_grant(&session.principal, &role, queue, &permissions).await?;
            Ok(outcome_notice(&chrome, outcome, chrome.fill("admin.roles.granted", &values)))
        }
    };
    answer(&ctx, &session, result.await).await
}

/// `POST /admin/roles/{role}/members` (user): done, or waiting for a second person.
pub async fn add_member(
    State(ctx): State<Arc<HttpContext>>,
    Path(role): Path<String>,
    Posted { session, form }: Posted<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let user = text(&form, "user");
    let chrome = session.chrome(&ctx);
    let result = ctx.access.request_assign(&session.principal, &role, user).await;
    let result =
        result.map(|outcome| outcome_notice(&chrome, outcome, chrome.fill("admin.roles.member_added", &[("role", &role), ("user", user)])));
    answer(&ctx, &session, result).await
}

/// `POST /admin/roles/{role}/members/{user}/remove`: never waits.
pub async fn remove_member(
    State(ctx): State<Arc<HttpContext>>,
    Path((role, user)): Path<(String, String)>,
    posted: Posted<HashMap<String, String>>,
) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, "role.unassign", Touches::Membership { role: &role, user: &user }).await?;
        ctx.access.unassign_role(&role, &user, &session.principal.actor()).await?;
        Ok(Notice::done(chrome.fill("admin.roles.member_removed", &[("role", &role), ("user", &user)])))
    };
    answer(&ctx, &session, result.await).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn each_role_shows_its_grants_members_pending_changes_and_forms() {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true);
        let role = RoleView {
            name: "support-agent".into(),
            description: "Works support".into(),
            grants: vec![("support".into(), "read, act".into())],
            members: vec!["anna".into()],
            pending: vec!["bert gets this role (change #4)".into()],
            officer_role: false,
        };
        let officer = RoleView {
            name: SECURITY_OFFICER.into(),
            description: String::new(),
            grants: vec![],
            members: vec!["olga".into()],
            pending: vec![],
            officer_role: true,
        };
        let page = RolesPage {
            chrome,
            notice: None,
            roles: vec![role, officer],
            queues: vec!["support".into(), "*".into()],
            users: vec!["anna".into(), "bert".into()],
            permissions: Permission::ALL,
        };
        let html = page.render().unwrap();
        assert!(html.contains("<tr data-grant=\"support\"><th scope=\"row\">support</th><td>read, act</td>"), "{html}");
        assert!(html.contains("action=\"/admin/roles/support-agent/grants\""), "{html}");
        assert!(!html.contains("action=\"/admin/roles/security-officer/grants\""), "no grant form for the officer role: {html}");
        assert!(html.contains("action=\"/admin/roles/support-agent/members/anna/remove\""), "{html}");
        assert!(html.contains("bert gets this role (change #4)"), "{html}");
        assert!(html.contains("<option value=\"*\">"), "every queue: {html}");
        assert!(html.contains("name=\"perm-supervise\""), "{html}");
    }
}
