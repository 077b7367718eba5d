//! Users: list, create (with an enrolment code), reset, lock, unlock, remove.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Content, Required};
use utoipa::{Modify, ToSchema};

use super::answers::{Enrolment, NewAccount, Pending, Reset, UserList};
use super::{OFFICER, Officer, done, pending};
use crate::access::admin::{By, Touches};
use crate::access::approvals::RESET;
use crate::access::resets::ResetOutcome;
use crate::http::HttpContext;
use crate::http::error::{ApiError, Json, Path};
use crate::http::openapi::doc::ChangeErrors;
use crate::http::openapi::doc::{BadRequest, Conflict, Forbidden, Invalid, NotFound, TooLarge, Unauthenticated, UnsupportedMediaType};
use crate::http::validate::name_schema;

const NO_PASSWORDS: &str = "an officer does not choose passwords: the answer carries a one-time enrolment code for the user, \
                            who sets his own password with it (POST /api/enrol or `mailroom user enrol`)";

/// `GET /api/admin/users`.
#[utoipa::path(
    get,
    path = "/api/admin/users",
    operation_id = "listUsers",
    tag = "admin",
    summary = "Users",
    description = OFFICER,
    responses(
        (status = 200, description = "users", body = inline(UserList)),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list_users(State(ctx): State<Arc<HttpContext>>, Officer(_): Officer) -> Result<axum::Json<UserList>, ApiError> {
    let users = ctx.access.list_users().await?.into_iter().map(Into::into).collect();
    Ok(axum::Json(UserList { users }))
}

fn names_schema() -> ArrayBuilder {
    ArrayBuilder::new().items(name_schema())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(schema_with = name_schema)]
    name: String,
    /// Only to refuse it with a reason (the document does not offer it).
    #[schema(ignore)]
    password: Option<Value>,
    #[serde(default)]
    #[schema(schema_with = names_schema)]
    roles: Vec<String>,
}

/// `POST /api/admin/users`: 201 with the enrolment code; 202 when some roles wait for approval
/// (the account exists, those roles do not apply yet).
#[utoipa::path(
    post,
    path = "/api/admin/users",
    operation_id = "addUser",
    tag = "admin",
    summary = "Create a user (with a one-time enrolment code)",
    description = "Security officers only. The account has no password: the answer carries a one-time enrolment code (shown once) that the \
         user sets his own password with (POST /api/enrol). A password in the body is refused (422). Roles that open a queue's mail \
         (or the security-officer role) wait for a second person's approval: then the answer is 202 and lists them under pending.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = inline(NewUser),
    responses(
        (status = 201, description = "created; every role applied", body = NewAccount),
        (status = 202, description = "created; the roles under pending wait for a second person's approval", body = NewAccount),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn add_user(State(ctx): State<Arc<HttpContext>>, Officer(auth): Officer, Json(req): Json<NewUser>) -> Result<Response, ApiError> {
    if req.password.is_some() {
        return Err(ApiError::invalid(NO_PASSWORDS));
    }
    let account = ctx.access.add_user_enrolled(&req.name, &req.roles, By::Staff(&auth.principal)).await?;
    let status = if account.pending.is_empty() { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok((status, axum::Json(NewAccount::from(account))).into_response())
}

/// A reset's body in the document: nothing, or `{}` (the handler reads the bytes itself, to
/// refuse a password with a reason). Written here because `#[utoipa::path]` makes a body optional
/// only as `Option<T>`, which would also offer `null`, and the server refuses that (422).
pub struct ResetBody;

impl Modify for ResetBody {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let empty = ObjectBuilder::new().schema_type(Type::Object).additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let body = RequestBodyBuilder::new().content("application/json", Content::new(Some(empty))).required(Some(Required::False)).build();
        let operation = openapi.paths.paths.get_mut("/api/admin/users/{name}/password").and_then(|item| item.post.as_mut());
        operation.expect("resetPassword is documented").request_body = Some(body.into());
    }
}

/// The path parameter naming a user.
const USER_NAME: &str = "user name";

/// `POST /api/admin/users/{name}/password`: a reset (no body needed; a password in the body is
/// refused). 200 with the enrolment code when it applies at once: the old password stops working
/// and the user's sessions end. 202 with the pending change when the account reads a queue or is
/// an officer: on approval the requester collects the code with `POST /api/admin/changes/{id}/code`.
#[utoipa::path(
    post,
    path = "/api/admin/users/{name}/password",
    operation_id = "resetPassword",
    tag = "admin",
    summary = "Reset a user's password (with a one-time enrolment code)",
    description = "The old password stops working and the user's sessions end; the user sets a new one with a one-time enrolment code (POST \
         /api/enrol). For an account that reads no queue and is no officer it applies at once and the answer carries the code \
         (shown once). For an account that can read a queue's mail or is a security officer (and access.grant_approval = \
         second-person) it waits for a second person (202, nothing changes yet); once approved, the requester collects the code \
         with POST /api/admin/changes/{id}/code. Not your own account (403). No body (or {}); a password in the body is refused \
         (422).",
    // The optional body: `ResetBody`.
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    responses(
        (status = 200, description = "reset", body = Reset),
        (status = 202, description = "held for a second person's approval (nothing applied yet)", body = Pending),
        ChangeErrors,
    ),
)]
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
        ResetOutcome::Issued(enrolment) => axum::Json(Reset { enrolment: Enrolment(enrolment), name }).into_response(),
        ResetOutcome::Pending(change) => pending(*change),
    })
}

