//! Queues: which ones I may read (with counts), a queue's cases (filtered, sorted, paged), and
//! the supervisors' statistics. The rules and the paging are the case service's
//! ([`crate::cases::queues`]); the JSON shapes are here.

use std::sync::Arc;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::HttpContext;
use super::auth::Auth;
use super::cases::{case_json, mailbox_json};
use super::error::{ApiError, Path, Query};
use crate::cases::queues::ListRequest;
pub use crate::cases::queues::{DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET};

/// `GET /api/queues`.
pub async fn list_queues(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<Value>, ApiError> {
    let queues: Vec<Value> = ctx
        .cases
        .queues(&auth.principal)
        .await?
        .into_iter()
        .map(|q| {
            json!({
                "name": q.name,
                "address": q.address,
                "permissions": q.permissions,
                "active": q.counts.active,
                "overdue": q.counts.overdue,
                "by_status": q.counts.by_status,
            })
        })
        .collect();
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

impl From<ListParams> for ListRequest {
    fn from(p: ListParams) -> ListRequest {
        ListRequest {
            status: p.status,
            priority: p.priority,
            category: p.category,
            overdue: p.overdue,
            tag: p.tag,
            assignee: p.assignee,
            sort: p.sort,
            limit: p.limit,
            offset: p.offset,
            cursor: p.cursor,
        }
    }
}

/// `GET /api/queues/{queue}/cases`.
pub async fn list_cases(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Path(queue): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let list = ctx.cases.list(&auth.principal, &queue, params.into()).await?;
    let items: Vec<Value> = list
        .items
        .iter()
        .map(|listed| {
            let mut item = case_json(&listed.case, list.now);
            item["message_count"] = json!(listed.message_count);
            item["subject"] = json!(listed.subject);
            item["from"] = listed.from.as_ref().map_or(Value::Null, mailbox_json);
            item
        })
        .collect();
    Ok(axum::Json(json!({
        "queue": list.queue,
        "sort": list.sort,
        "limit": list.limit,
        "offset": list.offset,
        "items": items,
        "next_cursor": list.next_cursor,
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
    let stats = ctx.cases.stats(&auth.principal, params.queue.as_deref()).await?;
    Ok(axum::Json(json!({ "generated_at": crate::store::millis_to_rfc3339(stats.generated_at), "queues": stats.queues })))
}
