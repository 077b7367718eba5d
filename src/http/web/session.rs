//! The page session: the API's cookie session (`http::auth`, `Access`), read from the
//! `mailroom_session` cookie. No session, or one that ended, sends the browser to `/login`.
//!
//! Every page POST passes three checks before its handler runs ([`Posted`]): `Origin`, when
//! present, is this server; `Sec-Fetch-Site`, when present, is `same-origin` or `none`; the form's
//! hidden `csrf` field is the session's CSRF token. `POST /login` has no session yet and passes
//! the first two only ([`check_fetch`]).

use std::sync::Arc;

use axum::Form;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::chrome::Chrome;
use super::error::{PageError, Problem};
use super::i18n::Lang;
use crate::access::Principal;
use crate::access::preferences::Preferences;
use crate::access::sessions::{SessionError, SessionKind};
use crate::http::auth::{CLEARED_COOKIE, origin_is_ours, session_cookie};
use crate::http::{HttpContext, RequestUser};

/// The logged-in staff user of a page request.
pub struct PageSession {
    pub principal: Principal,
    /// The user's chosen language, or the browser's (`Accept-Language`) on `auto`.
    pub lang: Lang,
    /// The user's own settings (`/settings`).
    pub preferences: Preferences,
    /// His unread notifications (the header's count); 0 on background requests, which show no frame.
    pub unread: i64,
    token: String,
}

impl PageSession {
    /// The page frame for this user.
    pub fn chrome(&self, ctx: &HttpContext) -> Chrome {
        Chrome::logged_in(self.lang, self.principal.name.clone(), ctx.access.csrf_token(&self.token))
            .with_officer(self.principal.officer)
            .supervising(!ctx.cases.supervised_queues(&self.principal).is_empty())
            .reviewing(ctx.cases.reviews_somewhere(&self.principal))
            .with_shortcuts(self.preferences.shortcuts)
            .with_unread(self.unread)
    }

    pub fn token(&self) -> &str {
        &self.token
    }
}

/// Why a page request does not reach its handler.
#[derive(Debug)]
pub enum Refusal {
    /// No session, or one that ended: log in (the stale cookie is cleared).
    LogIn {
        clear_cookie: bool,
    },
    Page(PageError),
    /// The user's role requires two-factor login and he has not enrolled: to the settings page.
    EnrolFirst,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::LogIn { clear_cookie } => {
                let mut response = see_other("/login");
                if clear_cookie {
                    response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEARED_COOKIE));
                }
                response
            }
            Refusal::Page(e) => e.into_response(),
            Refusal::EnrolFirst => see_other("/settings#two-factor"),
        }
    }
}

/// `303 See Other` to `location`: after a form POST the browser GETs the next page.
pub fn see_other(location: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, HeaderValue::from_static(location))]).into_response()
}

/// Marks the routes the page calls by itself (presence heartbeat, "N new" poll): they check
/// the session without counting as the user's activity, so an open tab still idles out.
#[derive(Clone, Copy)]
pub struct Background;

impl FromRequestParts<Arc<HttpContext>> for PageSession {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, Refusal> {
        let lang = Lang::negotiate(&parts.headers);
        let Some(token) = session_cookie(&parts.headers) else { return Err(Refusal::LogIn { clear_cookie: false }) };
        let resumed = if parts.extensions.get::<Background>().is_some() {
            ctx.access.check_session(&token).await
        } else {
            ctx.access.resume_session(&token).await
        };
        let principal = match resumed {
            Ok((principal, SessionKind::Cookie)) => principal,
            // A bearer token is never accepted as a cookie.
            Ok((_, SessionKind::Bearer)) => return Err(Refusal::LogIn { clear_cookie: true }),
            Err(SessionError::Store(e)) => return Err(Refusal::Page(PageError::internal(lang, e))),
            Err(_) => return Err(Refusal::LogIn { clear_cookie: true }),
        };
        if let Some(user) = parts.extensions.get::<RequestUser>() {
            let _ = user.0.set(principal.name.clone());
        }
        // A role that requires two-factor login: the settings page (its enrolment) until done.
        if principal.two_factor_missing
            && !matches!(parts.uri.path(), "/settings" | "/settings/totp" | "/settings/totp/confirm" | "/logout")
        {
            return Err(Refusal::EnrolFirst);
        }
        let preferences = ctx.access.preferences(principal.user_id).await.map_err(|e| Refusal::Page(PageError::internal(lang, e)))?;
        let lang = Lang::chosen(preferences.language).unwrap_or(lang);
        // A failed count shows none rather than failing the page.
        let unread = match parts.extensions.get::<Background>() {
            Some(_) => 0,
            None => ctx.cases.unread_notifications(&principal).await.unwrap_or(0),
        };
        Ok(PageSession { principal, lang, preferences, unread, token })
    }
}

