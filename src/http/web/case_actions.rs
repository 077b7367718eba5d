//! `POST /cases/{id}/{action}`: one action of the case service from a plain form of the case
//! page (claim, assign, transfer, escalate, status, priority, category, tags, note, follow-up).
//! Done: 303 back to the case, which says so. Refused: the case page again with the service's
//! reason and the status a client can act on (403, 409, 422, …).
//!
//! Collision detection: every form carries `seen`, the case's `last_event` marker as the page
//! showed it. The marker is read again just before the action is called; if it differs, nothing
//! is done and the page comes back with 409, the new items marked. Reading it outside the
//! action's own lock leaves a window of one request between the check and the change; the
//! service has no compare-and-set for it, and a change in that window is still shown on the
//! next page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::case::{Notice, action_key, page};
use super::error::{PageError, Problem};
use super::session::{PageSession, Posted};
use crate::access::Principal;
use crate::cases::{CaseError, Cases, Outcome, parse_last_event};
use crate::http::HttpContext;

fn field(form: &HashMap<String, String>, name: &str) -> String {
    form.get(name).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn optional(form: &HashMap<String, String>, name: &str) -> Option<String> {
    Some(field(form, name)).filter(|v| !v.is_empty())
}

fn list(form: &HashMap<String, String>, name: &str) -> Vec<String> {
    field(form, name).split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// A browser's `datetime-local` value (`2026-12-03T09:00`, no zone) is read in the calendar's
/// time zone, which the form's label names; anything else goes to the service as typed (an
/// RFC 3339 time passes, the rest is refused with the service's reason).
pub fn follow_up_time(value: &str, tz: chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"].iter().find_map(|f| chrono::NaiveDateTime::parse_from_str(value, f).ok());
    match local.and_then(|l| tz.from_local_datetime(&l).earliest()) {
        Some(t) => t.to_rfc3339(),
        None => value.to_string(),
    }
}

async fn apply(cases: &Cases, who: &Principal, id: i64, action: &str, form: &HashMap<String, String>) -> Result<Outcome, CaseError> {
    match action {
        "claim" => cases.claim(who, id).await,
        "assign" => cases.assign(who, id, optional(form, "user").as_deref()).await,
        "transfer" => cases.transfer(who, id, &field(form, "queue")).await,
        "escalate" => cases.escalate(who, id).await,
        "status" => cases.change_status(who, id, &field(form, "status")).await,
        "priority" => cases.change_priority(who, id, &field(form, "priority")).await,
        "category" => cases.change_category(who, id, optional(form, "category")).await,
        "tags" => cases.change_tags(who, id, &list(form, "add"), &list(form, "remove")).await,
        // Free text as typed: the service refuses a blank one.
        "note" => cases.note(who, id, form.get("text").cloned().unwrap_or_default()).await,
        _ => {
            let due = follow_up_time(&field(form, "due"), cases.settings().calendar.timezone());
            cases.follow_up(who, id, &due, form.get("note").cloned().unwrap_or_default()).await
        }
    }
}

/// The status of the page that tells a refusal; None: an error page instead.
fn refusal_status(e: &CaseError) -> Option<StatusCode> {
    match e {
        CaseError::Forbidden { .. } | CaseError::Refused(_) => Some(StatusCode::FORBIDDEN),
        CaseError::Invalid(_) => Some(StatusCode::UNPROCESSABLE_ENTITY),
        CaseError::Conflict(_) => Some(StatusCode::CONFLICT),
        CaseError::Unavailable(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        _ => None,
    }
}

fn back_to(id: i64, action: &str) -> Response {
    let location = format!("/cases/{id}?done={action}");
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn not_found(session: &PageSession) -> Response {
    PageError::new(session.lang, Problem::NotFound).into_response()
}

/// `POST /cases/{id}/{action}`.
pub async fn act(
    State(ctx): State<Arc<HttpContext>>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<HashMap<String, String>>,
) -> Response {
    let Posted { session, form } = posted;
    let (Ok(id), Some(_)) = (id.parse::<i64>(), action_key(&action)) else { return not_found(&session) };
    let Some(seen) = form.get("seen").map(String::as_str) else {
        return PageError::new(session.lang, Problem::BadForm).into_response();
    };
    let who = &session.principal;
    match ctx.cases.current_event(who, id).await {
        Ok(now) if now == seen => {}
        Ok(_) => return page(&ctx, &session, id, StatusCode::CONFLICT, Some(Notice::Collision), parse_last_event(seen)).await,
        Err(CaseError::NotFound(_)) => return not_found(&session),
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    }
    match apply(&ctx.cases, who, id, &action, &form).await {
        Ok(_) => back_to(id, &action),
        Err(CaseError::NotFound(_)) => not_found(&session),
        Err(e) => match refusal_status(&e) {
            Some(status) => page(&ctx, &session, id, status, Some(Notice::Refused(e.to_string())), None).await,
            None => PageError::internal(session.lang, e).into_response(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply branch's `/cases/{id}/reply…` routes sit beside `/cases/{id}/{action}`: the
    /// router takes both, and the static path wins.
    #[tokio::test]
    async fn reply_routes_take_precedence_over_the_action_route() {
        use axum::body::Body;
        use axum::routing::{get, post};
        use tower::ServiceExt;
        let router = axum::Router::new()
            .route("/cases/{id}/{action}", post(|| async { "action" }))
            .route("/cases/{id}/reply", get(|| async { "reply" }).post(|| async { "reply" }))
            .route("/cases/{id}/messages/{mid}/html", get(|| async { "html" }));
        for (method, path, expected) in
            [("POST", "/cases/7/reply", "reply"), ("POST", "/cases/7/claim", "action"), ("GET", "/cases/7/messages/3/html", "html")]
        {
            let request = axum::http::Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 64).await.unwrap();
            assert_eq!(&body[..], expected.as_bytes(), "{method} {path}");
        }
    }

    #[test]
    fn a_local_follow_up_time_is_read_in_the_calendars_zone() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(follow_up_time("2026-12-03T09:00", berlin), "2026-12-03T09:00:00+01:00");
        assert_eq!(follow_up_time("2026-12-03T09:00:00Z", berlin), "2026-12-03T09:00:00Z", "RFC 3339 passes as typed");
        assert_eq!(follow_up_time("", berlin), "");
    }
}
