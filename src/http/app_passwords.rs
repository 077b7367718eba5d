//! `/api/me/app-passwords…`: the caller's per-device IMAP passwords (`access::app_passwords`):
//! list, create (the password is in this answer only), revoke.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json};
use super::openapi::doc::{BadRequest, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthenticated, UnsupportedMediaType};
use crate::access::app_passwords::AppPasswordError;
use crate::store::app_passwords::Listed;
use crate::store::millis_to_rfc3339;

/// One app password (never the password itself).
#[derive(Serialize, ToSchema)]
pub struct AppPassword {
    id: i64,
    device: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime, nullable = true)]
    last_used_at: Option<String>,
}

impl From<Listed> for AppPassword {
    fn from(l: Listed) -> AppPassword {
        AppPassword {
            id: l.id,
            device: l.device,
            created_at: millis_to_rfc3339(l.created_at),
            last_used_at: l.last_used_at.map(millis_to_rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AppPasswordList {
    items: Vec<AppPassword>,
}

/// `POST /api/me/app-passwords`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppPassword {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9._-]([A-Za-z0-9 ._-]*[A-Za-z0-9._-])?$",
        example = "Thunderbird laptop"
    )]
    device: String,
}

/// A new app password: shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedAppPassword {
    #[serde(flatten)]
    listed: AppPassword,
    password: String,
}

fn api_error(e: AppPasswordError) -> ApiError {
    let reason = e.to_string();
    match e {
        AppPasswordError::BadDevice => ApiError::invalid(reason),
        AppPasswordError::Exists | AppPasswordError::TooMany => ApiError::conflict(reason),
        AppPasswordError::NotFound => ApiError::not_found(reason),
        AppPasswordError::Store(e) => e.into(),
    }
}

/// `GET /api/me/app-passwords`.
#[utoipa::path(
    get,
    path = "/api/me/app-passwords",
    operation_id = "app_passwords",
    tag = "session",
    summary = "My app passwords",
    description = "The caller's per-device IMAP passwords: device name, when made, when last used (never the password).",
    responses(
        (status = 200, description = "the list", body = AppPasswordList),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<AppPasswordList>, ApiError> {
    let items = ctx.access.app_passwords(&auth.principal).await?.into_iter().map(AppPassword::from).collect();
    Ok(axum::Json(AppPasswordList { items }))
}

/// `POST /api/me/app-passwords`.
#[utoipa::path(
    post,
    path = "/api/me/app-passwords",
    operation_id = "app_password_create",
    tag = "session",
    summary = "Create an app password",
    description = "A password for one IMAP client (a user with two-factor login on cannot use his own password over IMAP). The answer \
         carries it this once; only its argon2id hash is kept. At most 10 per user, one per device name. Audited as app-password.create; \
         every IMAP login with it is audited with the device name.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = NewAppPassword,
    responses(
        (status = 201, description = "created; the password is in this answer only", body = CreatedAppPassword),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn create(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Json(req): Json<NewAppPassword>,
) -> Result<(StatusCode, axum::Json<CreatedAppPassword>), ApiError> {
    let (listed, password) = ctx.access.create_app_password(&auth.principal, &req.device).await.map_err(api_error)?;
    Ok((StatusCode::CREATED, axum::Json(CreatedAppPassword { listed: listed.into(), password })))
}

/// `DELETE /api/me/app-passwords/{id}`.
#[utoipa::path(
    delete,
    path = "/api/me/app-passwords/{id}",
    operation_id = "app_password_revoke",
    tag = "session",
    summary = "Revoke an app password",
    description = "IMAP logins with it fail from now on. Audited as app-password.revoke.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("id" = String, Path, description = "the app password's id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn revoke(State(ctx): State<Arc<HttpContext>>, auth: Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("no such app password"))?;
    ctx.access.revoke_app_password(&auth.principal, id).await.map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}
