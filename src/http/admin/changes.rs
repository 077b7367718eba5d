//! Pending access changes (issue #8): list, approve, reject, and collecting an approved reset's
//! code.

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::answers::{ChangeList, CollectedCode, Decided};
use super::{Approver, Officer};
use crate::access::admin::By;
use crate::http::HttpContext;
use crate::http::error::{ApiError, Path, Query};
use crate::http::openapi::doc::{BadRequest, Conflict, Forbidden, Invalid, NotFound, Unauthenticated};
use crate::http::queues::query;

pub const CHANGE_STATUSES: [&str; 4] = ["pending", "approved", "rejected", "all"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeParams {
    status: Option<String>,
}

impl IntoParams for ChangeParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let status = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(CHANGE_STATUSES)).default(Some("pending".into()));
        vec![query("status", "which changes", status.build())]
    }
}

/// `GET /api/admin/changes?status=pending|approved|rejected|all` (default pending).
#[utoipa::path(
    get,
    path = "/api/admin/changes",
    operation_id = "listChanges",
    tag = "admin",
    summary = "Access changes waiting for (or decided by) a second person",
    description = "Security officers see every change; a supervisor sees those concerning only queues he supervises (403 for anyone else).",
    params(ChangeParams),
    responses(
        (status = 200, description = "changes", body = inline(ChangeList)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
    ),
)]
pub async fn list_changes(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Query(params): Query<ChangeParams>,
) -> Result<axum::Json<ChangeList>, ApiError> {
    let status = params.status.as_deref().unwrap_or("pending");
    if !CHANGE_STATUSES.contains(&status) {
        return Err(ApiError::invalid(format!("status must be one of {}", CHANGE_STATUSES.join(", "))));
    }
    let filter = (status != "all").then_some(status);
    let changes = ctx.access.list_changes(By::Staff(&auth.principal), filter).await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(ChangeList { changes }))
}

/// `POST /api/admin/changes/{id}/approve`: applies the change (never by the requester or an
/// account that gains the access).
#[utoipa::path(
    post,
    path = "/api/admin/changes/{id}/approve",
    operation_id = "approveChange",
    tag = "admin",
    summary = "Approve (and so apply) a pending change",
    description = "By another security officer, or a supervisor of every queue the change concerns (a change to the security-officer role: \
         officers only). Never by the requester, never by an account that gains the access, never by an account whose password \
         was set with a code the requester issued (403). Audited with both names. 409 when already decided.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "change id", minimum = 1)),
    responses(
        (status = 200, description = "decided", body = inline(Decided)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn approve_change(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Path(id): Path<i64>,
) -> Result<axum::Json<Decided>, ApiError> {
    Ok(axum::Json(Decided { change: ctx.access.decide_change(By::Staff(&auth.principal), id, true).await?.into() }))
}

/// `POST /api/admin/changes/{id}/reject`: the change never applies.
#[utoipa::path(
    post,
    path = "/api/admin/changes/{id}/reject",
    operation_id = "rejectChange",
    tag = "admin",
    summary = "Reject a pending change",
    description = "It never applies. By whoever could approve it, or by the requester (withdrawing it). Audited with both names. 409 when \
         already decided.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "change id", minimum = 1)),
    responses(
        (status = 200, description = "decided", body = inline(Decided)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn reject_change(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Path(id): Path<i64>,
) -> Result<axum::Json<Decided>, ApiError> {
    Ok(axum::Json(Decided { change: ctx.access.decide_change(By::Staff(&auth.principal), id, false).await?.into() }))
}

/// `POST /api/admin/changes/{id}/code`: the requester of an approved reset collects its enrolment
/// code, once (409 afterwards; 403 for anyone else, the approver included).
#[utoipa::path(
    post,
    path = "/api/admin/changes/{id}/code",
    operation_id = "collectResetCode",
    tag = "admin",
    summary = "Collect the enrolment code of an approved reset (once)",
    description = "Security officers only, and only the one who requested the reset (403 for anyone else, the approver included; \
         audited). The code is issued when the reset is approved and kept sealed until this call, which shows it once: 409 \
         afterwards, and 409 for a change that is not an approved reset or whose code expired or was replaced by a newer \
         reset. Pass it on to the user, who sets his password with POST /api/enrol.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("id" = i64, Path, description = "change id", minimum = 1)),
    responses(
        (status = 200, description = "the code, shown this once", body = CollectedCode),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    ),
)]
pub async fn collect_code(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(id): Path<i64>,
) -> Result<axum::Json<CollectedCode>, ApiError> {
    Ok(axum::Json(ctx.access.collect_code(&auth.principal, id).await?.into()))
}