/// The browser's word on where a request comes from: `Origin` must be ours and
/// `Sec-Fetch-Site` same-origin or none (typed by the user), when they are sent.
///
/// Under our `Referrer-Policy: no-referrer` a browser submits a form of our own page with
/// `Origin: null` (Fetch: the origin of a no-cors request follows the referrer policy; found by
/// tests/browser.rs in chromium). `null` is then vouched for by `Sec-Fetch-Site: same-origin`,
/// which no page can set; `null` without it (a sandboxed frame, an old browser) is refused.
pub fn check_fetch(ctx: &HttpContext, headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").map(|site| site.to_str().unwrap_or(""));
    let site_ok = site.is_none_or(|site| matches!(site, "same-origin" | "none"));
    let opaque_same_origin = site == Some("same-origin") && headers.get(header::ORIGIN).is_some_and(|o| o == "null");
    site_ok && (opaque_same_origin || origin_is_ours(ctx, headers))
}

/// A page form with its hidden CSRF field, from a logged-in user, having passed every check.
pub struct Posted<T> {
    pub session: PageSession,
    pub form: T,
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

/// A form with no fields of its own (just `csrf`), such as "Log out".
#[derive(Deserialize)]
pub struct NoFields {}

impl<T: DeserializeOwned + Send> FromRequest<Arc<HttpContext>> for Posted<T> {
    type Rejection = Refusal;

    async fn from_request(req: Request, ctx: &Arc<HttpContext>) -> Result<Self, Refusal> {
        let (mut parts, body) = req.into_parts();
        let lang = Lang::negotiate(&parts.headers);
        let refuse = |why: &str| {
            tracing::info!(target: "mailroom::http", why, "page: a POST was refused");
            Refusal::Page(PageError::new(lang, Problem::Forbidden))
        };
        if !check_fetch(ctx, &parts.headers) {
            return Err(refuse("origin or sec-fetch-site"));
        }
        let session = PageSession::from_request_parts(&mut parts, ctx).await?;
        let bad_form = || Refusal::Page(PageError::new(lang, Problem::BadForm));
        // Buffered first so a NUL (`crate::http::error::NUL_REFUSED`) is refused before any field is read.
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), ctx).await.map_err(|_| bad_form())?;
        if form_has_nul(&body) {
            return Err(bad_form());
        }
        let Form(WithCsrf { csrf, fields }) =
            Form::<WithCsrf<T>>::from_request(Request::from_parts(parts, Body::from(body)), ctx).await.map_err(|_| bad_form())?;
        // Refused in the user's own language from here on.
        let lang = session.lang;
        let refuse = |why: &str| {
            tracing::info!(target: "mailroom::http", why, "page: a POST was refused");
            Refusal::Page(PageError::new(lang, Problem::Forbidden))
        };
        if csrf.is_empty() {
            return Err(refuse("no csrf field"));
        }
        if !ctx.access.csrf_ok(&session.token, &csrf) {
            return Err(refuse("wrong csrf token"));
        }
        Ok(Posted { session, form: fields })
    }
}

/// A urlencoded body carries NUL only as `%00` (a literal `%` is `%25`) or as a raw byte.
pub fn form_has_nul(body: &[u8]) -> bool {
    body.contains(&0) || crate::http::error::encodes_nul(&String::from_utf8_lossy(body))
}
