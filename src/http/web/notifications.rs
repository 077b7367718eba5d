//! `/notifications`: my notifications from the SLA sweep (warnings, breaches, new urgent or VIP
//! cases), newest first, each linking to its case; "Mark all read" (`cases::notifications`).

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::chrome::Chrome;
use super::error::{PageError, render};
use super::reply::{LocalTime, local};
use super::session::{NoFields, PageSession, Posted, see_other};
use crate::http::HttpContext;
use crate::store::notifications::Notification;

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    chrome: Chrome,
    items: Vec<(Notification, LocalTime)>,
}

/// The catalog key naming a notification's kind.
fn kind_key(kind: &str) -> &'static str {
    match kind {
        "warning" => "notifications.kind_warning",
        "breach" => "notifications.kind_breach",
        _ => "notifications.kind_new",
    }
}

/// `GET /notifications`.
pub async fn list(State(ctx): State<Arc<HttpContext>>, session: PageSession) -> Response {
    match ctx.cases.notifications(&session.principal).await {
        Ok(list) => {
            let items = list.into_iter().map(|n| (n.clone(), local(&ctx, n.at))).collect();
            render(StatusCode::OK, &NotificationsPage { chrome: session.chrome(&ctx), items })
        }
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

/// `POST /notifications/read`: all of mine read; back to the list.
pub async fn mark_read(State(ctx): State<Arc<HttpContext>>, Posted { session, .. }: Posted<NoFields>) -> Response {
    match ctx.cases.mark_notifications_read(&session.principal, None).await {
        Ok(_) => see_other("/notifications"),
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn each_notification_links_its_case_and_unread_ones_are_marked() {
        let n = Notification {
            id: 7,
            case_id: 42,
            opening: "MR-2026-000042-7".into(),
            queue: "support".into(),
            kind: "breach".into(),
            at: 0,
            mailed: true,
            read_at: None,
        };
        let at = LocalTime { datetime: "1970-01-01T00:00:00Z".into(), date: "1970-01-01".into(), time: "00:00:00 UTC".into() };
        for lang in [Lang::En, Lang::ZhCn, Lang::Ru] {
            let chrome = Chrome::logged_in(lang, "anna".into(), "TOKEN".into()).with_unread(1);
            let html = NotificationsPage { chrome, items: vec![(n.clone(), at.clone())] }.render().unwrap();
            assert!(html.contains("<a href=\"/cases/42\">MR-2026-000042-7</a>"), "{html}");
            assert!(html.contains("data-unread"), "{html}");
            assert!(html.contains("notifications-count"), "the header's count: {html}");
        }
    }
}
