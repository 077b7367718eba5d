//! Login, logout, and the session behind every other request.
//!
//! Browsers log in with `mode: "cookie"` and get an HttpOnly, Secure, SameSite=Strict cookie plus
//! a CSRF token; every state-changing request of a cookie session must echo that token in
//! `X-CSRF-Token` and, when the browser sends an `Origin`, come from this server's own origin.
//! API clients log in with `mode: "bearer"` and send `Authorization: Bearer TOKEN`, which a
//! browser never adds by itself, so no CSRF check is needed. Each kind of token is accepted only
//! the way it was issued.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

use super::error::{ApiError, Json};
use super::{HttpContext, RequestUser};
use crate::access::sessions::{SessionError, SessionKind};
use crate::access::{LoginError, Permission, Principal};
use crate::http::openapi::doc::{BadRequest, ErrorBody, Forbidden, Invalid, Throttled, TooLarge, Unauthenticated, UnsupportedMediaType};
use crate::store::{millis_to_rfc3339, now_millis};

pub const COOKIE: &str = "mailroom_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The logged-in caller, with permissions as they are now (re-read on every request, so a
/// lock or a revoked role takes effect at once).
pub struct Auth {
    pub principal: Principal,
    pub kind: SessionKind,
    token: String,
}

impl FromRequestParts<Arc<HttpContext>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, ApiError> {
        let (token, transport) = if let Some(token) = bearer_token(&parts.headers) {
            (token, SessionKind::Bearer)
        } else if let Some(token) = cookie_token(&parts.headers) {
            (token, SessionKind::Cookie)
        } else {
            return Err(ApiError::unauthenticated(
                "log in first: POST /api/login, then send the session cookie or Authorization: Bearer TOKEN",
            ));
        };
        let (principal, kind) = ctx.access.resume_session(&token).await.map_err(|e| match e {
            SessionError::Store(e) => ApiError::from(e),
            other => ApiError::unauthenticated(other.to_string()),
        })?;
        if kind != transport {
            return Err(ApiError::unauthenticated(match kind {
                SessionKind::Cookie => "a cookie session's token is accepted only as the session cookie",
                SessionKind::Bearer => "a bearer token is accepted only in the Authorization header",
            }));
        }
        if kind == SessionKind::Cookie && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            check_origin(ctx, &parts.headers)?;
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if presented.is_empty() {
                return Err(csrf_error(
                    "this request changes something: send the session's CSRF token (from the login reply) in X-CSRF-Token",
                ));
            }
            if !ctx.access.csrf_ok(&token, presented) {
                return Err(csrf_error("the X-CSRF-Token does not belong to this session"));
            }
        }
        if let Some(user) = parts.extensions.get::<RequestUser>() {
            let _ = user.0.set(principal.name.clone());
        }
        if principal.two_factor_missing && !OPEN_WITHOUT_TWO_FACTOR.contains(&parts.uri.path()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "two_factor_required",
                "your role requires two-factor login: enrol first (POST /api/me/totp, then POST /api/me/totp/confirm)",
            ));
        }
        Ok(Auth { principal, kind, token })
    }
}

/// What a user whose role requires two-factor login may still reach before enrolling.
const OPEN_WITHOUT_TWO_FACTOR: [&str; 5] = ["/api/me", "/api/me/totp", "/api/me/totp/confirm", "/api/logout", "/api/me/totp/disable"];

fn csrf_error(reason: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", reason)
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim().to_string())
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// A browser names the page a request comes from in `Origin`; it must be this server's own.
fn check_origin(ctx: &HttpContext, headers: &HeaderMap) -> Result<(), ApiError> {
    if origin_is_ours(ctx, headers) { Ok(()) } else { Err(csrf_error("the request comes from another origin than this server")) }
}

/// True when the request has no `Origin` or names this server's own (the API and the page
/// share this rule).
pub(crate) fn origin_is_ours(ctx: &HttpContext, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let scheme = if ctx.tls.is_some() { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")),
        _ => false,
    }
}

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    cookie_token(headers)
}

/// The `Set-Cookie` value that starts a cookie session in the browser (API and page alike).
pub(crate) fn session_cookie_header(token: &str, lifetime: std::time::Duration) -> String {
    format!("{COOKIE}={token}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={}", lifetime.as_secs())
}

/// The `Set-Cookie` value that makes the browser drop the session cookie.
pub(crate) const CLEARED_COOKIE: &str = "mailroom_session=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0";

#[derive(Deserialize, Serialize, ToSchema, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum LoginMode {
    #[default]
    Cookie,
    Bearer,
}

/// `POST /api/login`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    user: String,
    #[schema(format = Password)]
    password: String,
    #[serde(default)]
    #[schema(schema_with = login_mode_schema)]
    mode: LoginMode,
    /// For a user with two-factor login on: the 6-digit code from the authenticator app, or one
    /// of the recovery codes.
    #[serde(default)]
    #[schema(nullable = false, schema_with = super::validate::second_factor_schema)]
    code: Option<String>,
}

/// `mode` of a login: cookie unless said otherwise.
fn login_mode_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["cookie", "bearer"])).default(Some("cookie".into())).build()
}

