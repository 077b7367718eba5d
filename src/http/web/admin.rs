//! What the security officer's pages (`/admin/…`) share: the officer check and the notice an
//! action leaves on the page it re-renders.
//!
//! The pages call the same `access` services as the admin API (`http::admin`), with the same
//! rules: officers only (anyone else gets the API's 403, as a readable page); nobody changes his
//! own access (`Access::refuse_own`); what would open a queue's mail waits for a second person
//! and says so; an enrolment code is shown once, on the answer to the POST that made it (never
//! after a redirect, never stored). No page here shows customer content: users, roles, grants,
//! changes and audit entries hold none by design.

use std::sync::Arc;

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use zeroize::Zeroizing;

use super::chrome::Chrome;
use super::error::{PageError, render};
use super::session::PageSession;
use crate::access::admin::AdminError;
use crate::access::enrolment::EnrolmentCode;
use crate::http::HttpContext;

/// A page request of a logged-in security officer.
pub struct OfficerSession(pub PageSession);

impl FromRequestParts<Arc<HttpContext>> for OfficerSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<HttpContext>) -> Result<Self, Response> {
        let session = PageSession::from_request_parts(parts, ctx).await.map_err(IntoResponse::into_response)?;
        match not_an_officer(ctx, &session) {
            Some(refused) => Err(refused),
            None => Ok(OfficerSession(session)),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct RefusedPage {
    chrome: Chrome,
    message: &'static str,
}

/// The API answers 403 to anyone but an officer: so do the pages, with a page that says why
/// (Some: answer with it).
pub fn not_an_officer(ctx: &HttpContext, session: &PageSession) -> Option<Response> {
    (!session.principal.officer).then(|| forbidden_page(ctx, session, "admin.officers_only"))
}

/// A 403 page in the frame of the logged-in user, saying who may see the page.
pub fn forbidden_page(ctx: &HttpContext, session: &PageSession, key: &'static str) -> Response {
    let chrome = session.chrome(ctx);
    let message = chrome.t(key);
    render(StatusCode::FORBIDDEN, &RefusedPage { chrome, message })
}

/// How an action went, as the page shows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    Done,
    /// Stored, waiting for a second person: nothing applied yet.
    Pending,
    /// Refused by the service, with its reason.
    Refused,
    /// Done, and what it found is bad news (a broken audit chain).
    Alarm,
}

/// An enrolment code to hand to its user: shown on this one answer, never again.
pub struct ShownCode {
    pub user: String,
    pub code: Zeroizing<String>,
    pub expires_at: String,
}

impl ShownCode {
    pub fn new(user: &str, enrolment: EnrolmentCode) -> ShownCode {
        ShownCode { user: user.to_string(), code: enrolment.code, expires_at: enrolment.expires_at }
    }

    pub fn expires_short(&self) -> String {
        super::admin_users::short_time(&self.expires_at)
    }
}

/// What the page says about the action just taken.
pub struct Notice {
    pub outcome: Outcome,
    pub text: String,
    pub code: Option<ShownCode>,
}

impl Notice {
    pub fn done(text: String) -> Notice {
        Notice { outcome: Outcome::Done, text, code: None }
    }

    /// Waiting for a second person, told in `text`.
    pub fn waiting(text: String) -> Notice {
        Notice { outcome: Outcome::Pending, text, code: None }
    }

    /// Change `change_id` waits for a second person (the general sentence).
    pub fn pending(chrome: &Chrome, change_id: i64) -> Notice {
        Notice::waiting(chrome.fill("admin.pending", &[("id", &change_id.to_string())]))
    }

    pub fn refused(reason: String) -> Notice {
        Notice { outcome: Outcome::Refused, text: reason, code: None }
    }

    pub fn alarm(text: String) -> Notice {
        Notice { outcome: Outcome::Alarm, text, code: None }
    }

    pub fn with_code(mut self, code: ShownCode) -> Notice {
        self.code = Some(code);
        self
    }

