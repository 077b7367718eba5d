//! `GET /queues/{queue}/new?since=…`: the queue list's "N new — refresh" banner. The list carries
//! the time it was read (`since`); htmx asks every `[http] new_cases_poll` how many cases were
//! opened in the queue after it, and this answers a link that reloads the list with the same
//! filters, or nothing. Rows never move under the user's cursor; without JavaScript nothing polls.
//! An unknown queue and one the user may not read get the same 404 page, as the list does.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::queue::Filters;
use super::session::PageSession;
use crate::cases::CaseError;
use crate::http::HttpContext;

#[derive(Deserialize)]
pub struct Since {
    #[serde(default)]
    since: String,
}

/// The banner's content: a link when `count` > 0, else nothing.
#[derive(Template)]
#[template(path = "queue_new.html")]
pub struct NewCases {
    pub chrome: Chrome,
    pub count: i64,
    /// The list again with the filters it had.
    pub href: String,
}

/// `GET /queues/{queue}/new`.
pub async fn count(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path(queue): Path<String>,
    since: Result<Query<Since>, QueryRejection>,
    filters: Result<Query<Filters>, QueryRejection>,
) -> Response {
    let lang = session.lang;
    let (Ok(Query(since)), Ok(Query(filters))) = (since, filters) else { return PageError::new(lang, Problem::BadForm).into_response() };
    let Ok(since) = since.since.trim().parse::<i64>() else { return PageError::new(lang, Problem::BadForm).into_response() };
    match ctx.cases.opened_since(&session.principal, &queue, since).await {
        Ok(count) => {
            let query = filters.first_page();
            let href = format!("/queues/{}{}{query}", urlencoding(&queue), if query.is_empty() { "" } else { "?" });
            render(StatusCode::OK, &NewCases { chrome: session.chrome(&ctx), count, href })
        }
        Err(CaseError::NoSuchQueue(_)) => PageError::new(lang, Problem::NotFound).into_response(),
        Err(e) => PageError::internal(lang, e).into_response(),
    }
}

/// A queue name as one path segment.
fn urlencoding(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn banner(lang: Lang, count: i64) -> String {
        let chrome = Chrome::logged_in(lang, "anna".into(), "T".into());
        NewCases { chrome, count, href: "/queues/support?status=all".into() }.render().unwrap()
    }

    #[test]
    fn the_banner_counts_in_words_and_links_to_the_same_list() {
        assert!(banner(Lang::En, 0).trim().is_empty(), "nothing new: nothing shown");
        let three = banner(Lang::En, 3);
        assert!(three.contains("href=\"/queues/support?status=all\"") && three.contains(">3 new cases — refresh</a>"), "{three}");
        assert!(banner(Lang::En, 1).contains(">1 new case — refresh</a>"));
        assert!(banner(Lang::ZhCn, 2).contains("2 个新工单"));
        assert_eq!(urlencoding("a b/ü"), "a%20b%2F%C3%BC");
    }
}