// Fields in alphabetical order: the order they always had on the wire.
/// The answer to a login.
#[derive(Serialize, ToSchema)]
pub struct Login {
    /// cookie mode
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    csrf_token: Option<String>,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(inline)]
    mode: LoginMode,
    officer: bool,
    roles: Vec<String>,
    /// bearer mode
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token: Option<String>,
    user: String,
}

// Fields in alphabetical order, as on the wire.
/// The answer to `GET /api/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    csrf_token: Option<String>,
    #[schema(value_type = BTreeMap<String, Vec<String>>)]
    grants: BTreeMap<String, BTreeSet<Permission>>,
    officer: bool,
    queues: Vec<String>,
    roles: Vec<String>,
    #[schema(value_type = String)]
    session: SessionKind,
    user: String,
}

/// `POST /api/login`.
#[utoipa::path(
    post,
    path = "/api/login",
    operation_id = "login",
    tag = "session",
    summary = "Log in",
    description = "Checks the password (failures are delayed, counted and audited; repeated failures lock the user and the source out for a while). \
         mode cookie (default) sets an HttpOnly, Secure, SameSite=Strict cookie `mailroom_session` and returns the CSRF token that every \
         state-changing request of the session must carry in `X-CSRF-Token`. mode bearer returns a token for `Authorization: Bearer`. \
         A request with an Origin header must come from this server's origin. A user with two-factor login on sends `code` too: the current \
         6-digit TOTP code (each accepted once) or an unused recovery code.",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in", body = Login),
        (status = 400, response = BadRequest),
        (status = 401, description = "wrong user name or password (error invalid_credentials); the user has two-factor login on and \
            the request has no code (error code_required) or a wrong, expired or used one (error invalid_code)", body = ErrorBody),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
        (status = 503, description = "too many logins are being checked at once (error busy); nothing was checked: try again after Retry-After seconds",
            body = ErrorBody, headers(("Retry-After" = i64))),
    ),
)]
pub async fn login(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    // Login CSRF: another site must not log a browser into an account of its choosing.
    check_origin(&ctx, &headers)?;
    let principal = match ctx.access.login_with_code(&req.user, &req.password, req.code.as_deref(), peer.ip(), "http").await {
        Ok(p) => p,
        Err(e @ LoginError::CodeRequired) => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "code_required", e.to_string())),
        Err(e @ LoginError::WrongCode) => return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_code", e.to_string())),
        // The API does not tell a locked account from a wrong password.
        Err(LoginError::Invalid | LoginError::Locked) => {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", LoginError::Invalid.to_string()));
        }
        Err(e @ LoginError::Throttled { retry_after }) => return Err(ApiError::throttled(e.to_string(), retry_after)),
        Err(e @ LoginError::Busy { retry_after }) => return Err(ApiError::busy(e.to_string(), retry_after)),
        Err(LoginError::Store(e)) => return Err(e.into()),
    };
    let kind = match req.mode {
        LoginMode::Cookie => SessionKind::Cookie,
        LoginMode::Bearer => SessionKind::Bearer,
    };
    let token = ctx.access.start_session(&principal, kind).await?;
    let lifetime = ctx.settings.session_lifetime;
    let expires_at = millis_to_rfc3339(now_millis() + lifetime.as_millis() as i64);
    let mut body = Login {
        csrf_token: None,
        expires_at,
        mode: req.mode,
        officer: principal.officer,
        roles: principal.roles,
        token: None,
        user: principal.name,
    };
    match kind {
        SessionKind::Cookie => {
            body.csrf_token = Some(ctx.access.csrf_token(&token));
            let cookie = session_cookie_header(&token, lifetime);
            let mut response = axum::Json(body).into_response();
            response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(ApiError::internal)?);
            Ok(response)
        }
        SessionKind::Bearer => {
            body.token = Some(token);
            Ok(axum::Json(body).into_response())
        }
    }
}

/// `POST /api/logout`: the session ends at once (and the browser drops the cookie).
#[utoipa::path(
    post,
    path = "/api/logout",
    operation_id = "logout",
    tag = "session",
    summary = "Log out",
    description = "The session ends at once; a cookie session's cookie is cleared.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "logged out"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn logout(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<Response, ApiError> {
    ctx.access.end_session(&auth.token).await?;
    let actor = auth.principal.actor();
    ctx.access.audit(&actor, "logout", Some(actor.clone()), Some("via=http".into())).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if auth.kind == SessionKind::Cookie {
        response.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static(CLEARED_COOKIE));
    }
    Ok(response)
}

/// `GET /api/me`: who I am, what I may do where, and (for a cookie session) the CSRF token
/// again, so a reloaded page can pick it up.
#[utoipa::path(
    get,
    path = "/api/me",
    operation_id = "me",
    tag = "session",
    summary = "Who I am",
    description = "User, roles, grants per queue, the queues I may read, the session kind, and for a cookie session its CSRF token.",
    responses((status = 200, description = "the caller", body = Me), (status = 401, response = Unauthenticated)),
)]
pub async fn me(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> axum::Json<Me> {
    let p = auth.principal;
    let queues = p.readable_queues(ctx.settings.queues.iter().map(String::as_str));
    let csrf_token = (auth.kind == SessionKind::Cookie).then(|| ctx.access.csrf_token(&auth.token));
    axum::Json(Me { csrf_token, grants: p.grants, officer: p.officer, queues, roles: p.roles, session: auth.kind, user: p.name })
}
