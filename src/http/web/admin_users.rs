//! `/admin/users`: the accounts (name, roles, state, dates: never customer content) with lock,
//! unlock, reset password and remove (behind a confirmation page), and "Add user". What
//! `http::admin::users` does, through the same `access` calls: a new account or a reset shows its
//! one-time enrolment code on this answer only; a reset of a reader's or an officer's password
//! waits for a second person and says so.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::admin::{Notice, OfficerSession, ShownCode, not_an_officer, settle};
use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::{PageSession, Posted};
use crate::access::admin::{AdminError, By, Touches, UserInfo};
use crate::access::approvals::RESET;
use crate::access::resets::ResetOutcome;
use crate::http::HttpContext;

/// One account as the table shows it.
pub struct UserRow {
    pub name: String,
    pub roles: String,
    /// Catalog key of the account's state.
    pub state: &'static str,
    /// When the state ends (a lockout, a pending code), if it does.
    pub until: Option<String>,
    pub locked: bool,
    pub failed_logins: i64,
    pub created_at: String,
    pub password_changed_at: String,
    /// A reset of this account waits for a second person (the change id).
    pub reset_pending: Option<i64>,
    /// Where his notifications are mailed ("" for none).
    pub email: String,
}

/// `2026-11-30T05:40:12.345Z` → `2026-11-30 05:40 UTC`: enough for a person, the full time in
/// the `<time>` element's `datetime`.
pub fn short_time(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(minutes) => format!("{} UTC", minutes.replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

impl UserRow {
    fn new(u: UserInfo, reset_pending: Option<i64>) -> UserRow {
        let (state, until) = if u.locked {
            ("admin.users.state_locked", None)
        } else if let Some(until) = u.locked_out_until {
            ("admin.users.state_locked_out", Some(until))
        } else if u.enrolment_pending {
            ("admin.users.state_enrolling", u.enrolment_expires_at)
        } else {
            ("admin.users.state_active", None)
        };
        UserRow {
            name: u.name,
            roles: u.roles.join(", "),
            state,
            until,
            locked: u.locked,
            failed_logins: u.failed_logins,
            created_at: u.created_at,
            password_changed_at: u.password_changed_at,
            reset_pending,
            email: u.email.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    chrome: Chrome,
    notice: Option<Notice>,
    users: Vec<UserRow>,
    /// Every role, for the "Add user" checkboxes.
    roles: Vec<String>,
}

#[derive(Template)]
#[template(path = "admin_user_remove.html")]
struct RemovePage {
    chrome: Chrome,
    user: String,
}

/// The users page with `notice` about the action just taken.
async fn users_page(ctx: &HttpContext, session: &PageSession, status: StatusCode, notice: Option<Notice>) -> Response {
    let loaded = async {
        let users = ctx.access.list_users().await?;
        let roles = ctx.access.list_roles().await?.into_iter().map(|r| r.name).collect();
        let changes = ctx.access.list_changes(By::Staff(&session.principal), Some("pending")).await?;
        Ok::<_, AdminError>((users, roles, changes))
    };
    let (users, roles, changes) = match loaded.await {
        Ok(loaded) => loaded,
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let reset_of = |name: &str| changes.iter().find(|c| c.kind == RESET && c.user.as_deref() == Some(name)).map(|c| c.id);
    let users = users
        .into_iter()
        .map(|u| {
            let reset = reset_of(&u.name);
            UserRow::new(u, reset)
        })
        .collect();
    render(status, &UsersPage { chrome: session.chrome(ctx), notice, users, roles })
}

/// Re-renders the users page with what the service answered.
async fn answer(ctx: &HttpContext, session: &PageSession, result: Result<Notice, AdminError>) -> Response {
    match settle(result, session) {
        Ok((status, notice)) => users_page(ctx, session, status, Some(notice)).await,
        Err(e) => e.into_response(),
    }
}

/// `GET /admin/users`.
pub async fn list(State(ctx): State<Arc<HttpContext>>, OfficerSession(session): OfficerSession) -> Response {
    users_page(&ctx, &session, StatusCode::OK, None).await
}

/// The ticked `role-{name}` checkboxes of a form, in name order.
pub fn ticked(form: &HashMap<String, String>, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = form.keys().filter_map(|k| k.strip_prefix(prefix)).map(str::to_string).collect();
    names.sort();
    names
}

/// `POST /admin/users` (name, `role-{name}` checkboxes): the account with its one-time code;
/// the roles that open a queue's mail wait for a second person.
pub async fn add(State(ctx): State<Arc<HttpContext>>, Posted { session, form }: Posted<HashMap<String, String>>) -> Response {
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let name = form.get("name").map(|n| n.trim()).unwrap_or("");
    let roles = ticked(&form, "role-");
    let chrome = session.chrome(&ctx);
    let result = ctx.access.add_user_enrolled(name, &roles, By::Staff(&session.principal)).await.map(|account| {
        let code = ShownCode::new(&account.name, account.enrolment);
        if account.pending.is_empty() {
            Notice::done(chrome.fill("admin.users.added", &[("user", name)])).with_code(code)
        } else {
            let ids: Vec<String> = account.pending.iter().map(|c| format!("#{}", c.id)).collect();
            let waiting: Vec<&str> = account.pending.iter().filter_map(|c| c.role.as_deref()).collect();
            let text =
                chrome.fill("admin.users.added_pending", &[("user", name), ("roles", &waiting.join(", ")), ("ids", &ids.join(", "))]);
            Notice::waiting(text).with_code(code)
        }
    });
    answer(&ctx, &session, result).await
}

/// `POST /admin/users/{name}/lock`.
pub async fn lock(State(ctx): State<Arc<HttpContext>>, Path(name): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, "user.lock", Touches::Account(&name)).await?;
        ctx.access.lock_user(&name, &session.principal.actor()).await?;
        Ok(Notice::done(chrome.fill("admin.users.locked", &[("user", &name)])))
    };
    answer(&ctx, &session, result.await).await
}

/// `POST /admin/users/{name}/unlock`: also lifts a lockout after failed logins.
pub async fn unlock(State(ctx): State<Arc<HttpContext>>, Path(name): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, "user.unlock", Touches::Account(&name)).await?;
        ctx.access.unlock_user(&name, &session.principal.actor()).await?;
        Ok(Notice::done(chrome.fill("admin.users.unlocked", &[("user", &name)])))
    };
    answer(&ctx, &session, result.await).await
}

/// `POST /admin/users/{name}/two-factor/reset`: a user lost the device with his second factor.
pub async fn reset_two_factor(
    State(ctx): State<Arc<HttpContext>>,
    Path(name): Path<String>,
    posted: Posted<HashMap<String, String>>,
) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, "user.two-factor-reset", Touches::Account(&name)).await?;
        let reset = ctx.access.reset_two_factor(&name, &session.principal.actor()).await?;
        let count = reset.app_passwords.to_string();
        Ok(Notice::done(chrome.fill("admin.users.two_factor_reset", &[("user", &name), ("count", &count)])))
    };
    answer(&ctx, &session, result.await).await
}

