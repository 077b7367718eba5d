//! `GET /login`, `POST /login`, `POST /logout`: the API's login (`Access::login`, with its
//! throttling, lockout and audit) and its cookie session, as forms.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::i18n::Lang;
use super::session::{NoFields, Posted, check_fetch, see_other};
use crate::access::LoginError;
use crate::access::sessions::SessionKind;
use crate::http::HttpContext;
use crate::http::auth::{CLEARED_COOKIE, session_cookie, session_cookie_header};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    /// What was typed, shown again after a failure (never the password).
    user: String,
    /// Why the last attempt failed.
    problem: Option<String>,
}

/// The second step for a user with two-factor login on.
#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    chrome: Chrome,
    /// Vouches for the password just given (`Access::pending_login`), for a few minutes.
    pending: String,
    problem: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pending: String,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
}

/// `GET /login`; someone still logged in goes on to `/`.
pub async fn form(State(ctx): State<Arc<HttpContext>>, headers: HeaderMap) -> Response {
    if let Some(token) = session_cookie(&headers)
        && matches!(ctx.access.resume_session(&token).await, Ok((_, SessionKind::Cookie)))
    {
        return see_other("/");
    }
    let page = LoginPage { chrome: Chrome::anonymous(Lang::negotiate(&headers)), user: String::new(), problem: None };
    render(StatusCode::OK, &page)
}

/// `POST /login`: 303 to `/` with the session cookie, or the form again with the reason.
pub async fn submit(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let lang = Lang::negotiate(&headers);
    // Login CSRF: another site must not log a browser into an account of its choosing.
    if !check_fetch(&ctx, &headers) {
        return PageError::new(lang, Problem::Forbidden).into_response();
    }
    let Ok(Form(LoginForm { user, password })) = form else { return PageError::new(lang, Problem::BadForm).into_response() };
    if user.contains('\0') || password.contains('\0') {
        return PageError::new(lang, Problem::BadForm).into_response();
    }
    let chrome = Chrome::anonymous(lang);
    if user.trim().is_empty() || password.is_empty() {
        let problem = Some(chrome.t("login.incomplete").to_string());
        return render(StatusCode::UNPROCESSABLE_ENTITY, &LoginPage { chrome, user, problem });
    }
    let (status, problem, retry_after) = match ctx.access.login(&user, &password, peer.ip(), "web").await {
        Ok(principal) => return start(&ctx, &headers, lang, &principal).await,
        Err(LoginError::CodeRequired) => {
            let pending = ctx.access.pending_login(&user);
            return render(StatusCode::OK, &CodePage { chrome, pending, problem: None });
        }
        Err(LoginError::Invalid | LoginError::WrongCode) => (StatusCode::UNAUTHORIZED, chrome.t("login.wrong").to_string(), None),
        Err(LoginError::Locked) => (StatusCode::FORBIDDEN, chrome.t("login.locked").to_string(), None),
        Err(LoginError::Throttled { retry_after }) => {
            (StatusCode::TOO_MANY_REQUESTS, chrome.fill("login.throttled", &[("seconds", &seconds(retry_after))]), Some(retry_after))
        }
        Err(LoginError::Busy { retry_after }) => {
            (StatusCode::SERVICE_UNAVAILABLE, chrome.fill("login.busy", &[("seconds", &seconds(retry_after))]), Some(retry_after))
        }
        Err(LoginError::Store(e)) => return PageError::internal(lang, e).into_response(),
    };
    let mut response = render(status, &LoginPage { chrome, user, problem: Some(problem) });
    if let Some(wait) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds(wait))
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Starts the cookie session of a login that passed.
async fn start(ctx: &HttpContext, headers: &HeaderMap, lang: Lang, principal: &crate::access::Principal) -> Response {
    // A session this browser still had is replaced, not left running beside the new one.
    if let Some(previous) = session_cookie(headers)
        && let Err(e) = ctx.access.end_session(&previous).await
    {
        return PageError::internal(lang, e).into_response();
    }
    match ctx.access.start_session(principal, SessionKind::Cookie).await {
        Ok(token) => logged_in(&token, ctx.settings.session_lifetime),
        Err(e) => PageError::internal(lang, e).into_response(),
    }
}

