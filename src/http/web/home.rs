//! `GET /`: "My queues", each queue I may read with its open, unassigned, overdue and
//! due-in-24-h counts (`Cases::queues`). An officer without a queue role sees no queue and no
//! customer content, only where their work is.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::PageSession;
use crate::cases::CaseError;
use crate::cases::queues::QueueSummary;
use crate::http::HttpContext;

/// One row of the table.
struct QueueRow {
    name: String,
    /// New, open and waiting: every case someone still has to work on.
    open: i64,
    unassigned: i64,
    overdue: i64,
    due_soon: i64,
}

impl From<QueueSummary> for QueueRow {
    fn from(q: QueueSummary) -> QueueRow {
        let c = q.counts;
        QueueRow { name: q.name, open: c.active, unassigned: c.unassigned, overdue: c.overdue, due_soon: c.due_soon }
    }
}

#[derive(Template)]
#[template(path = "my_queues.html")]
struct MyQueues {
    chrome: Chrome,
    queues: Vec<QueueRow>,
    officer: bool,
}

/// `GET /`.
pub async fn my_queues(State(ctx): State<Arc<HttpContext>>, session: PageSession) -> Response {
    let queues = match ctx.cases.queues(&session.principal).await {
        Ok(queues) => queues.into_iter().map(QueueRow::from).collect(),
        // No readable queue is a page, not an error.
        Err(CaseError::Refused(_)) => Vec::new(),
        Err(e) => return PageError::internal(session.lang, e).into_response(),
    };
    let page = MyQueues { chrome: session.chrome(&ctx), queues, officer: session.principal.officer };
    render(StatusCode::OK, &page)
}
