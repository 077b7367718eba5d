//! `/api/me/totp…`: the caller's own two-factor login (`access::two_factor`): see where it
//! stands, enrol (secret and `otpauth://` URI), confirm with a first code (the recovery codes
//! come back this once), disable with a code.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json};
use super::openapi::doc::{BadRequest, Conflict, Forbidden, Invalid, Throttled, TooLarge, Unauthenticated, UnsupportedMediaType};
use super::validate::second_factor_schema;
use crate::access::two_factor::TwoFactorError;

/// Where the caller's two-factor login stands.
#[derive(Serialize, ToSchema)]
pub struct TotpStatus {
    /// Logins need a code.
    enabled: bool,
    /// An enrolment waits for its first code.
    pending: bool,
    recovery_codes_left: i64,
}

/// A started enrolment: type the secret into the authenticator app, or open the URI (the web
/// page shows it as a QR code).
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32 (RFC 4648, no padding).
    secret: String,
    #[schema(example = "otpauth://totp/mailroom:anna?secret=…&issuer=mailroom")]
    otpauth_uri: String,
    algorithm: String,
    digits: u8,
    period: u32,
}

/// A code from the authenticator app (or, to disable, a recovery code).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    #[schema(schema_with = second_factor_schema)]
    code: String,
}

/// Two-factor login is on; the recovery codes are shown this once.
#[derive(Serialize, ToSchema)]
pub struct TotpConfirmed {
    enabled: bool,
    /// Ten one-time codes, each usable once instead of a TOTP code; only their hashes are kept.
    recovery_codes: Vec<String>,
}

fn api_error(e: TwoFactorError) -> ApiError {
    let reason = e.to_string();
    match e {
        TwoFactorError::AlreadyOn | TwoFactorError::NotStarted | TwoFactorError::NotOn => ApiError::conflict(reason),
        TwoFactorError::WrongCode => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code", reason),
        TwoFactorError::Throttled => ApiError::throttled(reason, std::time::Duration::from_secs(60)),
        TwoFactorError::Store(e) => e.into(),
    }
}

/// `GET /api/me/totp`.
#[utoipa::path(
    get,
    path = "/api/me/totp",
    operation_id = "totp_status",
    tag = "session",
    summary = "My two-factor login",
    description = "Whether two-factor login (TOTP) is on, an enrolment is waiting for its first code, and how many recovery codes are left.",
    responses((status = 200, description = "where it stands", body = TotpStatus), (status = 401, response = Unauthenticated)),
)]
pub async fn status(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<TotpStatus>, ApiError> {
    let s = ctx.access.two_factor_status(auth.principal.user_id).await?;
    Ok(axum::Json(TotpStatus { enabled: s.enabled, pending: s.pending, recovery_codes_left: s.recovery_codes_left }))
}

/// `POST /api/me/totp`.
#[utoipa::path(
    post,
    path = "/api/me/totp",
    operation_id = "totp_enrol",
    tag = "session",
    summary = "Start two-factor enrolment",
    description = "Makes a new TOTP secret (RFC 6238: SHA-1, 6 digits, 30 s) and returns it with its otpauth URI. Nothing changes at login \
         until POST /api/me/totp/confirm with a first code; starting again replaces a secret not yet confirmed. 409 when two-factor \
         login is on already (disable it first). Audited as totp.enrol.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "the new secret", body = TotpEnrolment),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
    ),
)]
pub async fn enrol(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<TotpEnrolment>, ApiError> {
    let enrolment = ctx.access.start_totp(&auth.principal).await.map_err(api_error)?;
    Ok(axum::Json(TotpEnrolment {
        secret: enrolment.secret.to_string(),
        otpauth_uri: enrolment.uri.to_string(),
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
    }))
}

/// `POST /api/me/totp/confirm`.
#[utoipa::path(
    post,
    path = "/api/me/totp/confirm",
    operation_id = "totp_confirm",
    tag = "session",
    summary = "Confirm two-factor enrolment",
    description = "The first code from the authenticator app switches two-factor login on; the answer carries ten one-time recovery codes, \
         shown only this once. 422 invalid_code for a wrong code, 409 when no enrolment is waiting. Audited as totp.confirm \
         (totp.confirm-failed).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, description = "on; the recovery codes", body = TotpConfirmed),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn confirm(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Json(req): Json<TotpCode>,
) -> Result<axum::Json<TotpConfirmed>, ApiError> {
    let recovery_codes = ctx.access.confirm_totp(&auth.principal, &req.code).await.map_err(api_error)?;
    Ok(axum::Json(TotpConfirmed { enabled: true, recovery_codes }))
}

/// `POST /api/me/totp/disable`.
#[utoipa::path(
    post,
    path = "/api/me/totp/disable",
    operation_id = "totp_disable",
    tag = "session",
    summary = "Disable two-factor login",
    description = "Takes a current code or a recovery code (checked, counted and throttled like a login), then removes the secret and the \
         recovery codes. 422 invalid_code for a wrong code, 409 when it is not on. Audited as totp.disable.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 204, description = "off"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
    ),
)]
pub async fn disable(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    auth: Auth,
    Json(req): Json<TotpCode>,
) -> Result<StatusCode, ApiError> {
    ctx.access.disable_totp(&auth.principal, &req.code, peer.ip()).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}