/// `POST /login/code`: the second step; 303 to `/` with the session cookie, the code form again
/// for a wrong code, the login form when the step came too late.
pub async fn submit_code(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<CodeForm>, FormRejection>,
) -> Response {
    let lang = Lang::negotiate(&headers);
    if !check_fetch(&ctx, &headers) {
        return PageError::new(lang, Problem::Forbidden).into_response();
    }
    let Ok(Form(CodeForm { pending, code })) = form else { return PageError::new(lang, Problem::BadForm).into_response() };
    if pending.contains('\0') || code.contains('\0') {
        return PageError::new(lang, Problem::BadForm).into_response();
    }
    let chrome = Chrome::anonymous(lang);
    let (status, key, retry_after) = match ctx.access.login_second_step(&pending, &code, peer.ip(), "web").await {
        Ok(principal) => return start(&ctx, &headers, lang, &principal).await,
        Err(LoginError::WrongCode) => (StatusCode::UNAUTHORIZED, "login.code_wrong", None),
        Err(LoginError::Invalid | LoginError::CodeRequired) => {
            let problem = Some(chrome.t("login.code_again").to_string());
            return render(StatusCode::UNAUTHORIZED, &LoginPage { chrome, user: String::new(), problem });
        }
        Err(LoginError::Locked) => (StatusCode::FORBIDDEN, "login.locked", None),
        Err(LoginError::Throttled { retry_after }) => (StatusCode::TOO_MANY_REQUESTS, "login.throttled", Some(retry_after)),
        Err(LoginError::Busy { retry_after }) => (StatusCode::SERVICE_UNAVAILABLE, "login.busy", Some(retry_after)),
        Err(LoginError::Store(e)) => return PageError::internal(lang, e).into_response(),
    };
    let problem = match retry_after {
        Some(wait) => chrome.fill(key, &[("seconds", &seconds(wait))]),
        None => chrome.t(key).to_string(),
    };
    let mut response = render(status, &CodePage { chrome, pending, problem: Some(problem) });
    if let Some(wait) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds(wait))
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Whole seconds to wait, at least 1.
fn seconds(wait: Duration) -> String {
    wait.as_secs_f64().ceil().max(1.0).to_string()
}

fn logged_in(token: &str, lifetime: Duration) -> Response {
    let mut response = see_other("/");
    match HeaderValue::from_str(&session_cookie_header(token, lifetime)) {
        Ok(cookie) => {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        // A token is base64url: this cannot happen.
        Err(e) => PageError::internal(Lang::En, e).into_response(),
    }
}

/// `POST /logout`: the session ends at once, the cookie is cleared, 303 to `/login`.
pub async fn logout(State(ctx): State<Arc<HttpContext>>, posted: Posted<NoFields>) -> Response {
    let session = posted.session;
    if let Err(e) = ctx.access.end_session(session.token()).await {
        return PageError::internal(session.lang, e).into_response();
    }
    let actor = session.principal.actor();
    if let Err(e) = ctx.access.audit(&actor, "logout", Some(actor.clone()), Some("via=web".into())).await {
        return PageError::internal(session.lang, e).into_response();
    }
    let mut response = see_other("/login");
    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEARED_COOKIE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_has_labelled_fields_and_escapes_what_was_typed() {
        let page = LoginPage {
            chrome: Chrome::anonymous(Lang::En),
            user: "<b>\"x\"".into(),
            problem: Some("User name or password is wrong.".into()),
        };
        let html = page.render().unwrap();
        assert!(html.contains("<label for=\"user\">User name</label>") && html.contains("<label for=\"password\">Password</label>"));
        assert!(html.contains("<button type=\"submit\">Log in</button>"));
        assert!(html.contains("value=\"&#60;b&#62;&#34;x&#34;\""), "{html}");
        assert!(html.contains("role=\"alert\">User name or password is wrong.</p>"));
        assert!(!html.contains("Log out"), "nobody is logged in");
    }

    #[test]
    fn waits_are_whole_seconds_of_at_least_one() {
        assert_eq!(seconds(Duration::from_millis(10)), "1");
        assert_eq!(seconds(Duration::from_millis(29_001)), "30");
    }
}