/// `POST /admin/users/{name}/email` (`email`; empty removes it): where the user's notifications
/// are mailed.
pub async fn email(State(ctx): State<Arc<HttpContext>>, Path(name): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let address = form.get("email").map(String::as_str);
    let result = async {
        ctx.access.set_email(&name, address, &session.principal.actor()).await?;
        Ok(Notice::done(chrome.fill("admin.users.email_saved", &[("user", &name)])))
    };
    answer(&ctx, &session, result.await).await
}

/// `POST /admin/users/{name}/password`: a reset; the code at once, or a change that waits.
pub async fn reset(State(ctx): State<Arc<HttpContext>>, Path(name): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let session = posted.session;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, RESET, Touches::Account(&name)).await?;
        Ok(match ctx.access.request_reset(&session.principal, &name).await? {
            ResetOutcome::Issued(enrolment) => {
                Notice::done(chrome.fill("admin.users.reset_done", &[("user", &name)])).with_code(ShownCode::new(&name, enrolment))
            }
            ResetOutcome::Pending(change) => {
                Notice::waiting(chrome.fill("admin.users.reset_pending", &[("user", &name), ("id", &change.id.to_string())]))
            }
        })
    };
    answer(&ctx, &session, result.await).await
}

/// `GET /admin/users/{name}/remove`: the confirmation step (no script `confirm()`).
pub async fn confirm_remove(
    State(ctx): State<Arc<HttpContext>>,
    OfficerSession(session): OfficerSession,
    Path(name): Path<String>,
) -> Response {
    render(StatusCode::OK, &RemovePage { chrome: session.chrome(&ctx), user: name })
}

