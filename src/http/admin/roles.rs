//! Roles: list, create, grant and revoke permissions on a queue, give and take members.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::ArrayBuilder;

use super::answers::{NewRole as CreatedRole, Pending, RoleList};
use super::{OFFICER, Officer, done, outcome};
use crate::access::Permission;
use crate::access::admin::Touches;
use crate::http::HttpContext;
use crate::http::error::{ApiError, Json, Path};
use crate::http::openapi::doc::ChangeErrors;
use crate::http::openapi::doc::{BadRequest, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthenticated, UnsupportedMediaType};
use crate::http::validate::{name_schema, permission_schema};

/// `GET /api/admin/roles`.
#[utoipa::path(
    get,
    path = "/api/admin/roles",
    operation_id = "listRoles",
    tag = "admin",
    summary = "Roles with grants and members",
    description = OFFICER,
    responses(
        (status = 200, description = "roles", body = inline(RoleList)),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list_roles(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<RoleList>, ApiError> {
    let roles = ctx.access.list_roles().await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(RoleList { roles }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    #[schema(schema_with = name_schema)]
    name: String,
    #[serde(default)]
    description: String,
}

/// `POST /api/admin/roles`.
#[utoipa::path(
    post,
    path = "/api/admin/roles",
    operation_id = "addRole",
    tag = "admin",
    summary = "Create a role",
    description = OFFICER,
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = inline(NewRole),
    responses(
        (status = 201, description = "created", body = inline(CreatedRole)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn add_role(State(ctx): State<Arc<HttpContext>>, Officer(auth): Officer, Json(req): Json<NewRole>) -> Result<Response, ApiError> {
    ctx.access.add_role(&req.name, &req.description, &auth.principal.actor()).await?;
    Ok((StatusCode::CREATED, axum::Json(CreatedRole { description: req.description, name: req.name })).into_response())
}

fn permissions_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(permission_schema())
}

/// Granting names at least one permission (the service refuses none with 422).
fn new_permissions_schema() -> ArrayBuilder {
    permissions_schema().min_items(Some(1))
}

/// What revoking takes: without permissions, all of them on the queue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A configured queue or "*".
    queue: String,
    #[serde(default)]
    #[schema(schema_with = permissions_schema)]
    permissions: Vec<Permission>,
}

// What granting takes (read as leniently as `Grant`; the document asks for what the service
// requires: a queue and at least one permission).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    #[schema(min_length = 1)]
    queue: String,
    #[serde(default)]
    #[schema(required = true, schema_with = new_permissions_schema)]
    permissions: Vec<Permission>,
}

/// The path parameter naming a role.
const ROLE_NAME: &str = "role name";

/// `POST /api/admin/roles/{role}/grants`: 204, or 202 when it gives `read` to a role with members.
#[utoipa::path(
    post,
    path = "/api/admin/roles/{role}/grants",
    operation_id = "grant",
    tag = "admin",
    summary = "Grant permissions on a queue",
    description = "queue is a configured queue or *; the security-officer role gets none; not on a role you hold (403). Granting read to a \
         role that has members waits for a second person's approval (202).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("role" = String, Path, description = ROLE_NAME, min_length = 1)),
    request_body = inline(NewGrant),
    responses(
        (status = 204, description = "done"),
        (status = 202, description = "held for a second person's approval (nothing applied yet)", body = Pending),
        ChangeErrors,
    ),
)]
pub async fn grant(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<NewGrant>,
) -> Result<Response, ApiError> {
    Ok(outcome(ctx.access.request_grant(&auth.principal, &role, &req.queue, &req.permissions).await?))
}

/// `DELETE /api/admin/roles/{role}/grants` (body: queue, permissions). Never waits.
#[utoipa::path(
    delete,
    path = "/api/admin/roles/{role}/grants",
    operation_id = "revoke",
    tag = "admin",
    summary = "Revoke permissions on a queue",
    description = "Without permissions, all of them on the queue. Never waits for approval; not on a role you hold (403).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("role" = String, Path, description = ROLE_NAME, min_length = 1)),
    request_body = Grant,
    responses(
        (status = 204, description = "done"),
        ChangeErrors,
    ),
)]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    #[schema(schema_with = name_schema)]
    user: String,
}

/// `POST /api/admin/roles/{role}/members`: 204, or 202 when the role has queue grants (or is
/// the officer role).
#[utoipa::path(
    post,
    path = "/api/admin/roles/{role}/members",
    operation_id = "addMember",
    tag = "admin",
    summary = "Give a user the role",
    description = "Security officers only; never yourself (403). A role with queue grants, or the security-officer role, waits for a second \
         person's approval (202).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("role" = String, Path, description = ROLE_NAME, min_length = 1)),
    request_body = inline(Member),
    responses(
        (status = 204, description = "done"),
        (status = 202, description = "held for a second person's approval (nothing applied yet)", body = Pending),
        ChangeErrors,
    ),
)]
pub async fn add_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(role): Path<String>,
    Json(req): Json<Member>,
) -> Result<Response, ApiError> {
    Ok(outcome(ctx.access.request_assign(&auth.principal, &role, &req.user).await?))
}

/// `DELETE /api/admin/roles/{role}/members/{user}`. Never waits.
#[utoipa::path(
    delete,
    path = "/api/admin/roles/{role}/members/{user}",
    operation_id = "removeMember",
    tag = "admin",
    summary = "Take the role from a user",
    description = "Security officers only; never yourself (403). Never waits for approval.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(
        ("role" = String, Path, description = ROLE_NAME, min_length = 1),
        ("user" = String, Path, description = "user name", min_length = 1),
    ),
    responses(
        (status = 204, description = "done"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn remove_member(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path((role, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "role.unassign", Touches::Membership { role: &role, user: &user }).await?;
    ctx.access.unassign_role(&role, &user, &auth.principal.actor()).await?;
    Ok(done())
}
