//! The case endpoints: each maps its request to a call of the case service ([`crate::cases`]),
//! and the result or refusal to its response. The rules (who may do what, in which order
//! refusals come) are the service's; the JSON shapes are in `answers.rs`.

pub mod answers;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json, Path};
use super::openapi::doc::{
    BadRequest, Conflict, ErrorBody, Forbidden, Gone, Invalid, NotFound, TooLarge, Unauthenticated, Unavailable, UnsupportedMediaType,
};
use super::validate::{CaseId, CaseIdParam, tag_schema, text_schema};
use crate::cases::CaseError;
use crate::http::openapi::doc::ChangeErrors;
use answers::{ActionResult, CaseDetail, Sorted};

fn nullable_string_schema() -> Object {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])).build()
}

fn nullable_name_schema() -> Object {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null])).min_length(Some(1)).build()
}

fn status_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(crate::store::cases::STATUSES)).build()
}

fn priority_schema() -> Object {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["urgent", "normal", "low"])).build()
}

/// The stored message as the document describes it: bytes.
pub struct RawMessage;

impl utoipa::PartialSchema for RawMessage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary))).into()
    }
}

impl ToSchema for RawMessage {}

fn tags_schema() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new().items(tag_schema()).build()
}

/// The view written into the audit entries of reads made through this API.
const VIA: &str = "http";

impl From<CaseError> for ApiError {
    fn from(e: CaseError) -> ApiError {
        match e {
            e @ (CaseError::NotFound(_) | CaseError::NoSuchMessage(_) | CaseError::NoSuchQueue(_)) => ApiError::not_found(e.to_string()),
            e @ (CaseError::Forbidden { .. } | CaseError::Refused(_)) => ApiError::forbidden(e.to_string()),
            CaseError::Invalid(reason) => ApiError::invalid(reason),
            CaseError::Conflict(reason) => ApiError::conflict(reason),
            CaseError::Unavailable(reason) => ApiError::unavailable(reason),
            CaseError::Internal(reason) => ApiError::internal(reason),
            CaseError::Store(e) => e.into(),
        }
    }
}

/// `GET /api/cases/{id}`: the case with its messages' records, staff entries and history.
#[utoipa::path(
    get,
    path = "/api/cases/{id}",
    operation_id = "getCase",
    tag = "cases",
    summary = "A case with its messages, entries and history",
    description = "The messages' records (from, to, cc, subject, date, attachments, registration number, received_at, tags, auth), the staff entries (notes, replies, follow-ups) and the case history. Decrypted on read and audited as case.read. 404 for a case in a queue the caller may not read.",
    params(CaseIdParam),
    responses(
        (status = 200, description = "the case", body = CaseDetail),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
    ),
)]
pub async fn get_case(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<Sorted<CaseDetail>>, ApiError> {
    Ok(axum::Json(Sorted(ctx.cases.read(&auth.principal, VIA, id).await?.into())))
}

/// `GET /api/messages/{number}/raw`: the stored message (our trace header + the bytes received)
/// for a caller who may read a queue in which it has a case.
#[utoipa::path(
    get,
    path = "/api/messages/{number}/raw",
    operation_id = "rawMessage",
    tag = "cases",
    summary = "Download a message as stored",
    description = "Our Received: header followed by the bytes received, for a caller who may read a queue in which the message has a case. Audited as message.read. 410 (error purged) for a registration whose content retention or erasure destroyed, to a caller who may read the queue it was registered into.",
    params(("number" = String, Path, description = "registration number", min_length = 1)),
    responses(
        (status = 200, description = "the message", content_type = "message/rfc822", body = inline(RawMessage)),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 410, response = Gone),
    ),
)]
pub async fn raw_message(State(ctx): State<Arc<HttpContext>>, auth: Auth, Path(number): Path<String>) -> Result<Response, ApiError> {
    let message = ctx.cases.raw_message(&auth.principal, VIA, &number).await?;
    let mut response = (StatusCode::OK, message.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("message/rfc822"));
    let file = message.number.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_");
    let disposition = format!("attachment; filename=\"{file}.eml\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(ApiError::internal)?);
    Ok(response)
}

/// `POST /api/cases/{id}/claim`: assign the case to me (a new case becomes open).
#[utoipa::path(
    post,
    path = "/api/cases/{id}/claim",
    operation_id = "claim",
    tag = "cases",
    summary = "Take the case (act)",
    description = "Assigns the case to the caller, taking it over from whoever had it (the history keeps who); a new case becomes open.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn claim(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.claim(&auth.principal, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    // null: unassign. Required (null, not absent), as the document says.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true, schema_with = nullable_name_schema)]
    user: Option<String>,
}

/// `POST /api/cases/{id}/assign`: to someone who may read the case's queue (or to nobody).
#[utoipa::path(
    post,
    path = "/api/cases/{id}/assign",
    operation_id = "assign",
    tag = "cases",
    summary = "Assign the case (assign or supervise)",
    description = "To a user who may read the case's queue (422 otherwise); null unassigns.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = AssignRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn assign(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<AssignRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.assign(&auth.principal, id, req.user.as_deref()).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    #[schema(min_length = 1)]
    queue: String,
}

/// `POST /api/cases/{id}/transfer`: to another configured queue (supervise on the source).
#[utoipa::path(
    post,
    path = "/api/cases/{id}/transfer",
    operation_id = "transfer",
    tag = "cases",
    summary = "Move the case to another queue (supervise on its queue)",
    description = "The target must be a configured queue. The assignment ends; the case's messages get fresh IMAP UIDs in the target mailbox.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = TransferRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "the case is already in that queue", body = ErrorBody),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn transfer(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<TransferRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.transfer(&auth.principal, id, &req.queue).await?.into()))
}

