//! The security officer's endpoints: users, roles, grants, pending changes, the audit log.
//! Everything goes through `crate::access` (`admin`, `enrolment`, `approvals`), which audits each
//! change in the transaction that makes it; nothing here touches customer data (an officer reads
//! mail only with a queue role of their own). An officer never touches his own account, roles or
//! grants (403); a new account or a reset yields a one-time enrolment code, never a password the
//! officer chose; a change that opens a queue's mail (a reset of a reader's or an officer's
//! password included) answers 202 and waits for a second person.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json, Path, Query};
use crate::access::Permission;
use crate::access::admin::{By, Touches};
use crate::access::approvals::{Outcome, RESET};
use crate::access::resets::ResetOutcome;
use crate::store::audit::ChainCheck;

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

fn done() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// 204 when the change applied, 202 with the pending change when it waits for a second person.
fn outcome(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Applied => done(),
        Outcome::Pending(change) => (StatusCode::ACCEPTED, axum::Json(json!({ "pending": true, "change": change }))).into_response(),
    }
}

const NO_PASSWORDS: &str = "an officer does not choose passwords: the answer carries a one-time enrolment code for the user, \
                            who sets his own password with it (POST /api/enrol or `mailroom user enrol`)";

/// `GET /api/admin/users`.
pub async fn list_users(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "users": ctx.access.list_users().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    /// Only to refuse it with a reason.
    password: Option<Value>,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /api/admin/users`: 201 with the enrolment code; 202 when some roles wait for approval
/// (the account exists, those roles do not apply yet).
pub async fn add_user(State(ctx): State<Arc<HttpContext>>, Officer(auth): Officer, Json(req): Json<NewUser>) -> Result<Response, ApiError> {
    if req.password.is_some() {
        return Err(ApiError::invalid(NO_PASSWORDS));
    }
    let account = ctx.access.add_user_enrolled(&req.name, &req.roles, By::Staff(&auth.principal)).await?;
    let status = if account.pending.is_empty() { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok((status, axum::Json(json!(account))).into_response())
}

/// `POST /api/admin/users/{name}/password`: a reset (no body needed; a password in the body is
/// refused). 200 with the enrolment code when it applies at once: the old password stops working
/// and the user's sessions end. 202 with the pending change when the account reads a queue or is
/// an officer: on approval the requester collects the code with `POST /api/admin/changes/{id}/code`.
pub async fn reset_password(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, RESET, Touches::Account(&name)).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let parsed: Value = serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", e.to_string()))?;
        match parsed.as_object() {
            Some(fields) if fields.contains_key("password") => return Err(ApiError::invalid(NO_PASSWORDS)),
            Some(fields) if fields.is_empty() => {}
            _ => return Err(ApiError::invalid("a reset takes no body (or {})")),
        }
    }
    Ok(match ctx.access.request_reset(&auth.principal, &name).await? {
        ResetOutcome::Issued(enrolment) => axum::Json(json!({ "name": name, "enrolment": enrolment })).into_response(),
        ResetOutcome::Pending(change) => outcome(Outcome::Pending(change)),
    })
}

/// `POST /api/admin/users/{name}/lock`: no login, sessions end at once. Never waits.
pub async fn lock_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "user.lock", Touches::Account(&name)).await?;
    ctx.access.lock_user(&name, &auth.principal.actor()).await?;
    Ok(done())
}

/// `POST /api/admin/users/{name}/unlock`.
pub async fn unlock_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "user.unlock", Touches::Account(&name)).await?;
    ctx.access.unlock_user(&name, &auth.principal.actor()).await?;
    Ok(done())
}

/// `DELETE /api/admin/users/{name}`.
pub async fn remove_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "user.remove", Touches::Account(&name)).await?;
    ctx.access.remove_user(&name, &auth.principal.actor()).await?;
    ctx.access.store.changed();
    Ok(done())
}

/// `GET /api/admin/roles`.
pub async fn list_roles(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "roles": ctx.access.list_roles().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /api/admin/roles`.
pub async fn add_role(State(ctx): State<Arc<HttpContext>>, Officer(auth): Officer, Json(req): Json<NewRole>) -> Result<Response, ApiError> {
    ctx.access.add_role(&req.name, &req.description, &auth.principal.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "name": req.name, "description": req.description }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A configured queue or "*".
    queue: String,
    /// Granting needs at least one; revoking without any revokes all on the queue.
    #[serde(default)]
    permissions: Vec<Permission>,
}

/// `POST /api/admin/roles/{role}/grants`: 204, or 202 when it gives `read` to a role with members.
pub async fn grant(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Grant>,
) -> Result<Response, ApiError> {
    Ok(outcome(ctx.access.request_grant(&auth.principal, &role, &req.queue, &req.permissions).await?))
}

/// `DELETE /api/admin/roles/{role}/grants` (body: queue, permissions). Never waits.
pub async fn revoke(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Grant>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "role.revoke", Touches::Grants(&role)).await?;
    ctx.access.revoke(&role, &req.queue, &req.permissions, &auth.principal.actor()).await?;
    Ok(done())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    user: String,
}

