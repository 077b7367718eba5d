//! The case endpoints: each maps its request to a call of the case service ([`crate::cases`]),
//! and the result or refusal to its response. The rules (who may do what, in which order
//! refusals come) are the service's; the JSON shapes are here.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json, Path};
use super::validate::CaseId;
use crate::cases::CaseError;
use crate::cases::view::CaseView;
use crate::cases::workflow::Outcome;
use crate::intake::record::{Mailbox, Record};
use crate::store::cases::{CaseRow, is_overdue};
use crate::store::millis_to_rfc3339;

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

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| json!(millis_to_rfc3339(ms)))
}

/// A case's metadata as every endpoint shows it.
pub fn case_json(c: &CaseRow, now: i64) -> Value {
    json!({
        "id": c.id,
        "opening": c.opening,
        "queue": c.queue,
        "status": c.status,
        "priority": c.priority,
        "category": c.category,
        "tags": c.tags,
        "due": time(c.due_at),
        "overdue": is_overdue(&c.status, c.due_at, now),
        "assignee": c.assignee,
        "escalated": c.escalated,
        "spam": c.spam,
        "opened_at": millis_to_rfc3339(c.opened_at),
        "updated_at": millis_to_rfc3339(c.updated_at),
        "follow_up_at": time(c.follow_up_at),
        "first_response_at": time(c.first_response_at),
        "resolved_at": time(c.resolved_at),
    })
}

pub fn mailbox_json(m: &Mailbox) -> Value {
    json!({ "name": m.name, "address": m.address })
}

fn mailboxes_json(list: &[Mailbox]) -> Value {
    Value::Array(list.iter().map(mailbox_json).collect())
}

fn record_json(r: &Record) -> Value {
    json!({
        "from": mailboxes_json(&r.from),
        "to": mailboxes_json(&r.to),
        "cc": mailboxes_json(&r.cc),
        "reply_to": mailboxes_json(&r.reply_to),
        "subject": r.subject,
        "date": r.date,
        "message_id": r.message_id,
        "attachments": r.attachments.iter().map(|a| json!({ "name": a.name, "content_type": a.content_type, "size": a.size })).collect::<Vec<_>>(),
    })
}

/// The case after an action, with the entry (and outbox row) it added.
fn outcome_json(outcome: Outcome) -> axum::Json<Value> {
    let mut body = json!({ "case": case_json(&outcome.case, outcome.now) });
    if let Some(entry) = outcome.entry {
        body["entry"] = json!(entry);
    }
    if let Some(outbox) = outcome.outbox {
        body["outbox"] = json!(outbox);
    }
    axum::Json(body)
}

fn view_json(view: CaseView) -> Value {
    let messages: Vec<Value> = view
        .messages
        .iter()
        .map(|(m, record)| {
            let mut item = json!({
                "number": m.number,
                "received_at": millis_to_rfc3339(m.received_at),
                "size": m.size,
                "tags": m.tags,
                "auth": m.auth,
                "automatic": m.automatic,
                "parsed": m.parsed,
                "raw": format!("/api/messages/{}/raw", m.number),
            });
            if let (Value::Object(item), Value::Object(fields)) = (&mut item, record_json(record)) {
                item.extend(fields);
            }
            item
        })
        .collect();
    let entries: Vec<Value> = view
        .entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": millis_to_rfc3339(e.at),
                "author": e.author,
                "kind": e.kind,
                "text": e.body.text,
                "to": e.body.to,
                "subject": e.body.subject,
                "due": e.body.due,
                "outbox_status": e.outbox_status,
            })
        })
        .collect();
    let history: Vec<Value> = view
        .history
        .into_iter()
        .map(|h| json!({ "id": h.id, "at": millis_to_rfc3339(h.at), "actor": h.actor, "action": h.action, "detail": h.detail }))
        .collect();
    let mut body = case_json(&view.case, view.now);
    body["messages"] = Value::Array(messages);
    body["entries"] = Value::Array(entries);
    body["history"] = Value::Array(history);
    body
}

/// `GET /api/cases/{id}`: the case with its messages' records, staff entries and history.
pub async fn get_case(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(axum::Json(view_json(ctx.cases.read(&auth.principal, VIA, id).await?)))
}

/// `GET /api/messages/{number}/raw`: the stored message (our trace header + the bytes received)
/// for a caller who may read a queue in which it has a case.
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
pub async fn claim(State(ctx): State<Arc<HttpContext>>, auth: Auth, Path(CaseId(id)): Path<CaseId>) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.claim(&auth.principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// null: unassign. Required (null, not absent), as the document says.
    #[serde(deserialize_with = "Option::deserialize")]
    user: Option<String>,
}

/// `POST /api/cases/{id}/assign`: to someone who may read the case's queue (or to nobody).
pub async fn assign(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<AssignRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.assign(&auth.principal, id, req.user.as_deref()).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    queue: String,
}

/// `POST /api/cases/{id}/transfer`: to another configured queue (supervise on the source).
pub async fn transfer(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<TransferRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.transfer(&auth.principal, id, &req.queue).await?))
}

/// `POST /api/cases/{id}/escalate`: urgent, flagged and tagged `escalated`.
pub async fn escalate(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.escalate(&auth.principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    status: String,
}

/// `POST /api/cases/{id}/status`.
pub async fn status(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<StatusRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.change_status(&auth.principal, id, &req.status).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    priority: String,
}

/// `POST /api/cases/{id}/priority`: the due time follows the new priority's SLA.
pub async fn priority(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<PriorityRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.change_priority(&auth.principal, id, &req.priority).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    /// A configured category code; null clears it. Required (null, not absent).
    #[serde(deserialize_with = "Option::deserialize")]
    category: Option<String>,
}

/// `POST /api/cases/{id}/category`.
pub async fn category(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<CategoryRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.change_category(&auth.principal, id, req.category).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsRequest {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

/// `POST /api/cases/{id}/tags`: removes, then adds.
pub async fn tags(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<TagsRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.change_tags(&auth.principal, id, &req.add, &req.remove).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    text: String,
}

/// `POST /api/cases/{id}/notes`: an internal note, sealed.
pub async fn note(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<NoteRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.note(&auth.principal, id, req.text).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpRequest {
    /// RFC 3339, in the future.
    due: String,
    /// A string when given (null is refused, as the document says).
    #[serde(default)]
    note: String,
}

/// `POST /api/cases/{id}/follow-up`: a date to come back to the case, with an optional note.
pub async fn follow_up(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<FollowUpRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.follow_up(&auth.principal, id, &req.due, req.note).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    body: String,
}

/// `POST /api/cases/{id}/reply`: to the customer through the outbox, tagged with the case's
/// registration number; the case then waits on the customer.
pub async fn reply(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<ReplyRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    Ok(outcome_json(ctx.cases.reply(&auth.principal, id, req.body).await?))
}
