//! The reply pages under `/cases/{id}/reply`:
//!
//! * `GET /cases/{id}/reply[?template=NAME]`: the form (template picker limited to the templates
//!   offered for this case, filled on the server; subject, body, "Promise an answer by").
//!   `POST` to the same path re-shows the form with what was posted ("Edit" on the preview).
//! * `POST /cases/{id}/reply/preview`: the exact From, To, Cc, Subject and body, with "Send" and
//!   "Edit"; the agent's text travels on in hidden fields.
//! * `POST /cases/{id}/reply/send`: prepares the reply again on the server (never trusting the
//!   preview) and queues it; 303 to the reply's page.
//! * `GET /cases/{id}/reply/{entry}`: "Reply queued — it leaves at …" with "Undo", or what
//!   became of it; `POST …/{entry}/undo` takes it back within the undo window.
//!
//! * `POST …/{entry}/approve` and `…/{entry}/return` (four eyes, a queue with `review = true`);
//!   `GET /reviews`: the replies awaiting my review.
//!
//! Every refusal is a page with the case service's reason, never JSON; a case the user may not
//! read is the same 404 page as one that does not exist.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::case::{self, KeptReply, Notice};
use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::presence::{self, PresenceView};
use super::session::{NoFields, PageSession, Posted};
use crate::cases::reply::{Draft, ReplyRequest};
use crate::cases::reply_form::ReplyForm;
use crate::cases::undo::ReplyState;
use crate::cases::{Activity, CaseError, parse_last_event};
use crate::http::HttpContext;
use crate::store::millis_to_rfc3339;

/// The reply form's fields, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplyFields {
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub promise: String,
    /// The returned reply this one replaces (hidden; empty for a new reply).
    #[serde(default)]
    pub replaces: String,
    /// The case's last event when the form was opened (`cases::last_event`): sending checks
    /// that nothing came in or happened since, so nobody answers twice by accident.
    #[serde(default)]
    pub seen: String,
}