/// `POST /api/cases/{id}/escalate`: urgent, flagged and tagged `escalated`.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/escalate",
    operation_id = "escalate",
    tag = "cases",
    summary = "Escalate (act)",
    description = "Priority urgent (the due time follows), flagged escalated, tag escalated.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
    ),
)]
pub async fn escalate(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.escalate(&auth.principal, id).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    #[schema(schema_with = status_schema)]
    status: String,
}

/// `POST /api/cases/{id}/status`.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/status",
    operation_id = "setStatus",
    tag = "cases",
    summary = "Change the status (act)",
    description = "new → open → waiting → resolved → closed; a worked case cannot become new again. Resolving records the resolution time, re-opening clears it.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "new for a case that has been worked on", body = ErrorBody),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn status(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<StatusRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.change_status(&auth.principal, id, &req.status).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    #[schema(schema_with = priority_schema)]
    priority: String,
}

/// `POST /api/cases/{id}/priority`: the due time follows the new priority's SLA.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/priority",
    operation_id = "setPriority",
    tag = "cases",
    summary = "Change the priority (act)",
    description = "The due time becomes what the new priority's SLA allows from opening.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = PriorityRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn priority(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<PriorityRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.change_priority(&auth.principal, id, &req.priority).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    // A configured category code; null clears it. Required (null, not absent). The codes are
    // filled in by `openapi::document_for`.
    #[serde(deserialize_with = "Option::deserialize")]
    #[schema(required = true, schema_with = nullable_string_schema)]
    category: Option<String>,
}

/// `POST /api/cases/{id}/category`.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/category",
    operation_id = "setCategory",
    tag = "cases",
    summary = "Change the category (act)",
    description = "A configured category code; null clears it.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = CategoryRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn category(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<CategoryRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.change_category(&auth.principal, id, req.category).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    add: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    remove: Vec<String>,
}

/// `POST /api/cases/{id}/tags`: removes, then adds.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/tags",
    operation_id = "setTags",
    tag = "cases",
    summary = "Add and remove tags (act)",
    description = "Removes, then adds. Tags have 1 to 64 characters without white space, control characters or commas. The history and the audit log record how many changed, not which (tags are stored sealed).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = TagsRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn tags(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<TagsRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.change_tags(&auth.principal, id, &req.add, &req.remove).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    #[schema(schema_with = text_schema)]
    text: String,
}

/// `POST /api/cases/{id}/notes`: an internal note, sealed.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/notes",
    operation_id = "addNote",
    tag = "cases",
    summary = "Add an internal note (act)",
    description = "Stored encrypted.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = NoteRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn note(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<NoteRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.note(&auth.principal, id, req.text).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpRequest {
    // RFC 3339, in the future.
    #[schema(format = DateTime)]
    due: String,
    // A string when given (null is refused, as the document says).
    #[serde(default)]
    note: String,
}

/// `POST /api/cases/{id}/follow-up`: a date to come back to the case, with an optional note.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/follow-up",
    operation_id = "followUp",
    tag = "cases",
    summary = "Set a follow-up date (act)",
    description = "due is an RFC 3339 time in the future; the optional note is stored encrypted.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = FollowUpRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        ChangeErrors,
    ),
)]
pub async fn follow_up(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<FollowUpRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.follow_up(&auth.principal, id, &req.due, req.note).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    #[schema(schema_with = text_schema)]
    body: String,
}

/// `POST /api/cases/{id}/reply`: to the customer through the outbox, tagged with the case's
/// registration number; the case then waits on the customer.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/reply",
    operation_id = "reply",
    tag = "cases",
    summary = "Reply to the customer (act)",
    description = "Sent through the outbox from the queue's address to the Reply-To (else From) of the case's latest customer message, with subject `Re: [REGISTRATION NUMBER] …` so the answer threads back, \
         In-Reply-To/References to the customer's message and a fresh Message-ID. Records the first response time and sets the case waiting. 503 when no [outbox] is configured. \
         The body may use the reply placeholders ({customer_name}, {number}, {due}, {agent}, {queue}; {{ and }} for literal braces); one without a value is refused (422) naming it. \
         The mail waits in the outbox for the undo window ([outbox] undo_seconds), during which POST /api/cases/{id}/replies/{entry}/undo takes it back.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(CaseIdParam),
    request_body = ReplyRequest,
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
        (status = 503, response = Unavailable),
    ),
)]
pub async fn reply(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<ReplyRequest>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.reply(&auth.principal, id, req.body).await?.into()))
}

/// `POST /api/cases/{id}/replies/{entry}/undo`: takes a reply back within the undo window.
#[utoipa::path(
    post,
    path = "/api/cases/{id}/replies/{entry}/undo",
    operation_id = "undoReply",
    tag = "cases",
    summary = "Take a reply back within the undo window (its author, or supervise)",
    description = "Withdraws the reply's outgoing mail while it still waits in the outbox ([outbox] undo_seconds): nothing is sent, the entry stays in the case \
         marked withdrawn, and a case status the reply changed goes back to what it was. After the window, or once the outbox has taken it: 409 (already sent, too late).",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    params(
        CaseIdParam,
        ("entry" = i64, Path, description = "the reply's entry id", minimum = 1),
    ),
    responses(
        (status = 200, description = "the case after the change", body = ActionResult),
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
pub async fn undo_reply(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path((CaseId(id), entry)): Path<(CaseId, i64)>,
) -> Result<axum::Json<ActionResult>, ApiError> {
    Ok(axum::Json(ctx.cases.undo_reply(&auth.principal, id, entry).await?.into()))
}