/// `POST /api/admin/users/{name}/lock`: no login, sessions end at once. Never waits.
#[utoipa::path(
    post,
    path = "/api/admin/users/{name}/lock",
    operation_id = "lockUser",
    tag = "admin",
    summary = "Lock a user",
    description = "No login; open sessions stop working at once. Not your own account (403).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    responses(
        (status = 204, description = "done"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
    ),
)]
pub async fn lock_user(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ctx.access.refuse_own(&auth.principal, "user.lock", Touches::Account(&name)).await?;
    ctx.access.lock_user(&name, &auth.principal.actor()).await?;
    Ok(done())
}

/// `POST /api/admin/users/{name}/two-factor/reset`: a user who lost his second factor.
#[utoipa::path(
    post,
    path = "/api/admin/users/{name}/two-factor/reset",
    operation_id = "resetTwoFactor",
    tag = "admin",
    summary = "Reset a user's lost second factor",
    description = "For a user who lost the device with his authenticator app (and his recovery codes): his TOTP secret, recovery codes \
         and IMAP app passwords are removed and his sessions end; his password stays, so this alone opens his account to nobody. \
         At his next login he enrols a new device (at once, if one of his roles requires two-factor login). Applies at once, \
         audited as user.two-factor-reset. Not your own account (403); 409 when he has no second factor and no app password.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    responses(
        (status = 200, description = "reset: what was removed", body = inline(TwoFactorReset)),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Invalid),
    ),
)]
pub async fn reset_two_factor(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
) -> Result<axum::Json<TwoFactorReset>, ApiError> {
    ctx.access.refuse_own(&auth.principal, "user.two-factor-reset", Touches::Account(&name)).await?;
    let reset = ctx.access.reset_two_factor(&name, &auth.principal.actor()).await?;
    Ok(axum::Json(TwoFactorReset { name, totp: reset.totp, app_passwords_revoked: reset.app_passwords }))
}

/// What resetting a user's second factor removed.
#[derive(serde::Serialize, ToSchema)]
pub struct TwoFactorReset {
    name: String,
    /// His TOTP secret and recovery codes were removed (false: he had app passwords only).
    totp: bool,
    /// How many IMAP app passwords were revoked.
    app_passwords_revoked: u64,
}

/// `POST /api/admin/users/{name}/email`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserEmail {
    /// The user's own address for notifications; null (or "") removes it.
    #[schema(max_length = 254, example = "anna@example.org")]
    email: Option<String>,
}

/// `POST /api/admin/users/{name}/email`.
#[utoipa::path(
    post,
    path = "/api/admin/users/{name}/email",
    operation_id = "setUserEmail",
    tag = "admin",
    summary = "Set a user's notification address",
    description = "Where the user's notifications (SLA warnings, breaches, new urgent or VIP cases) are mailed; null removes it (he then \
         sees them on the web page only). A staff address of his own, never a customer's. Audited as user.email.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    request_body = UserEmail,
    responses(
        (status = 204, description = "done"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn set_email(
    State(ctx): State<Arc<HttpContext>>,
    Officer(auth): Officer,
    Path(name): Path<String>,
    Json(req): Json<UserEmail>,
) -> Result<Response, ApiError> {
    ctx.access.set_email(&name, req.email.as_deref(), &auth.principal.actor()).await?;
    Ok(done())
}

/// `POST /api/admin/users/{name}/unlock`.
#[utoipa::path(
    post,
    path = "/api/admin/users/{name}/unlock",
    operation_id = "unlockUser",
    tag = "admin",
    summary = "Unlock a user",
    description = "Also lifts a temporary lockout after failed logins. Not your own account (403).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    responses(
        (status = 204, description = "done"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
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
#[utoipa::path(
    delete,
    path = "/api/admin/users/{name}",
    operation_id = "removeUser",
    tag = "admin",
    summary = "Remove a user",
    description = "Their cases become unassigned; the audit log keeps their history. Not your own account (403).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = USER_NAME, min_length = 1)),
    responses(
        (status = 204, description = "done"),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Invalid),
    ),
)]
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
