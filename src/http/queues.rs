//! Queues: which ones I may read (with counts), a queue's cases (filtered, sorted, paged), and
//! the supervisors' statistics.

use std::sync::Arc;

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::auth::Auth;
use super::cases::{case_json, mailbox_json};
use super::error::{ApiError, Path, Query};
use super::validate::{check_tag, priority, split_list};
use crate::access::Permission;
use crate::store::cases::{ACTIVE, AssigneeFilter, CaseQuery, CategoryFilter, Cursor, PRIORITIES, STATUSES, Sort, status_name};
use crate::store::now_millis;

pub const MAX_LIMIT: usize = 200;
pub const DEFAULT_LIMIT: usize = 50;
/// Deeper pages go by cursor: an offset costs reading every case before it.
pub const MAX_OFFSET: usize = 10_000;

/// `GET /api/queues`.
pub async fn list_queues(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<Value>, ApiError> {
    let store = &ctx.access.store;
    let now = now_millis();
    let mut queues = Vec::new();
    for queue in &ctx.settings.config.queues {
        if !auth.principal.can(&queue.name, Permission::Read) {
            continue;
        }
        let counts = store.queue_counts(&queue.name, now).await?;
        let permissions: Vec<Permission> = Permission::ALL.into_iter().filter(|p| auth.principal.can(&queue.name, *p)).collect();
        queues.push(json!({
            "name": queue.name,
            "address": ctx.settings.queue_address(&queue.name),
            "permissions": permissions,
            "active": counts.active,
            "overdue": counts.overdue,
            "by_status": counts.by_status,
        }));
    }
    if queues.is_empty() {
        return Err(ApiError::forbidden("you may read no queue (a security officer needs a queue role as well to read mail)"));
    }
    Ok(axum::Json(json!({ "queues": queues })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    priority: Option<String>,
    category: Option<String>,
    overdue: Option<bool>,
    tag: Option<String>,
    assignee: Option<String>,
    sort: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
}

/// Turns the query parameters into a store query; everything unknown is a 422 naming what is known.
async fn case_query(ctx: &HttpContext, auth: &Auth, queue: &str, p: ListParams) -> Result<CaseQuery, ApiError> {
    let statuses = match p.status.as_deref() {
        None | Some("active") => ACTIVE.to_vec(),
        Some("all") => STATUSES.to_vec(),
        Some(list) => split_list(list, status_name, "status", "new, open, waiting, resolved, closed, or active / all")?,
    };
    let priorities = match p.priority.as_deref() {
        None => PRIORITIES.to_vec(),
        Some(list) => split_list(list, priority, "priority", "urgent, normal, low")?,
    };
    let category = match p.category.as_deref() {
        None => CategoryFilter::Any,
        Some("none") => CategoryFilter::Uncategorised,
        Some(code) if ctx.settings.config.categories.iter().any(|c| c.code == code) => CategoryFilter::Code(code.to_string()),
        Some(code) => {
            let known: Vec<&str> = ctx.settings.config.categories.iter().map(|c| c.code.as_str()).collect();
            return Err(ApiError::invalid(format!("no category is coded {code:?} (known: {}, or none)", known.join(", "))));
        }
    };
    let assignee = match p.assignee.as_deref() {
        None => AssigneeFilter::Anyone,
        Some("none") => AssigneeFilter::Nobody,
        Some("me") => AssigneeFilter::User(auth.principal.user_id),
        Some("") => return Err(ApiError::invalid("assignee must not be empty (me, none, or a user name)")),
        // A name that is no user is assigned no case: the same empty answer as a user who has
        // none here, so the filter cannot be used to find out who has an account.
        Some(name) => ctx.access.store.user_id(name).await?.map_or(AssigneeFilter::NoOne, AssigneeFilter::User),
    };
    let sort: Sort = p.sort.as_deref().unwrap_or("due").parse().map_err(ApiError::invalid)?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::invalid(format!("offset must be at most {MAX_OFFSET}; page further with the cursor")));
    }
    let after = match p.cursor.as_deref() {
        None => None,
        Some(_) if offset > 0 => return Err(ApiError::invalid("give either offset or cursor, not both")),
        Some(text) => {
            let cursor: Cursor = B64
                .decode(text)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::invalid("the cursor is malformed (use next_cursor from the previous page as it is)"))?;
            if cursor.sort != sort.name() {
                return Err(ApiError::invalid(format!("the cursor belongs to sort {:?}, not {:?}", cursor.sort, sort.name())));
            }
            Some(cursor)
        }
    };
    if let Some(tag) = &p.tag {
        check_tag(tag)?;
    }
    Ok(CaseQuery {
        queue: queue.to_string(),
        statuses,
        priorities,
        category,
        tag_idx: p.tag.as_deref().map(|t| ctx.access.store.keys.tag_index(t)),
        assignee,
        overdue: p.overdue,
        sort,
        limit,
        offset,
        after,
    })
}

