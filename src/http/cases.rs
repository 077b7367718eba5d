//! A case and its work: the case view (decrypted, audited), the raw message download, and the
//! actions. Each action reads the case under the write lock, checks the caller's permission on
//! the case's queue as it is at that moment, and commits the change with its `case_history` row
//! and audit entry in one transaction. A case in a queue the caller cannot read is "not found":
//! its existence is not revealed. Permission comes before validation, so a refused caller
//! learns nothing from the reason (404, then 403, then 422).
//!
//! Whatever an action must read through the pool besides the case (the assignee's permissions,
//! the customer's address for a reply) is read before the write lock is taken: a request holding
//! the lock must never wait for a pool connection that other requests hold while they wait for
//! the lock.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json, Path};
use super::validate::{CaseId, check_tag, check_text};
use crate::access::Permission;
use crate::intake::record::{Mailbox, Record};
use crate::intake::sla::Priority;
use crate::outbox::compose;
use crate::store::cases::{CaseChange, CaseRow, EntryBody, is_overdue, status_name};
use crate::store::{Store, millis_to_rfc3339, now_millis};

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

fn not_found(id: i64) -> ApiError {
    ApiError::not_found(format!("no case {id} in a queue you may read"))
}

fn missing(permissions: &[Permission], queue: &str) -> ApiError {
    let names: Vec<&str> = permissions.iter().map(|p| p.as_str()).collect();
    ApiError::forbidden(format!("this needs the {} permission on queue {queue:?}", names.join(" or ")))
}

/// The case, if the caller may read its queue.
async fn readable_case(store: &Store, auth: &Auth, id: i64) -> Result<CaseRow, ApiError> {
    store.case(id).await?.filter(|c| auth.principal.can(&c.queue, Permission::Read)).ok_or_else(|| not_found(id))
}

/// Takes the write lock on case `id` for a caller who must hold one of `permissions` there.
async fn begin<'s>(store: &'s Store, auth: &Auth, id: i64, permissions: &[Permission]) -> Result<CaseChange<'s>, ApiError> {
    let change = store.change_case(id).await?.ok_or_else(|| not_found(id))?;
    let queue = &change.case.queue;
    if !auth.principal.can(queue, Permission::Read) {
        return Err(not_found(id));
    }
    if !permissions.iter().any(|p| auth.principal.can(queue, *p)) {
        return Err(missing(permissions, queue));
    }
    Ok(change)
}

/// Commits unless nothing changed (then the case is returned as it is and nothing is recorded).
async fn finish(
    change: CaseChange<'_>,
    before: &CaseRow,
    auth: &Auth,
    action: &str,
    detail: &str,
    extra: Value,
) -> Result<axum::Json<Value>, ApiError> {
    let now = change.now;
    let case =
        if change.case == *before && extra.is_null() { change.case } else { change.commit(&auth.principal.name, action, detail).await? };
    let mut body = json!({ "case": case_json(&case, now) });
    if let Value::Object(extra) = extra {
        body.as_object_mut().expect("an object").extend(extra);
    }
    Ok(axum::Json(body))
}

/// New status, with the resolution time kept in step.
fn set_status(case: &mut CaseRow, status: &'static str, now: i64) {
    match status {
        "resolved" if case.status != "resolved" => case.resolved_at = Some(now),
        "resolved" => {}
        "closed" => case.resolved_at = case.resolved_at.or(Some(now)),
        _ => case.resolved_at = None,
    }
    case.status = status.to_string();
}

/// A change of priority moves the SLA due time to what the new priority allows from opening.
fn set_priority(ctx: &HttpContext, case: &mut CaseRow, priority: Priority) {
    if case.priority == priority.as_str() {
        return;
    }
    case.priority = priority.as_str().to_string();
    if let Some(opened) = chrono::DateTime::from_timestamp_millis(case.opened_at) {
        case.due_at = Some(ctx.settings.calendar.due(opened, priority).timestamp_millis());
    }
}