/// `POST /admin/users/{name}/remove` with `confirm=yes` (from the confirmation page; without
/// it, the confirmation page again).
pub async fn remove(State(ctx): State<Arc<HttpContext>>, Path(name): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let Posted { session, form } = posted;
    if let Some(refused) = not_an_officer(&ctx, &session) {
        return refused;
    }
    if form.get("confirm").map(String::as_str) != Some("yes") {
        return render(StatusCode::OK, &RemovePage { chrome: session.chrome(&ctx), user: name });
    }
    let chrome = session.chrome(&ctx);
    let result = async {
        ctx.access.refuse_own(&session.principal, "user.remove", Touches::Account(&name)).await?;
        ctx.access.remove_user(&name, &session.principal.actor()).await?;
        ctx.access.store.changed();
        Ok(Notice::done(chrome.fill("admin.users.removed", &[("user", &name)])))
    };
    answer(&ctx, &session, result.await).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::admin::Outcome;
    use crate::http::web::i18n::Lang;
    use zeroize::Zeroizing;

    fn row(name: &str, locked: bool) -> UserRow {
        UserRow {
            name: name.into(),
            roles: "support-agent".into(),
            state: if locked { "admin.users.state_locked" } else { "admin.users.state_active" },
            until: None,
            locked,
            failed_logins: 0,
            created_at: "2026-11-30T05:40:12.345Z".into(),
            password_changed_at: "2026-11-30T05:40:12.345Z".into(),
            reset_pending: None,
            email: String::new(),
        }
    }

    fn page(notice: Option<Notice>) -> String {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "TOKEN".into()).with_officer(true);
        let users = vec![row("anna", false), row("bert", true)];
        UsersPage { chrome, notice, users, roles: vec!["support-agent".into(), "security-officer".into()] }.render().unwrap()
    }

    #[test]
    fn the_table_offers_lock_or_unlock_resets_and_remove_per_user() {
        let html = page(None);
        assert!(html.contains("<a href=\"/admin/users\">Users</a>"), "the officer's header links: {html}");
        assert!(html.contains("action=\"/admin/users/anna/lock\"") && !html.contains("action=\"/admin/users/anna/unlock\""), "{html}");
        assert!(html.contains("action=\"/admin/users/bert/unlock\"") && !html.contains("action=\"/admin/users/bert/lock\""), "{html}");
        assert!(html.contains("action=\"/admin/users/anna/password\""));
        assert!(html.contains("href=\"/admin/users/anna/remove\""));
        assert!(html.contains("name=\"role-support-agent\""), "role checkboxes: {html}");
        assert!(html.contains("<time datetime=\"2026-11-30T05:40:12.345Z\">2026-11-30 05:40 UTC</time>"), "{html}");
        assert_eq!(html.matches("name=\"csrf\" value=\"TOKEN\"").count(), 1 + 1 + 4 + 4, "log out, add user, four forms per user");
        assert!(html.contains("action=\"/admin/users/anna/email\""), "{html}");
        assert!(html.contains("action=\"/admin/users/bert/two-factor/reset\""), "{html}");
    }

    #[test]
    fn a_code_is_shown_with_its_user_and_expiry_and_a_refusal_with_its_reason() {
        let code = ShownCode { user: "carl".into(), code: Zeroizing::new("ABCDE-FGHJK".into()), expires_at: "2026-12-01T05:00:00Z".into() };
        let html = page(Some(Notice::done("Added carl.".into()).with_code(code)));
        assert!(html.contains("data-code=\"carl\""), "{html}");
        assert!(html.contains("<code>ABCDE-FGHJK</code>"), "{html}");
        let html = page(Some(Notice::refused("you cannot lock your own account".into())));
        assert!(html.contains("role=\"alert\"") && html.contains("you cannot lock your own account"), "{html}");
        assert_eq!(Notice::refused(String::new()).outcome, Outcome::Refused);
    }

    #[test]
    fn short_times_read_as_minutes_in_utc() {
        assert_eq!(short_time("2026-11-30T05:40:12.345Z"), "2026-11-30 05:40 UTC");
        assert_eq!(short_time("soon"), "soon");
    }
}
