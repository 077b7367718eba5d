//! `/api/notifications…`: the caller's notifications from the SLA sweep (warnings, breaches, new
//! urgent or VIP cases) and marking them read (`cases::notifications`).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::HttpContext;
use super::auth::Auth;
use super::error::{ApiError, Json};
use super::openapi::doc::{BadRequest, Forbidden, Invalid, TooLarge, Unauthenticated, UnsupportedMediaType};
use crate::store::millis_to_rfc3339;
use crate::store::notifications::Notification;

/// Most ids one mark-read request takes.
const MAX_IDS: usize = 500;

/// One notification.
#[derive(Serialize, ToSchema)]
pub struct NotificationItem {
    id: i64,
    /// The case it is about.
    case_id: i64,
    /// The case's opening registration number.
    number: String,
    queue: String,
    /// warning (due time near), breach (due time passed; the case was escalated), new (a new urgent or VIP case).
    #[schema(pattern = "^(warning|breach|new)$")]
    kind: String,
    #[schema(format = DateTime)]
    at: String,
    /// Whether it was also mailed to the user's own address.
    mailed: bool,
    #[schema(format = DateTime, nullable = true)]
    read_at: Option<String>,
}

impl From<Notification> for NotificationItem {
    fn from(n: Notification) -> NotificationItem {
        NotificationItem {
            id: n.id,
            case_id: n.case_id,
            number: n.opening,
            queue: n.queue,
            kind: n.kind,
            at: millis_to_rfc3339(n.at),
            mailed: n.mailed,
            read_at: n.read_at.map(millis_to_rfc3339),
        }
    }
}

/// `GET /api/notifications`'s answer.
#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    /// Newest first (at most 200).
    items: Vec<NotificationItem>,
    unread: i64,
}

/// `POST /api/notifications/read`'s body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// These notifications of mine; absent: all of mine.
    #[schema(max_items = 500)]
    #[serde(default, deserialize_with = "super::validate::whole_numbers")]
    ids: Option<Vec<i64>>,
}

/// `POST /api/notifications/read`'s answer.
#[derive(Serialize, ToSchema)]
pub struct MarkedRead {
    /// How many were unread and are read now.
    marked: u64,
    unread: i64,
}

/// `GET /api/notifications`.
#[utoipa::path(
    get,
    path = "/api/notifications",
    operation_id = "notifications",
    tag = "session",
    summary = "My notifications",
    description = "SLA warnings, breaches and new urgent or VIP cases the caller was told about, newest first, with the unread count. \
         Only cases in queues the caller can read.",
    responses(
        (status = 200, description = "the list", body = NotificationList),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
    ),
)]
pub async fn list(State(ctx): State<Arc<HttpContext>>, auth: Auth) -> Result<axum::Json<NotificationList>, ApiError> {
    let items = ctx.cases.notifications(&auth.principal).await?.into_iter().map(NotificationItem::from).collect();
    let unread = ctx.cases.unread_notifications(&auth.principal).await?;
    Ok(axum::Json(NotificationList { items, unread }))
}

/// `POST /api/notifications/read`.
#[utoipa::path(
    post,
    path = "/api/notifications/read",
    operation_id = "notifications_read",
    tag = "session",
    summary = "Mark my notifications read",
    description = "The ids given (only the caller's own count), or all of the caller's with no ids.",
    security(("cookie" = [], "csrf" = []), ("bearer" = [])),
    request_body = MarkRead,
    responses(
        (status = 200, description = "marked", body = MarkedRead),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, response = Invalid),
    ),
)]
pub async fn mark_read(
    State(ctx): State<Arc<HttpContext>>,
    auth: Auth,
    Json(req): Json<MarkRead>,
) -> Result<axum::Json<MarkedRead>, ApiError> {
    if req.ids.as_ref().is_some_and(|ids| ids.len() > MAX_IDS) {
        return Err(ApiError::invalid(format!("at most {MAX_IDS} ids at a time")));
    }
    let marked = ctx.cases.mark_notifications_read(&auth.principal, req.ids.as_deref()).await?;
    let unread = ctx.cases.unread_notifications(&auth.principal).await?;
    Ok(axum::Json(MarkedRead { marked, unread }))
}
