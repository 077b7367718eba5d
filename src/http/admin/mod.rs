//! The security officer's endpoints: users, roles, grants, pending changes, the audit log.
//! Everything goes through `crate::access` (`admin`, `enrolment`, `approvals`), which audits each
//! change in the transaction that makes it; nothing here touches customer data (an officer reads
//! mail only with a queue role of their own). An officer never touches his own account, roles or
//! grants (403); a new account or a reset yields a one-time enrolment code, never a password the
//! officer chose; a change that opens a queue's mail (a reset of a reader's or an officer's
//! password included) answers 202 and waits for a second person.
//!
//! `users.rs`, `roles.rs`, `changes.rs` and `audit.rs` hold the handlers with their requests and
//! document entries; `answers.rs` what they answer.

pub mod answers;
mod audit;
mod changes;
mod roles;
mod users;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

pub use self::audit::*;
pub use self::changes::*;
pub use self::roles::*;
pub use self::users::*;
use super::HttpContext;
use super::auth::Auth;
use super::error::ApiError;
use crate::access::Permission;
use crate::access::approvals::Outcome;
use answers::Pending;

/// A caller in the security-officer role.
pub struct Officer(pub Auth);

impl FromRequestParts<Arc<HttpContext>> for Officer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, ctx).await?;
        if !auth.principal.officer {
            return Err(ApiError::forbidden("only a security officer manages users, roles and the audit log"));
        }
        Ok(Officer(auth))
    }
}

/// A caller who may see and decide pending changes: a security officer, or a supervisor of
/// some queue (who sees only the changes concerning queues he supervises).
pub struct Approver(pub Auth);

impl FromRequestParts<Arc<HttpContext>> for Approver {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, ApiError> {
        let auth = Auth::from_request_parts(parts, ctx).await?;
        let supervisor = auth.principal.grants.values().any(|permissions| permissions.contains(&Permission::Supervise));
        if !auth.principal.officer && !supervisor {
            return Err(ApiError::forbidden("only security officers and supervisors see and decide pending access changes"));
        }
        Ok(Approver(auth))
    }
}

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// 204 when the change applied, 202 with the pending change when it waits for a second person.
fn outcome(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Applied => done(),
        Outcome::Pending(change) => pending(*change),
    }
}

fn pending(change: crate::access::approvals::Change) -> Response {
    (StatusCode::ACCEPTED, axum::Json(Pending::new(change))).into_response()
}

/// The document's description of the officer-only reads.
const OFFICER: &str = "Security officers only (403 for everyone else).";
