//! The security officer's endpoints: users, roles, grants, the audit log. Everything goes through
//! `crate::access::admin`, which audits each change in the transaction that makes it; nothing here
//! touches customer data (an officer reads mail only with a queue role of their own).

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json, Path, Query};
use crate::access::Permission;
use crate::store::audit::ChainCheck;
use crate::store::millis_to_rfc3339;

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

/// `GET /api/admin/users`.
pub async fn list_users(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(json!({ "users": ctx.access.list_users().await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /api/admin/users`.
pub async fn add_user(State(ctx): State<Arc<HttpContext>>, Officer(auth): Officer, Json(req): Json<NewUser>) -> Result<Response, ApiError> {
    ctx.access.add_user(&req.name, &req.password, &req.roles, &auth.principal.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "name": req.name, "roles": req.roles }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    password: String,
}

/// `POST /api/admin/users/{name}/password`: ends the user's sessions, lifts a lockout.
pub async fn set_password(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
    Json(req): Json<NewPassword>,
) -> Result<Response, ApiError> {
    ctx.access.set_password(&name, &req.password, &auth.principal.actor()).await?;
    Ok(done())
}

/// An officer who locks or removes their own account loses the HTTP way back in.
fn not_self(auth: &Auth, name: &str, what: &str) -> Result<(), ApiError> {
    if auth.principal.name == name {
        return Err(ApiError::invalid(format!("you cannot {what} your own account; another officer (or `mailroom user`) can")));
    }
    Ok(())
}

/// `POST /api/admin/users/{name}/lock`: no login, sessions end at once.
pub async fn lock_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    not_self(&auth, &name, "lock")?;
    ctx.access.lock_user(&name, &auth.principal.actor()).await?;
    Ok(done())
}

/// `POST /api/admin/users/{name}/unlock`.
pub async fn unlock_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ctx.access.unlock_user(&name, &auth.principal.actor()).await?;
    Ok(done())
}

/// `DELETE /api/admin/users/{name}`.
pub async fn remove_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    not_self(&auth, &name, "remove")?;
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

/// `POST /api/admin/roles/{role}/grants`.
pub async fn grant(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Grant>,
) -> Result<Response, ApiError> {
    ctx.access.grant(&role, &req.queue, &req.permissions, &auth.principal.actor()).await?;
    Ok(done())
}

/// `DELETE /api/admin/roles/{role}/grants` (body: queue, permissions).
pub async fn revoke(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Grant>,
) -> Result<Response, ApiError> {
    ctx.access.revoke(&role, &req.queue, &req.permissions, &auth.principal.actor()).await?;
    Ok(done())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    user: String,
}

/// `POST /api/admin/roles/{role}/members`.
pub async fn add_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Member>,
) -> Result<Response, ApiError> {
    ctx.access.assign_role(&role, &req.user, &auth.principal.actor()).await?;
    Ok(done())
}

/// `DELETE /api/admin/roles/{role}/members/{user}`.
pub async fn remove_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path((role, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.access.unassign_role(&role, &user, &auth.principal.actor()).await?;
    Ok(done())
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
    let rows = sqlx::query("SELECT id, at, actor, action, object, detail FROM audit WHERE id > ? ORDER BY id LIMIT ?")
        .bind(params.after)
        .bind(limit)
        .fetch_all(&ctx.access.store.pool)
        .await
        .map_err(|e| ApiError::from(crate::store::StoreError::from(e)))?;
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "id": r.get::<i64, _>(0), "at": millis_to_rfc3339(r.get(1)), "actor": r.get::<String, _>(2), "action": r.get::<String, _>(3), "object": r.get::<Option<String>, _>(4), "detail": r.get::<Option<String>, _>(5) }))
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