fn arrow(old: Option<&str>, new: Option<&str>) -> String {
    format!("{}→{}", old.unwrap_or("none"), new.unwrap_or("none"))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

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

/// `GET /api/cases/{id}`: the case with its messages' records, staff entries and history.
pub async fn get_case(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<Value>, ApiError> {
    let store = &ctx.access.store;
    let case = readable_case(store, &auth, id).await?;
    let list = store.case_messages(id).await?;
    let mut records = store.open_fields_many(&list.iter().map(|m| m.id).collect::<Vec<_>>()).await?;
    let mut messages = Vec::new();
    for m in list {
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
        let record = records.remove(&m.id).ok_or_else(|| ApiError::internal(format!("message #{} of case {id} vanished", m.id)))??;
        if let (Value::Object(item), Value::Object(fields)) = (&mut item, record_json(&record)) {
            item.extend(fields);
        }
        messages.push(item);
    }
    let entries: Vec<Value> = store
        .case_entries(id)
        .await?
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
    let history: Vec<Value> = store
        .case_history(id)
        .await?
        .into_iter()
        .map(|h| json!({ "id": h.id, "at": millis_to_rfc3339(h.at), "actor": h.actor, "action": h.action, "detail": h.detail }))
        .collect();
    ctx.access
        .audit(
            &auth.principal.actor(),
            "case.read",
            Some(format!("case:{id}")),
            Some(format!("via=http opening={} messages={}", case.opening, messages.len())),
        )
        .await?;
    let mut body = case_json(&case, now_millis());
    body["messages"] = Value::Array(messages);
    body["entries"] = Value::Array(entries);
    body["history"] = Value::Array(history);
    Ok(axum::Json(body))
}

/// `GET /api/messages/{number}/raw`: the stored message (our trace header + the bytes received)
/// for a caller who may read a queue in which it has a case.
pub async fn raw_message(State(ctx): State<Arc<HttpContext>>, auth: Auth, Path(number): Path<String>) -> Result<Response, ApiError> {
    let store = &ctx.access.store;
    let hidden = || ApiError::not_found(format!("no message {number:?} in a queue you may read"));
    let id = store.message_id_by_number(&number).await.map_err(|_| hidden())?.ok_or_else(hidden)?;
    if !store.message_queues(id).await?.iter().any(|q| auth.principal.can(q, Permission::Read)) {
        return Err(hidden());
    }
    let (number, raw) = store.open_message(id).await?;
    ctx.access.audit(&auth.principal.actor(), "message.read", Some(number.clone()), Some("via=http".into())).await?;
    let mut response = (StatusCode::OK, raw).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("message/rfc822"));
    let disposition = format!("attachment; filename=\"{}.eml\"", number.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(ApiError::internal)?);
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------------------------

/// `POST /api/cases/{id}/claim`: assign the case to me (a new case becomes open), taking it
/// over from whoever had it; the history keeps who that was.
pub async fn claim(State(ctx): State<Arc<HttpContext>>, auth: Auth, Path(CaseId(id)): Path<CaseId>) -> Result<axum::Json<Value>, ApiError> {
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    let me = &auth.principal;
    let mut detail = format!("assignee {}", arrow(before.assignee.as_deref(), Some(&me.name)));
    change.case.assignee_id = Some(me.user_id);
    change.case.assignee = Some(me.name.clone());
    if before.status == "new" {
        set_status(&mut change.case, "open", change.now);
        detail.push_str(" status new→open");
    }
    finish(change, &before, &auth, "claim", &detail, Value::Null).await
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
    let store = &ctx.access.store;
    let permissions = [Permission::Assign, Permission::Supervise];
    // Refuse before looking the assignee up (which reads through the pool, so cannot happen
    // under the lock): someone who may not assign here learns nothing about users.
    let case = readable_case(store, &auth, id).await?;
    if !permissions.iter().any(|p| auth.principal.can(&case.queue, *p)) {
        return Err(missing(&permissions, &case.queue));
    }
    // An unknown name, a locked user and one who may not read the queue get one answer: an
    // assigner learns whom the case can go to, not who has an account or who is locked.
    let cannot_work = |name: &str, queue: &str| {
        ApiError::invalid(format!("{name:?} cannot work cases in queue {queue:?} (no such user, locked, or no read permission there)"))
    };
    let assignee = match &req.user {
        None => None,
        Some(name) => match store.user_id(name).await? {
            Some(user_id) => Some(ctx.access.principal(user_id).await?.ok_or_else(|| cannot_work(name, &case.queue))?),
            None => return Err(cannot_work(name, &case.queue)),
        },
    };
    let mut change = begin(store, &auth, id, &permissions).await?;
    let before = change.case.clone();
    if let Some(p) = &assignee
        && !p.can(&before.queue, Permission::Read)
    {
        return Err(cannot_work(&p.name, &before.queue));
    }
    change.case.assignee_id = assignee.as_ref().map(|p| p.user_id);
    change.case.assignee = assignee.as_ref().map(|p| p.name.clone());
    let detail = format!("assignee {}", arrow(before.assignee.as_deref(), change.case.assignee.as_deref()));
    finish(change, &before, &auth, "assign", &detail, Value::Null).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    queue: String,
}

/// `POST /api/cases/{id}/transfer`: to another configured queue (supervise on the source). The
/// assignment ends: the new queue's people pick the case up.
pub async fn transfer(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<TransferRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Supervise]).await?;
    let before = change.case.clone();
    if !ctx.settings.config.queues.iter().any(|q| q.name == req.queue) {
        let names: Vec<&str> = ctx.settings.config.queues.iter().map(|q| q.name.as_str()).collect();
        return Err(ApiError::invalid(format!("no queue is named {:?} (queues: {})", req.queue, names.join(", "))));
    }
    if before.queue == req.queue {
        return Err(ApiError::conflict(format!("case {id} is already in queue {:?}", req.queue)));
    }
    change.transfer(&req.queue).await?;
    let mut detail = format!("queue {}→{}", before.queue, req.queue);
    if before.assignee_id.is_some() {
        change.case.assignee_id = None;
        change.case.assignee = None;
        detail.push_str(&format!(" assignee {}", arrow(before.assignee.as_deref(), None)));
    }
    finish(change, &before, &auth, "transfer", &detail, Value::Null).await
}