impl ReplyFields {
    fn request(&self) -> ReplyRequest {
        let given = |v: &str| Some(v.to_string()).filter(|v| !v.trim().is_empty());
        ReplyRequest {
            body: self.body.clone(),
            subject: given(&self.subject),
            promise: given(&self.promise),
            replaces: number(self.replaces.trim()),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TemplateQuery {
    #[serde(default)]
    pub template: String,
    /// A returned reply of mine to edit and send again.
    #[serde(default)]
    pub edit: String,
}

/// The form page.
#[derive(Template)]
#[template(path = "reply.html")]
pub struct ReplyPage {
    pub chrome: Chrome,
    pub form: ReplyForm,
    pub promise: String,
    /// The case service's reason the last attempt was refused.
    pub problem: Option<String>,
    /// Colleagues on the case; this page's heartbeat says "replying".
    pub presence: Option<PresenceView>,
    /// The case's last event as the agent saw it when starting the reply.
    pub seen: String,
}

/// The preview page.
#[derive(Template)]
#[template(path = "reply_preview.html")]
pub struct PreviewPage {
    pub chrome: Chrome,
    pub draft: Draft,
    /// What the agent typed, for the hidden fields.
    pub fields: ReplyFields,
    pub promised: Option<LocalTime>,
}

/// One reply and where it stands.
#[derive(Template)]
#[template(path = "reply_state.html")]
pub struct StatePage {
    pub chrome: Chrome,
    pub reply: ReplyState,
    /// Until when "Undo" works, while it does.
    pub leaves_at: Option<LocalTime>,
    pub problem: Option<String>,
}

impl ReplyPage {
    pub fn title(&self) -> String {
        self.chrome.fill("reply.title", &[("number", &self.form.case.opening)])
    }
}

impl PreviewPage {
    pub fn title(&self) -> String {
        self.chrome.fill("reply.preview_title", &[("number", &self.draft.case.opening)])
    }
}

impl StatePage {
    pub fn title(&self) -> String {
        self.chrome.fill("reply.title", &[("number", &self.reply.case.opening)])
    }

    /// The catalog key of what became of the reply.
    pub fn state_key(&self) -> &'static str {
        let entry = &self.reply.entry;
        match (entry.state.as_deref(), entry.outbox_status.as_deref()) {
            (Some("withdrawn"), _) | (_, Some("withdrawn")) => "reply.withdrawn",
            (_, Some("sent")) => "reply.sent",
            (_, Some("failed")) => "reply.failed",
            (_, Some("sending")) => "reply.sending",
            (Some("awaiting-review"), _) => "reply.awaiting",
            (Some("returned"), _) => "reply.returned",
            (Some("resubmitted"), _) => "reply.resubmitted",
            _ if self.leaves_at.is_some() => "reply.queued",
            _ => "reply.leaving",
        }
    }
}

/// A refusal with the case service's reason.
#[derive(Template)]
#[template(path = "reply_refused.html")]
pub struct RefusedPage {
    pub chrome: Chrome,
    pub id: i64,
    pub reason: String,
}

/// A time as the page shows it: in the site's zone (the SLA calendar's), and for machines.
#[derive(Clone)]
pub struct LocalTime {
    pub datetime: String,
    pub date: String,
    pub time: String,
}

pub(super) fn local(ctx: &HttpContext, ms: i64) -> LocalTime {
    let tz = ctx.cases.settings().calendar.timezone();
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().with_timezone(&tz);
    LocalTime { datetime: millis_to_rfc3339(ms), date: t.format("%Y-%m-%d").to_string(), time: t.format("%H:%M:%S %Z").to_string() }
}

/// The page for a refusal: 404 for what the user may not see, the reason for the rest.
fn refused(ctx: &HttpContext, session: &PageSession, id: i64, e: CaseError) -> Response {
    let status = match &e {
        CaseError::NotFound(_) | CaseError::NoSuchMessage(_) | CaseError::NoSuchQueue(_) => {
            return PageError::new(session.lang, Problem::NotFound).into_response();
        }
        CaseError::Store(_) | CaseError::Internal(_) => return PageError::internal(session.lang, e).into_response(),
        CaseError::Forbidden { .. } | CaseError::Refused(_) => StatusCode::FORBIDDEN,
        CaseError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CaseError::Conflict(_) => StatusCode::CONFLICT,
        CaseError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    render(status, &RefusedPage { chrome: session.chrome(ctx), id, reason: e.to_string() })
}

/// What the form starts from: a template, or a returned reply to edit.
#[derive(Default, Clone, Copy)]
struct Start<'a> {
    template: Option<&'a str>,
    edit: Option<i64>,
}

/// The form, filled with `fields` (or from a template), with the reason of a refusal.
async fn form_page(
    ctx: &HttpContext,
    session: &PageSession,
    id: i64,
    start: Start<'_>,
    fields: Option<ReplyFields>,
    problem: Option<(StatusCode, String)>,
) -> Response {
    let mut form = match ctx.cases.reply_form(&session.principal, id, start.template, start.edit).await {
        Ok(form) => form,
        Err(e) => return refused(ctx, session, id, e),
    };
    let mut promise = String::new();
    let mut seen = String::new();
    if let Some(fields) = fields {
        seen = fields.seen;
        form.subject = fields.subject;
        form.body = fields.body;
        promise = fields.promise;
        form.replaces = number(fields.replaces.trim());
    }
    let (status, problem) = match problem {
        Some((status, reason)) => (status, Some(reason)),
        None => (StatusCode::OK, None),
    };
    // Presence is a courtesy: the form still works when it cannot be recorded.
    if seen.is_empty() {
        seen = match ctx.cases.current_event(&session.principal, id).await {
            Ok(seen) => seen,
            Err(e) => return refused(ctx, session, id, e),
        };
    }
    let presence = presence::for_page(ctx, session, id, Activity::Replying).await.ok();
    render(status, &ReplyPage { chrome: session.chrome(ctx), form, promise, problem, presence, seen })
}

/// `GET /cases/{id}/reply`.
pub async fn form(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path(id): Path<String>,
    query: Result<Query<TemplateQuery>, QueryRejection>,
) -> Response {
    let Some(id) = number(&id) else { return not_found(&session) };
    let Ok(Query(TemplateQuery { template, edit })) = query else { return PageError::new(session.lang, Problem::BadForm).into_response() };
    let edit = match edit.trim() {
        "" => None,
        text => match number(text) {
            Some(entry) => Some(entry),
            None => return PageError::new(session.lang, Problem::BadForm).into_response(),
        },
    };
    let start = Start { template: Some(template.as_str()).filter(|t| !t.trim().is_empty()), edit };
    form_page(&ctx, &session, id, start, None, None).await
}

/// `POST /cases/{id}/reply`: the form again with what was posted ("Edit").
pub async fn edit(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>, posted: Posted<ReplyFields>) -> Response {
    let Some(id) = number(&id) else { return not_found(&posted.session) };
    let Posted { session, form } = posted;
    form_page(&ctx, &session, id, Start::default(), Some(form), None).await
}

/// `POST /cases/{id}/reply/preview`.
pub async fn preview(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>, posted: Posted<ReplyFields>) -> Response {
    let Some(id) = number(&id) else { return not_found(&posted.session) };
    let Posted { session, form: fields } = posted;
    match ctx.cases.prepare_reply(&session.principal, id, &fields.request()).await {
        Ok(draft) => {
            let promised = draft.promise.map(|ms| local(&ctx, ms));
            render(StatusCode::OK, &PreviewPage { chrome: session.chrome(&ctx), draft, fields, promised })
        }
        Err(CaseError::Invalid(reason)) => {
            form_page(&ctx, &session, id, Start::default(), Some(fields), Some((StatusCode::UNPROCESSABLE_ENTITY, reason))).await
        }
        Err(e) => refused(&ctx, &session, id, e),
    }
}

/// `POST /cases/{id}/reply/send`.
pub async fn send(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>, posted: Posted<ReplyFields>) -> Response {
    let Some(id) = number(&id) else { return not_found(&posted.session) };
    let Posted { session, form: fields } = posted;
    // Collision detection: the case must be as the agent saw it when starting the reply (read
    // just before sending, as the case page's actions do; see `case_actions`).
    match ctx.cases.current_event(&session.principal, id).await {
        Ok(now) if now == fields.seen => {}
        Ok(_) if fields.seen.is_empty() => return PageError::new(session.lang, Problem::BadForm).into_response(),
        Ok(_) => {
            let seen = parse_last_event(&fields.seen);
            let ReplyFields { subject, body, promise, replaces, .. } = fields;
            let kept = Notice::ReplyCollision(KeptReply { subject, body, promise, replaces });
            return case::page(&ctx, &session, id, StatusCode::CONFLICT, Some(kept), seen).await;
        }
        Err(e) => return refused(&ctx, &session, id, e),
    }
    match ctx.cases.send_reply(&session.principal, id, fields.request()).await {
        Ok(sent) => match sent.outcome.entry {
            Some(entry) => see_other(&format!("/cases/{id}/reply/{entry}")),
            None => PageError::internal(session.lang, "a sent reply has no entry").into_response(),
        },
        Err(CaseError::Invalid(reason)) => {
            form_page(&ctx, &session, id, Start::default(), Some(fields), Some((StatusCode::UNPROCESSABLE_ENTITY, reason))).await
        }
        Err(e) => refused(&ctx, &session, id, e),
    }
}

async fn state_page(ctx: &HttpContext, session: &PageSession, id: i64, entry: i64, problem: Option<(StatusCode, String)>) -> Response {
    let reply = match ctx.cases.reply_state(&session.principal, id, entry).await {
        Ok(reply) => reply,
        Err(e) => return refused(ctx, session, id, e),
    };
    let leaves_at = reply.leaves_at.filter(|at| *at > reply.now).map(|at| local(ctx, at));
    let (status, problem) = match problem {
        Some((status, reason)) => (status, Some(reason)),
        None => (StatusCode::OK, None),
    };
    render(status, &StatePage { chrome: session.chrome(ctx), reply, leaves_at, problem })
}

/// `GET /cases/{id}/reply/{entry}`.
pub async fn state(State(ctx): State<Arc<HttpContext>>, session: PageSession, Path((id, entry)): Path<(String, String)>) -> Response {
    let (Some(id), Some(entry)) = (number(&id), number(&entry)) else { return not_found(&session) };
    state_page(&ctx, &session, id, entry, None).await
}

/// `POST /cases/{id}/reply/{entry}/undo`: back to the reply's page, which then says withdrawn,
/// or shows why not (already sent, too late).
pub async fn undo(State(ctx): State<Arc<HttpContext>>, Path((id, entry)): Path<(String, String)>, posted: Posted<NoFields>) -> Response {
    let session = posted.session;
    let (Some(id), Some(entry)) = (number(&id), number(&entry)) else { return not_found(&session) };
    match ctx.cases.undo_reply(&session.principal, id, entry).await {
        Ok(_) => see_other(&format!("/cases/{id}/reply/{entry}")),
        Err(e @ CaseError::Conflict(_)) => state_page(&ctx, &session, id, entry, Some((StatusCode::CONFLICT, e.to_string()))).await,
        Err(e) => refused(&ctx, &session, id, e),
    }
}

/// The reviewer's comment when returning a reply.
#[derive(Debug, Default, Deserialize)]
pub struct ReturnFields {
    #[serde(default)]
    pub comment: String,
}

/// `POST /cases/{id}/reply/{entry}/approve`: queued (with the undo window); to its page.
pub async fn approve(State(ctx): State<Arc<HttpContext>>, Path((id, entry)): Path<(String, String)>, posted: Posted<NoFields>) -> Response {
    let session = posted.session;
    let (Some(id), Some(entry)) = (number(&id), number(&entry)) else { return not_found(&session) };
    match ctx.cases.approve_reply(&session.principal, id, entry).await {
        Ok(_) => see_other(&format!("/cases/{id}/reply/{entry}")),
        Err(e) => refused(&ctx, &session, id, e),
    }
}

/// `POST /cases/{id}/reply/{entry}/return`: back to its author with the comment.
pub async fn give_back(
    State(ctx): State<Arc<HttpContext>>,
    Path((id, entry)): Path<(String, String)>,
    posted: Posted<ReturnFields>,
) -> Response {
    let Posted { session, form } = posted;
    let (Some(id), Some(entry)) = (number(&id), number(&entry)) else { return not_found(&session) };
    match ctx.cases.return_reply(&session.principal, id, entry, form.comment).await {
        Ok(_) => see_other(&format!("/cases/{id}/reply")),
        Err(e) => refused(&ctx, &session, id, e),
    }
}

/// The list of replies awaiting my review.
#[derive(Template)]
#[template(path = "reviews.html")]
pub struct ReviewsPage {
    pub chrome: Chrome,
    pub items: Vec<(crate::store::cases::AwaitingReview, LocalTime)>,
}

/// `GET /reviews`.
pub async fn reviews(State(ctx): State<Arc<HttpContext>>, session: PageSession) -> Response {
    match ctx.cases.reviews(&session.principal).await {
        Ok(list) => {
            let items = list.into_iter().map(|r| (r.clone(), local(&ctx, r.at))).collect();
            render(StatusCode::OK, &ReviewsPage { chrome: session.chrome(&ctx), items })
        }
        Err(e) => PageError::internal(session.lang, e).into_response(),
    }
}

/// A case or entry id in a path; anything else is a page that does not exist.
fn number(text: &str) -> Option<i64> {
    text.parse().ok().filter(|n| *n > 0)
}

fn not_found(session: &PageSession) -> Response {
    PageError::new(session.lang, Problem::NotFound).into_response()
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
