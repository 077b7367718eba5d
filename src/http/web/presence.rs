//! Presence on the page: the "also here" line ("olga is viewing", "ivan is replying") and its
//! heartbeat `POST /cases/{id}/presence` (field `kind=viewing|replying`, CSRF through `Posted`).
//! Opening the case page records "viewing" by itself, so it works without JavaScript; htmx then
//! repeats the heartbeat every `[http] presence_heartbeat` and swaps in the fresh line.
//!
//! A page that wants the line (the case page; the reply pages with `Activity::Replying`) holds a
//! `presence: PresenceView` from [`for_page`] and writes `{% include "presence.html" %}` outside
//! any other form; `chrome` must be in scope as well.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chrome::Chrome;
use super::error::{PageError, Problem, render};
use super::session::{PageSession, Posted};
use crate::cases::{Activity, CaseError};
use crate::http::HttpContext;

/// A colleague on the case.
pub struct Colleague {
    pub user: String,
    pub replying: bool,
}

/// What `presence.html` shows and sends.
pub struct PresenceView {
    pub case_id: i64,
    /// What this page's heartbeat says.
    pub activity: Activity,
    /// Seconds between heartbeats (`hx-trigger="every …s"`).
    pub every: u64,
    pub others: Vec<Colleague>,
}

pub fn colleagues(list: Vec<(String, Activity)>) -> Vec<Colleague> {
    list.into_iter().map(|(user, activity)| Colleague { user, replying: activity == Activity::Replying }).collect()
}

/// Records `activity` of `session`'s user on case `id` and tells who else is there. A case the
/// user may not read is `CaseError::NotFound`, as for every read.
pub async fn for_page(ctx: &HttpContext, session: &PageSession, id: i64, activity: Activity) -> Result<PresenceView, CaseError> {
    ctx.cases.heartbeat(&session.principal, id, activity).await?;
    let others = ctx.cases.present(&session.principal, &[id]).remove(&id).unwrap_or_default();
    Ok(PresenceView { case_id: id, activity, every: ctx.settings.http.presence_heartbeat.as_secs().max(1), others: colleagues(others) })
}

/// The line alone: the heartbeat's answer, swapped into the page by htmx.
#[derive(Template)]
#[template(path = "presence_line.html")]
pub struct PresenceLine {
    pub chrome: Chrome,
    pub presence: PresenceView,
}

#[derive(Deserialize)]
pub struct Heartbeat {
    #[serde(default)]
    kind: String,
}

/// `POST /cases/{id}/presence`.
pub async fn heartbeat(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>, posted: Posted<Heartbeat>) -> Response {
    let Posted { session, form } = posted;
    let lang = session.lang;
    let Ok(id) = id.parse::<i64>() else { return PageError::new(lang, Problem::NotFound).into_response() };
    let Some(activity) = Activity::parse(form.kind.trim()) else { return PageError::new(lang, Problem::BadForm).into_response() };
    match for_page(&ctx, &session, id, activity).await {
        Ok(presence) => render(StatusCode::OK, &PresenceLine { chrome: session.chrome(&ctx), presence }),
        Err(CaseError::NotFound(_)) => PageError::new(lang, Problem::NotFound).into_response(),
        Err(e) => PageError::internal(lang, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::web::i18n::Lang;

    fn view(others: Vec<(String, Activity)>) -> PresenceView {
        PresenceView { case_id: 9, activity: Activity::Replying, every: 20, others: colleagues(others) }
    }

    #[test]
    fn the_line_names_each_colleague_and_what_they_do_in_the_page_language() {
        let others = vec![("ivan".to_string(), Activity::Replying), ("olga <b>".to_string(), Activity::Viewing)];
        let en = PresenceLine { chrome: Chrome::logged_in(Lang::En, "anna".into(), "T".into()), presence: view(others.clone()) };
        let html = en.render().unwrap();
        assert!(html.contains("ivan is replying") && html.contains("olga &#60;b&#62; is viewing"), "{html}");
        let ru = PresenceLine { chrome: Chrome::logged_in(Lang::Ru, "anna".into(), "T".into()), presence: view(others) };
        assert!(ru.render().unwrap().contains("ivan отвечает"), "{}", ru.render().unwrap());
        let alone = PresenceLine { chrome: Chrome::logged_in(Lang::En, "anna".into(), "T".into()), presence: view(vec![]) };
        assert!(!alone.render().unwrap().contains(" is "), "nobody else: nothing said");
    }
}
