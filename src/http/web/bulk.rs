//! `POST /queues/{queue}/bulk`: one action of the case service (claim, assign, transfer, status,
//! priority, category, tags) on every case ticked in the list, each reported as done or refused
//! with the service's reason; then the list again, with the filters the form kept (`keep_…`).
//!
//! Each ticked case arrives as `case-{id}={registration number}` (one field per case: the form
//! decoder takes no repeated names); the number is only the label of its result line. Every
//! action checks its permission on the case itself, so a case of another queue is refused
//! exactly as by the API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::{PageError, Problem, render};
use super::queue::{Filters, QueuePage, build, readable};
use super::session::{PageSession, Posted};
use crate::cases::workflow::Outcome;
use crate::cases::{CaseError, Cases};
use crate::http::HttpContext;

/// What happened to one ticked case.
pub struct BulkResult {
    /// The registration number the list showed.
    pub label: String,
    /// The number after the action, when it was done.
    pub done: bool,
    /// The case service's reason for a refusal.
    pub reason: String,
}

/// The action asked for, with its value.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Claim,
    Assign(Option<String>),
    Transfer(String),
    Status(String),
    Priority(String),
    Category(Option<String>),
    Tags { add: Vec<String>, remove: Vec<String> },
}

fn field(form: &HashMap<String, String>, name: &str) -> Option<String> {
    form.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn list(value: Option<String>) -> Vec<String> {
    value.map(|v| v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

/// The action of the form, or the catalog key of why there is none.
fn action(form: &HashMap<String, String>) -> Result<Action, &'static str> {
    let needs = |name: &str| field(form, name).ok_or("bulk.needs_value");
    Ok(match form.get("action").map(String::as_str).unwrap_or("") {
        "claim" => Action::Claim,
        "assign" => Action::Assign(field(form, "user")),
        "transfer" => Action::Transfer(needs("target")?),
        "status" => Action::Status(needs("status")?),
        "priority" => Action::Priority(needs("priority")?),
        "category" => Action::Category(field(form, "category")),
        "tags" => {
            let (add, remove) = (list(field(form, "tags_add")), list(field(form, "tags_remove")));
            if add.is_empty() && remove.is_empty() {
                return Err("bulk.needs_value");
            }
            Action::Tags { add, remove }
        }
        _ => return Err("bulk.no_action"),
    })
}

/// The ticked cases, in id order, each with the label the list gave it.
fn ticked(form: &HashMap<String, String>) -> Vec<(i64, String)> {
    let mut cases: Vec<(i64, String)> = form
        .iter()
        .filter_map(|(name, label)| Some((name.strip_prefix("case-")?.parse().ok()?, label.chars().take(64).collect())))
        .collect();
    cases.sort();
    cases
}

async fn apply(cases: &Cases, who: &crate::access::Principal, id: i64, action: &Action) -> Result<Outcome, CaseError> {
    match action {
        Action::Claim => cases.claim(who, id).await,
        Action::Assign(user) => cases.assign(who, id, user.as_deref()).await,
        Action::Transfer(queue) => cases.transfer(who, id, queue).await,
        Action::Status(status) => cases.change_status(who, id, status).await,
        Action::Priority(priority) => cases.change_priority(who, id, priority).await,
        Action::Category(category) => cases.change_category(who, id, category.clone()).await,
        Action::Tags { add, remove } => cases.change_tags(who, id, add, remove).await,
    }
}

/// At most this many cases per request (a page holds 50 by default, 200 at most).
const MAX_CASES: usize = 200;

/// `POST /queues/{queue}/bulk`.
pub async fn bulk(State(ctx): State<Arc<HttpContext>>, Path(queue): Path<String>, posted: Posted<HashMap<String, String>>) -> Response {
    let Posted { session, form } = posted;
    if !readable(&ctx, &session, &queue) {
        return PageError::new(session.lang, Problem::NotFound).into_response();
    }
    let cases = ticked(&form);
    let problem = match action(&form) {
        _ if cases.is_empty() => Some("bulk.none_ticked"),
        _ if cases.len() > MAX_CASES => Some("bulk.too_many"),
        Err(key) => Some(key),
        Ok(action) => {
            let results = run(&ctx, &session, &cases, &action).await;
            return answer(&ctx, &session, &queue, Filters::from_kept(&form), StatusCode::OK, None, results).await;
        }
    };
    answer(&ctx, &session, &queue, Filters::from_kept(&form), StatusCode::UNPROCESSABLE_ENTITY, problem, Vec::new()).await
}

async fn run(ctx: &HttpContext, session: &PageSession, cases: &[(i64, String)], action: &Action) -> Vec<BulkResult> {
    let mut results = Vec::new();
    for (id, label) in cases {
        let result = match apply(&ctx.cases, &session.principal, *id, action).await {
            Ok(_) => BulkResult { label: label.clone(), done: true, reason: String::new() },
            Err(e @ (CaseError::Store(_) | CaseError::Internal(_))) => {
                tracing::error!(target: "mailroom::http", case = id, error = %e, "page: a bulk action failed");
                BulkResult { label: label.clone(), done: false, reason: session.lang.catalog().get("error.internal").to_string() }
            }
            Err(e) => BulkResult { label: label.clone(), done: false, reason: e.to_string() },
        };
        results.push(result);
    }
    results
}

/// The list again (with the filters it had), with the results or the reason nothing was done.
async fn answer(
    ctx: &HttpContext,
    session: &PageSession,
    queue: &str,
    filters: Filters,
    status: StatusCode,
    problem: Option<&'static str>,
    results: Vec<BulkResult>,
) -> Response {
    match build(ctx, session, queue, filters, results).await {
        // Kept filters the listing refuses (the form was edited) show their reason as on a GET.
        Ok((_, chrome, mut view)) => {
            view.bulk_problem = problem;
            render(status, &QueuePage { chrome, view })
        }
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_form_names_one_action_with_its_value() {
        assert_eq!(action(&form(&[("action", "claim")])), Ok(Action::Claim));
        assert_eq!(action(&form(&[("action", "assign"), ("user", " ")])), Ok(Action::Assign(None)), "empty unassigns");
        assert_eq!(action(&form(&[("action", "transfer"), ("target", "")])), Err("bulk.needs_value"));
        assert_eq!(
            action(&form(&[("action", "tags"), ("tags_add", "a, b,"), ("tags_remove", "c")])),
            Ok(Action::Tags { add: vec!["a".into(), "b".into()], remove: vec!["c".into()] })
        );
        assert_eq!(action(&form(&[("action", "tags")])), Err("bulk.needs_value"));
        assert_eq!(action(&form(&[("action", "delete")])), Err("bulk.no_action"));
        assert_eq!(action(&form(&[])), Err("bulk.no_action"));
    }

    #[test]
    fn ticked_cases_come_from_their_own_fields() {
        let f = form(&[("case-7", "MR-1"), ("case-3", "MR-2"), ("case-x", "?"), ("action", "claim"), ("cases", "9")]);
        assert_eq!(ticked(&f), vec![(3, "MR-2".to_string()), (7, "MR-1".to_string())]);
    }
}
