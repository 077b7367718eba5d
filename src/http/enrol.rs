//! `POST /api/enrol`: a user sets his own password with the one-time code an officer passed on
//! (new account or reset). No session needed; wrong codes are throttled like wrong passwords.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::error::{ApiError, Json};
use crate::access::enrolment::EnrolError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    name: String,
    code: String,
    password: String,
}

/// `POST /api/enrol {name, code, password}` → 200 `{user}`; 401 for an unknown user or a wrong,
/// expired or used code (all alike), 429 while throttled, 422 for a weak password.
pub async fn enrol(
    State(ctx): State<Arc<HttpContext>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(req): Json<EnrolRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    match ctx.access.enrol(&req.name, &req.code, &req.password, peer.ip(), "http").await {
        Ok(()) => Ok(axum::Json(json!({ "user": req.name, "enrolled": true }))),
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
