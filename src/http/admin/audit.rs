//! The audit log: read a page, verify the hash chain.

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::Officer;
use super::answers::{AuditCheck, AuditEntry, AuditPage};
use crate::http::HttpContext;
use crate::http::error::{ApiError, Query};
use crate::http::openapi::doc::{BadRequest, Forbidden, Invalid, Unauthenticated};
use crate::http::queues::query;

pub const AUDIT_MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

impl IntoParams for AuditParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let integer = || ObjectBuilder::new().schema_type(Type::Integer);
        vec![
            query("after", "last id already read", integer().default(Some(0.into())).build()),
            query(
                "limit",
                "entries per page",
                integer().minimum(Some(1)).maximum(Some(AUDIT_MAX_LIMIT as f64)).default(Some(100.into())).build(),
            ),
        ]
    }
}

/// `GET /api/admin/audit?after=ID&limit=N`: entries after ID, oldest first. Reading the log is
/// itself audited.
#[utoipa::path(
    get,
    path = "/api/admin/audit",
    operation_id = "auditLog",
    tag = "admin",
    summary = "Read the audit log",
    description = "Entries after `after`, oldest first; continue with next_after. Reading is itself audited (audit.read).",
    params(AuditParams),
    responses(
        (status = 200, description = "entries", body = AuditPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
    ),
)]
pub async fn audit_log(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be between 1 and {AUDIT_MAX_LIMIT}")));
    }
    let rows = crate::store::audit::list(&ctx.access.store, params.after, limit, None, None).await?;
    let entries: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
    let next_after = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    ctx.access
        .audit(&auth.principal.actor(), "audit.read", None, Some(format!("after={} entries={}", params.after, entries.len())))
        .await?;
    Ok(axum::Json(AuditPage { entries, next_after }))
}

/// `GET /api/admin/audit/verify`: re-computes the hash chain.
#[utoipa::path(
    get,
    path = "/api/admin/audit/verify",
    operation_id = "auditVerify",
    tag = "admin",
    summary = "Verify the audit chain",
    description = "Re-computes the keyed hash chain; names the first entry that does not fit.",
    responses(
        (status = 200, description = "result", body = AuditCheck),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn audit_verify(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<AuditCheck>, ApiError> {
    Ok(axum::Json(ctx.access.store.verify_audit().await?.into()))
}