    /// The status the re-rendered page answers with: the API's for a refusal, 202 for a change
    /// that waits.
    pub fn status(&self, refusal: StatusCode) -> StatusCode {
        match self.outcome {
            Outcome::Done | Outcome::Alarm => StatusCode::OK,
            Outcome::Pending => StatusCode::ACCEPTED,
            Outcome::Refused => refusal,
        }
    }

    /// For tests and scripts: `done`, `pending`, `refused` or `alarm`.
    pub fn outcome(&self) -> &'static str {
        match self.outcome {
            Outcome::Done => "done",
            Outcome::Pending => "pending",
            Outcome::Refused => "refused",
            Outcome::Alarm => "alarm",
        }
    }

    pub fn class(&self) -> &'static str {
        match self.outcome {
            Outcome::Done => "done",
            Outcome::Pending => "pending",
            Outcome::Refused | Outcome::Alarm => "refused",
        }
    }

    pub fn is_refused(&self) -> bool {
        self.outcome == Outcome::Refused
    }

    /// Read out by assistive technology at once.
    pub fn is_alert(&self) -> bool {
        matches!(self.outcome, Outcome::Refused | Outcome::Alarm)
    }

    pub fn is_pending(&self) -> bool {
        self.outcome == Outcome::Pending
    }
}

/// A service's answer as a notice and the page's status; a store failure is a 500 page.
pub fn settle(result: Result<Notice, AdminError>, session: &PageSession) -> Result<(StatusCode, Notice), PageError> {
    let refused = |status: StatusCode, reason: String| Ok((status, Notice::refused(reason)));
    match result {
        Ok(notice) => Ok((notice.status(StatusCode::OK), notice)),
        Err(AdminError::Invalid(reason)) => refused(StatusCode::UNPROCESSABLE_ENTITY, reason),
        Err(e @ (AdminError::NoSuchUser(_) | AdminError::NoSuchRole(_) | AdminError::NoSuchChange(_))) => {
            refused(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(e @ AdminError::Exists(_)) => refused(StatusCode::CONFLICT, e.to_string()),
        Err(AdminError::Forbidden(reason)) => refused(StatusCode::FORBIDDEN, reason),
        Err(AdminError::Conflict(reason)) => refused(StatusCode::CONFLICT, reason),
        Err(AdminError::Store(e)) => Err(PageError::internal(session.lang, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    #[test]
    fn keys_the_pages_pass_around_as_values_exist_in_every_catalog() {
        // The catalog test finds keys written as t("…") or fill("…"); these travel as values.
        let keys = [
            "admin.officers_only",
            "admin.changes.approvers_only",
            "admin.users.state_active",
            "admin.users.state_locked",
            "admin.users.state_locked_out",
            "admin.users.state_enrolling",
            "admin.changes.status_pending",
            "admin.changes.status_approved",
            "admin.changes.status_rejected",
            "admin.audit.bad_from",
            "admin.audit.bad_to",
            "admin.audit.bad_before",
        ];
        for lang in Lang::ALL {
            for key in keys {
                assert_ne!(lang.catalog().get(key), key, "{}: no message {key}", lang.tag());
            }
        }
    }

    #[test]
    fn a_refusal_keeps_the_apis_status_and_the_services_reason() {
        let chrome = Chrome::logged_in(Lang::En, "olga".into(), "T".into());
        assert_eq!(Notice::done("ok".into()).status(StatusCode::FORBIDDEN), StatusCode::OK);
        assert_eq!(Notice::pending(&chrome, 7).status(StatusCode::FORBIDDEN), StatusCode::ACCEPTED);
        assert!(Notice::pending(&chrome, 7).text.contains("#7"));
        let refused = Notice::refused("you cannot lock yourself".into());
        assert_eq!((refused.status(StatusCode::FORBIDDEN), refused.class()), (StatusCode::FORBIDDEN, "refused"));
    }
}
