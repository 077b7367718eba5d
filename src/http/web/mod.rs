//! The staff web page: server-rendered HTML (askama templates in `templates/`), htmx for speed,
//! every core path a plain form that works without JavaScript. Pages call the same services as
//! the JSON API (`access`, `cases`) and are not part of the OpenAPI document.
//!
//! * `headers`: the page's Content-Security-Policy and the other headers on every page answer.
//! * `assets`: embedded static files under content-hash URLs.
//! * `i18n`: UI text catalogs (en, zh-CN, ru) and the `Accept-Language` choice.
//! * `chrome`: what the page frame (`templates/base.html`) shows around every page.
//! * `session`: the page session (cookie → principal) and the checks on every page POST.
//! * `error`: error pages (404, 403, …) as readable HTML.
//! * `login`: log in and out.
//! * `home`: "My queues".
//! * `queue`: a queue's cases, filtered, sorted and paged; `bulk`: one action on the ticked ones.
//! * `reply`: the reply pages under `/cases/{id}/reply…`: form with templates, preview, send, undo.

pub mod assets;
pub mod bulk;
pub mod chrome;
pub mod error;
pub mod headers;
pub mod home;
pub mod i18n;
pub mod login;
pub mod queue;
pub mod reply;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

use super::HttpContext;

/// The page routes, with the page headers on every answer.
pub fn router(ctx: Arc<HttpContext>) -> Router<Arc<HttpContext>> {
    Router::new()
        .route("/", get(home::my_queues))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/queues/{queue}", get(queue::list))
        .route("/queues/{queue}/bulk", post(bulk::bulk))
        .route("/cases/{id}/reply", get(reply::form).post(reply::edit))
        .route("/cases/{id}/reply/preview", post(reply::preview))
        .route("/cases/{id}/reply/send", post(reply::send))
        .route("/cases/{id}/reply/{entry}", get(reply::state))
        .route("/cases/{id}/reply/{entry}/undo", post(reply::undo))
        .route("/cases/{id}/reply/{entry}/approve", post(reply::approve))
        .route("/cases/{id}/reply/{entry}/return", post(reply::give_back))
        .route("/reviews", get(reply::reviews))
        .route("/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn_with_state(ctx, headers::page_headers))
}

/// True for paths of the JSON API, which answer in JSON even when there is no such route.
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}