/// `POST /api/cases/{id}/escalate`: urgent, flagged and tagged `escalated`.
pub async fn escalate(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    change.case.escalated = true;
    set_priority(&ctx, &mut change.case, Priority::Urgent);
    if !change.case.tags.iter().any(|t| t == "escalated") {
        change.case.tags.push("escalated".into());
    }
    let detail = format!("priority {}→urgent", before.priority);
    finish(change, &before, &auth, "escalate", &detail, Value::Null).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    status: String,
}

/// `POST /api/cases/{id}/status`: new → open → waiting → resolved → closed (and back to open or
/// waiting; never back to new).
pub async fn status(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<StatusRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    let status = status_name(&req.status)
        .ok_or_else(|| ApiError::invalid(format!("unknown status {:?} (new, open, waiting, resolved, closed)", req.status)))?;
    if status == "new" && before.status != "new" {
        // A conflict with the case's state, not a malformed request (409, as for the same queue).
        return Err(ApiError::conflict("a case that has been worked on cannot become new again; set it to open"));
    }
    set_status(&mut change.case, status, change.now);
    let detail = format!("status {}→{status}", before.status);
    finish(change, &before, &auth, "status", &detail, Value::Null).await
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
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    let priority = super::validate::priority(&req.priority)
        .ok_or_else(|| ApiError::invalid(format!("unknown priority {:?} (urgent, normal or low)", req.priority)))?;
    set_priority(&ctx, &mut change.case, priority);
    let detail = format!("priority {}→{priority}", before.priority);
    finish(change, &before, &auth, "priority", &detail, Value::Null).await
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
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    let categories = &ctx.settings.config.categories;
    if let Some(code) = &req.category
        && !categories.iter().any(|c| &c.code == code)
    {
        let known: Vec<String> = categories.iter().map(|c| format!("{} ({})", c.code, c.name)).collect();
        return Err(ApiError::invalid(format!("no category is coded {code:?} (known: {})", known.join(", "))));
    }
    change.case.category = req.category;
    let detail = format!("category {}", arrow(before.category.as_deref(), change.case.category.as_deref()));
    finish(change, &before, &auth, "category", &detail, Value::Null).await
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
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    for tag in req.add.iter().chain(&req.remove) {
        check_tag(tag)?;
    }
    change.case.tags.retain(|t| !req.remove.contains(t));
    for tag in &req.add {
        if !change.case.tags.contains(tag) {
            change.case.tags.push(tag.clone());
        }
    }
    // Tags are sealed: the history and the audit log record how many changed, never which.
    let added = change.case.tags.iter().filter(|t| !before.tags.contains(t)).count();
    let removed = before.tags.iter().filter(|t| !change.case.tags.contains(t)).count();
    let detail = format!("tags added={added} removed={removed} count={}", change.case.tags.len());
    finish(change, &before, &auth, "tags", &detail, Value::Null).await
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
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    check_text("text", &req.text)?;
    let entry = change.add_entry("note", &auth.principal.name, &EntryBody { text: req.text, ..Default::default() }, None).await?;
    finish(change, &before, &auth, "note", &format!("entry={entry}"), json!({ "entry": entry })).await
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
    let mut change = begin(&ctx.access.store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    let due = chrono::DateTime::parse_from_rfc3339(&req.due)
        .map_err(|e| ApiError::invalid(format!("due {:?} is not an RFC 3339 time such as 2026-03-02T09:00:00+01:00: {e}", req.due)))?;
    let due_ms = due.timestamp_millis();
    if due_ms <= change.now {
        return Err(ApiError::invalid("due must be in the future"));
    }
    change.case.follow_up_at = Some(due_ms);
    let due_text = millis_to_rfc3339(due_ms);
    let body = EntryBody { text: req.note, due: Some(due_text.clone()), ..Default::default() };
    let entry = change.add_entry("follow-up", &auth.principal.name, &body, None).await?;
    finish(change, &before, &auth, "follow-up", &format!("entry={entry} due={due_text}"), json!({ "entry": entry })).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    body: String,
}

/// Whom a reply goes to: Reply-To, else From, of the case's latest message from a person outside
/// (automatic messages and our own addresses do not count). Returns (message id, mailbox, record).
async fn customer(ctx: &HttpContext, case_id: i64) -> Result<Option<(i64, Mailbox, Record)>, ApiError> {
    let store = &ctx.access.store;
    for m in store.case_messages(case_id).await?.into_iter().rev().filter(|m| !m.automatic) {
        let record = store.open_fields(m.id).await?;
        let mailbox = record.reply_to.first().or(record.from.first()).cloned();
        if let Some(mailbox) = mailbox.filter(|mb| {
            mb.address.as_deref().is_some_and(|a| usable_address(a) && !ctx.settings.own_addresses.contains(&a.trim().to_lowercase()))
        }) {
            return Ok(Some((m.id, mailbox, record)));
        }
    }
    Ok(None)
}

fn usable_address(address: &str) -> bool {
    let a = address.trim();
    a.contains('@') && !a.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
}

/// `POST /api/cases/{id}/reply`: to the customer through the outbox, tagged with the case's
/// registration number; the case then waits on the customer.
pub async fn reply(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(CaseId(id)): Path<CaseId>,
    Json(req): Json<ReplyRequest>,
) -> Result<axum::Json<Value>, ApiError> {
    let store = &ctx.access.store;
    let case = readable_case(store, &auth, id).await?;
    if !auth.principal.can(&case.queue, Permission::Act) {
        return Err(missing(&[Permission::Act], &case.queue));
    }
    // The stated order: 401 → 404 → 403 → 422 → 503. A bad request is a 422 even without an outbox.
    check_text("body", &req.body)?;
    if ctx.settings.config.outbox.is_none() {
        return Err(ApiError::unavailable("replies are sent through the outbox, and this server has no [outbox] section configured"));
    }
    let from = ctx
        .settings
        .queue_address(&case.queue)
        .ok_or_else(|| ApiError::invalid(format!("queue {:?} has no address to send from", case.queue)))?
        .to_string();
    let (answers, to, original) =
        customer(&ctx, id).await?.ok_or_else(|| ApiError::invalid("no message of this case names a customer address to reply to"))?;
    let to_address = to.address.clone().unwrap_or_default();
    let answered = compose::Original {
        from: &from,
        to_name: to.name.as_deref(),
        to_address: &to_address,
        subject: original.subject.as_deref(),
        message_id: original.message_id.as_deref(),
        references: &original.references,
    };
    let compose::Reply { data, message_id, subject } =
        compose::reply(&answered, &case.opening, &req.body, &ctx.settings.config.server.hostname).map_err(ApiError::internal)?;

    let mut change = begin(store, &auth, id, &[Permission::Act]).await?;
    let before = change.case.clone();
    if before.queue != case.queue {
        return Err(ApiError::conflict("the case moved to another queue meanwhile; reload it and reply again"));
    }
    let outbox = change.enqueue_mail(answers, "reply", &from, &to_address, &data).await?;
    let body = EntryBody { text: req.body, to: Some(to_address), subject: Some(subject), message_id: Some(message_id), due: None };
    let entry = change.add_entry("reply", &auth.principal.name, &body, Some(outbox)).await?;
    change.case.first_response_at = change.case.first_response_at.or(Some(change.now));
    set_status(&mut change.case, "waiting", change.now);
    let detail = format!("entry={entry} outbox={outbox} status {}→waiting", before.status);
    finish(change, &before, &auth, "reply", &detail, json!({ "entry": entry, "outbox": outbox })).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_keeps_the_resolution_time_in_step() {
        let mut case = CaseRow {
            id: 1,
            opening: "MR-1".into(),
            queue: "support".into(),
            status: "open".into(),
            priority: "normal".into(),
            category: None,
            tags: vec![],
            due_at: None,
            opened_at: 0,
            updated_at: 0,
            assignee_id: None,
            assignee: None,
            escalated: false,
            spam: false,
            follow_up_at: None,
            first_response_at: None,
            resolved_at: None,
        };
        set_status(&mut case, "resolved", 10);
        assert_eq!(case.resolved_at, Some(10));
        set_status(&mut case, "closed", 20);
        assert_eq!(case.resolved_at, Some(10), "closing keeps the resolution time");
        set_status(&mut case, "open", 30);
        assert_eq!(case.resolved_at, None, "re-opening clears it");
        set_status(&mut case, "closed", 40);
        assert_eq!(case.resolved_at, Some(40));
    }
}
