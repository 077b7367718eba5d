//! Error pages: readable HTML in the reader's language, with the status a client can act on.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::chrome::Chrome;
use super::i18n::Lang;

/// What went wrong, as a page tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    NotFound,
    MethodNotAllowed,
    /// A POST that failed the CSRF, `Origin` or `Sec-Fetch-Site` check.
    Forbidden,
    BadForm,
    Unavailable,
    Internal,
}

impl Problem {
    pub const ALL: [Problem; 6] =
        [Problem::NotFound, Problem::MethodNotAllowed, Problem::Forbidden, Problem::BadForm, Problem::Unavailable, Problem::Internal];

    pub fn status(self) -> StatusCode {
        match self {
            Problem::NotFound => StatusCode::NOT_FOUND,
            Problem::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Problem::Forbidden => StatusCode::FORBIDDEN,
            Problem::BadForm => StatusCode::BAD_REQUEST,
            Problem::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The catalog key of its message.
    pub fn key(self) -> &'static str {
        match self {
            Problem::NotFound => "error.not_found",
            Problem::MethodNotAllowed => "error.method",
            Problem::Forbidden => "error.forbidden",
            Problem::BadForm => "error.bad_form",
            Problem::Unavailable => "error.unavailable",
            Problem::Internal => "error.internal",
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: &'static str,
}

/// An error page to answer with.
#[derive(Debug)]
pub struct PageError {
    pub lang: Lang,
    pub problem: Problem,
}

impl PageError {
    pub fn new(lang: Lang, problem: Problem) -> PageError {
        PageError { lang, problem }
    }

    /// A failure of a service below: logged (never with customer content), shown as a 500.
    pub fn internal(lang: Lang, error: impl std::fmt::Display) -> PageError {
        tracing::error!(target: "mailroom::http", error = %error, "page: internal error");
        PageError::new(lang, Problem::Internal)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let chrome = Chrome::anonymous(self.lang);
        let message = chrome.t(self.problem.key());
        render(self.problem.status(), &ErrorPage { chrome, message })
    }
}

/// An error page outside the page routes (unknown path, wrong method), with the page headers.
pub fn page_for(ctx: &crate::http::HttpContext, headers: &axum::http::HeaderMap, problem: Problem) -> Response {
    let mut response = PageError::new(Lang::negotiate(headers), problem).into_response();
    super::headers::set_page_headers(response.headers_mut(), ctx.tls.is_some());
    response
}

/// A rendered template with `status`; a template that fails to render (it cannot, short of a
/// formatting error) becomes a bare 500.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(target: "mailroom::http", error = %e, "page: a template failed to render");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_has_a_message_in_every_language() {
        for lang in Lang::ALL {
            for problem in Problem::ALL {
                let text = lang.catalog().get(problem.key());
                assert_ne!(text, problem.key(), "{}: no message for {problem:?}", lang.tag());
            }
        }
    }

    #[test]
    fn an_error_page_is_html_with_its_status_in_the_readers_language() {
        let response = PageError::new(Lang::Ru, Problem::Forbidden).into_response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let page = ErrorPage { chrome: Chrome::anonymous(Lang::Ru), message: Lang::Ru.catalog().get("error.forbidden") };
        let html = page.render().unwrap();
        assert!(html.contains("<html lang=\"ru\">"), "{html}");
        assert!(html.contains("Запрос отклонён"), "{html}");
    }
}