/// `GET /api/queues/{queue}/cases`.
pub async fn list_cases(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(queue): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    // A queue that exists but is not yours answers exactly like one that does not exist: the
    // listing must not tell queue names to someone who may not read them.
    let readable = ctx.settings.config.queues.iter().any(|q| q.name == queue) && auth.principal.can(&queue, Permission::Read);
    if !readable {
        return Err(ApiError::not_found(format!("no queue named {queue:?} that you may read")));
    }
    let store = &ctx.access.store;
    let q = case_query(&ctx, &auth, &queue, params).await?;
    let now = now_millis();
    let page = store.list_cases(&q, now).await?;
    let ids: Vec<i64> = page.cases.iter().map(|c| c.id).collect();
    let counts = store.case_message_counts(&ids).await?;
    // Only the page's opening messages are decrypted, and only their subject and sender shown.
    let first_messages: Vec<i64> = counts.values().map(|(_, first)| *first).collect();
    let records = store.open_fields_many(&first_messages).await?;
    let mut items = Vec::with_capacity(page.cases.len());
    for case in &page.cases {
        let (message_count, first_message) = counts.get(&case.id).copied().unwrap_or((0, 0));
        // Cases may share an opening message (one registration, several queues, then a transfer).
        let record = match records.get(&first_message) {
            Some(Ok(record)) => Some(record),
            Some(Err(e)) => {
                tracing::warn!(case = case.id, error = %e, "http: opening message of a case unreadable");
                None
            }
            None => None,
        };
        let mut item = case_json(case, now);
        item["message_count"] = json!(message_count);
        item["subject"] = json!(record.and_then(|r| r.subject.clone()));
        item["from"] = record.and_then(|r| r.from.first()).map_or(Value::Null, mailbox_json);
        items.push(item);
    }
    let statuses = q.statuses.join(",");
    let detail = format!(
        "items={} sort={} status={statuses} offset={}{}",
        items.len(),
        q.sort.name(),
        q.offset,
        if q.after.is_some() { " cursor" } else { "" }
    );
    ctx.access.audit(&auth.principal.actor(), "queue.list", Some(format!("queue:{queue}")), Some(detail)).await?;
    let next_cursor = page.next.map(|c| B64.encode(serde_json::to_vec(&c).expect("cursor serialises")));
    Ok(axum::Json(json!({
        "queue": queue,
        "sort": q.sort.name(),
        "limit": q.limit,
        "offset": if q.after.is_some() { 0 } else { q.offset },
        "items": items,
        "next_cursor": next_cursor,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    queue: Option<String>,
}

/// `GET /api/stats`: the queues where I supervise (or the one named), no customer data.
pub async fn stats(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Query(params): Query<StatsParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let supervised: Vec<&str> =
        ctx.settings.config.queues.iter().map(|q| q.name.as_str()).filter(|q| auth.principal.can(q, Permission::Supervise)).collect();
    if supervised.is_empty() {
        return Err(ApiError::forbidden("statistics need the supervise permission on a queue"));
    }
    let queues: Vec<&str> = match params.queue.as_deref() {
        None => supervised,
        Some(q) if supervised.contains(&q) => vec![q],
        Some(q) => return Err(ApiError::forbidden(format!("you do not supervise queue {q:?}"))),
    };
    let now = now_millis();
    let mut out = Vec::new();
    for queue in queues {
        out.push(ctx.access.store.queue_stats(queue, now).await?);
    }
    Ok(axum::Json(json!({ "generated_at": crate::store::millis_to_rfc3339(now), "queues": out })))
}
