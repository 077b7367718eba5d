//! `POST /api/enrol`: a user sets his own password with the one-time code an officer passed on
//! (new account or reset). No session needed; wrong codes are throttled like wrong passwords.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpContext;
use super::error::{ApiError, Json};
use super::openapi::doc::{BadRequest, Invalid, Throttled, TooLarge, UnsupportedMediaType};
use super::validate::{code_schema, name_schema, password_schema};
use crate::access::enrolment::EnrolError;

/// `POST /api/enrol`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    #[schema(schema_with = name_schema)]
    name: String,
    #[schema(schema_with = code_schema)]
    code: String,
    #[schema(schema_with = password_schema)]
    password: String,
}

// Declared closed (deny_unknown_fields: additionalProperties false), as it always was.
/// The password is set.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrolled {
    enrolled: bool,
    user: String,
}

/// `POST /api/enrol {name, code, password}` → 200 `{user}`; 401 for an unknown user or a wrong,
/// expired or used code (all alike), 429 while throttled, 422 for a weak password.
#[utoipa::path(
    post,
    path = "/api/enrol",
    operation_id = "enrol",
    tag = "session",
    summary = "Set your password with an enrolment code",
    description = "For a new account or after a reset: the one-time code the security officer passed on, and the new password (at least 12 \
         characters). Works once, until the code expires (access.enrolment_lifetime). An unknown user and a wrong, expired or used \
         code all answer 401 invalid_credentials; wrong codes are counted and throttled like wrong passwords (429). Then log in.",
    security(()),
    request_body = EnrolRequest,
    responses(
        (status = 200, description = "the password is set", body = Enrolled),
        (status = 400, response = BadRequest),
        (status = 401, response = super::openapi::doc::Unauthenticated),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 429, response = Throttled),
    ),
)]
pub async fn enrol(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<EnrolRequest>,
) -> Result<axum::Json<Enrolled>, ApiError> {
    match ctx.access.enrol(&req.name, &req.code, &req.password, peer.ip(), "http").await {
        Ok(()) => Ok(axum::Json(Enrolled { enrolled: true, user: req.name })),
        Err(e @ EnrolError::Invalid) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", e.to_string())),
        Err(e @ EnrolError::Throttled { retry_after }) => {
            let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "throttled", e.to_string());
            error.retry_after = Some(retry_after.as_secs_f64().ceil().max(1.0) as u64);
            Err(error)
        }
        Err(EnrolError::Weak(reason)) => Err(ApiError::invalid(reason)),
        Err(EnrolError::Store(e)) => Err(e.into()),
    }
}
