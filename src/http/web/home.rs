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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn page(queues: Vec<QueueRow>, officer: bool, lang: Lang) -> String {
        MyQueues { chrome: Chrome::logged_in(lang, "anna".into(), "TOKEN".into()), queues, officer }.render().unwrap()
    }

    fn row(name: &str) -> QueueRow {
        QueueRow { name: name.into(), open: 7, unassigned: 3, overdue: 2, due_soon: 1 }
    }

    #[test]
    fn an_agent_sees_each_queue_as_a_link_named_like_it_with_counts() {
        let html = page(vec![row("support"), row("a b&c")], false, Lang::En);
        assert!(html.contains("<h1>My queues</h1>"));
        assert!(html.contains("<a href=\"/queues/support\">support</a>"), "{html}");
        assert!(html.contains("<a href=\"/queues/a%20b%26c\">a b&#38;c</a>"), "the name is escaped and the URL encoded: {html}");
        for (column, n) in [("open", 7), ("unassigned", 3), ("overdue", 2), ("due-soon", 1)] {
            assert!(html.contains(&format!("data-count=\"{column}\">{n}</td>")), "{column}: {html}");
        }
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"TOKEN\">"), "the log-out form carries the token");
        assert!(!html.contains("security officer"));
    }

    #[test]
    fn without_queues_an_officer_gets_a_pointer_and_anyone_else_a_reason() {
        let officer = page(Vec::new(), true, Lang::En);
        assert!(!officer.contains("<table") && officer.contains("As a security officer"), "{officer}");
        let nobody = page(Vec::new(), false, Lang::ZhCn);
        assert!(nobody.contains("<html lang=\"zh-CN\">") && nobody.contains("您无权查看任何队列"), "{nobody}");
    }
}