/// `POST /api/admin/roles/{role}/members`: 204, or 202 when the role has queue grants (or is
/// the officer role).
pub async fn add_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Member>,
) -> Result<Response, ApiError> {
    Ok(outcome(ctx.access.request_assign(&auth.principal, &role, &req.user).await?))
}

/// `DELETE /api/admin/roles/{role}/members/{user}`. Never waits.
pub async fn remove_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path((role, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "role.unassign", Touches::Membership { role: &role, user: &user }).await?;
    ctx.access.unassign_role(&role, &user, &auth.principal.actor()).await?;
    Ok(done())
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

pub const CHANGE_STATUSES: [&str; 4] = ["pending", "approved", "rejected", "all"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeParams {
    status: Option<String>,
}

/// `GET /api/admin/changes?status=pending|approved|rejected|all` (default pending).
pub async fn list_changes(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Query(params): Query<ChangeParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let status = params.status.as_deref().unwrap_or("pending");
    if !CHANGE_STATUSES.contains(&status) {
        return Err(ApiError::invalid(format!("status must be one of {}", CHANGE_STATUSES.join(", "))));
    }
    let filter = (status != "all").then_some(status);
    Ok(axum::Json(json!({ "changes": ctx.access.list_changes(By::Staff(&auth.principal), filter).await? })))
}

/// `POST /api/admin/changes/{id}/approve`: applies the change (never by the requester or an
/// account that gains the access).
pub async fn approve_change(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "change": ctx.access.decide_change(By::Staff(&auth.principal), id, true).await? })))
}

/// `POST /api/admin/changes/{id}/reject`: the change never applies.
pub async fn reject_change(
    State(ctx): State<Arc<HttpContext>>,
    Approver(auth): Approver,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "change": ctx.access.decide_change(By::Staff(&auth.principal), id, false).await? })))
}

/// `POST /api/admin/changes/{id}/code`: the requester of an approved reset collects its enrolment
/// code, once (409 afterwards; 403 for anyone else, the approver included).
pub async fn collect_code(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(id): Path<i64>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!(ctx.access.collect_code(&auth.principal, id).await?)))
}

pub const AUDIT_MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

/// `GET /api/admin/audit?after=ID&limit=N`: entries after ID, oldest first. Reading the log is
/// itself audited.
pub async fn audit_log(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Query(params): Query<AuditParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be between 1 and {AUDIT_MAX_LIMIT}")));
    }
    let rows = crate::store::audit::list(&ctx.access.store, params.after, limit, None, None).await?;
    let entries: Vec<Value> = rows
        .into_iter()
        .map(|e| json!({ "id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "object": e.object, "detail": e.detail }))
        .collect();
    let next = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e["id"].clone())).flatten();
    ctx.access
        .audit(&auth.principal.actor(), "audit.read", None, Some(format!("after={} entries={}", params.after, entries.len())))
        .await?;
    Ok(axum::Json(json!({ "entries": entries, "next_after": next })))
}

/// `GET /api/admin/audit/verify`: re-computes the hash chain.
pub async fn audit_verify(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(match ctx.access.store.verify_audit().await? {
        ChainCheck::Intact { entries, head } => {
            json!({ "intact": true, "entries": entries, "head": head.iter().map(|b| format!("{b:02x}")).collect::<String>() })
        }
        ChainCheck::Broken { id, reason } => json!({ "intact": false, "broken_at": id, "reason": reason }),
    }))
}
