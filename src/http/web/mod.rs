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
//! * `dashboard`: the supervisors' dashboard and its CSV downloads; `chart`: its SVG bar charts.
//! * `stats`: the supervisors' statistics of a period, with its CSV download.
//! * `queue`: a queue's cases, filtered, sorted and paged; `bulk`: one action on the ticked ones.
//! * `admin`: what the security officer's pages share; `admin_users`, `admin_roles`,
//!   `admin_changes` (second-person approvals), `admin_audit` (the log, "Verify chain"),
//!   `admin_retention` (policies, legal holds, the latest runs and erasures).
//! * `case`: one case with its thread; `case_sla` its SLA line; `case_body` a message taken apart;
//!   `case_parts` the HTML part and attachments under their own headers; `case_actions` the
//!   action forms with collision detection.
//! * `reply`: the reply pages under `/cases/{id}/reply…`: form with templates, preview, send, undo.
//! * `settings`: the user's own language and keyboard shortcuts (`assets/app.js`).
//! * `presence`: the "also here" line and its heartbeat; the queue list's markers and its
//!   "N new — refresh" banner live in `queue` and `queue_new`.

pub mod admin;
pub mod admin_audit;
pub mod admin_changes;
pub mod admin_retention;
pub mod admin_roles;
pub mod admin_users;
pub mod app_passwords;
pub mod assets;
pub mod bulk;
pub mod case;
pub mod case_actions;
pub mod case_body;
pub mod case_history;
pub mod case_parts;
pub mod case_sla;
pub mod chart;
pub mod chrome;
pub mod dashboard;
pub mod error;
pub mod headers;
pub mod home;
pub mod i18n;
pub mod login;
pub mod notifications;
pub mod presence;
pub mod queue;
pub mod queue_new;
pub mod reply;
pub mod session;
pub mod settings;
pub mod stats;
pub mod two_factor;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::HttpContext;
use session::Background;

/// The page routes, with the page headers on every answer.
pub fn router(ctx: Arc<HttpContext>) -> Router<Arc<HttpContext>> {
    Router::new()
        .route("/", get(home::my_queues))
        .route("/login", get(login::form).post(login::submit))
        .route("/login/code", post(login::submit_code))
        .route("/logout", post(login::logout))
        .route("/settings", get(settings::show).post(settings::save))
        .route("/settings/totp", post(two_factor::start))
        .route("/settings/totp/confirm", post(two_factor::confirm))
        .route("/settings/totp/disable", post(two_factor::disable))
        .route("/settings/app-passwords", post(app_passwords::create))
        .route("/settings/app-passwords/{id}/revoke", post(app_passwords::revoke))
        .route("/queues/{queue}", get(queue::list))
        .route("/queues/{queue}/bulk", post(bulk::bulk))
        .route("/queues/{queue}/new", get(queue_new::count).layer(Extension(Background)))
        .route("/admin/users", get(admin_users::list).post(admin_users::add))
        .route("/admin/users/{name}/lock", post(admin_users::lock))
        .route("/admin/users/{name}/unlock", post(admin_users::unlock))
        .route("/admin/users/{name}/two-factor/reset", post(admin_users::reset_two_factor))
        .route("/admin/users/{name}/email", post(admin_users::email))
        .route("/admin/users/{name}/password", post(admin_users::reset))
        .route("/admin/users/{name}/remove", get(admin_users::confirm_remove).post(admin_users::remove))
        .route("/admin/roles", get(admin_roles::list).post(admin_roles::add))
        .route("/admin/roles/{role}/grants", post(admin_roles::grants))
        .route("/admin/roles/{role}/members", post(admin_roles::add_member))
        .route("/admin/roles/{role}/members/{user}/remove", post(admin_roles::remove_member))
        .route("/admin/retention", get(admin_retention::show))
        .route("/admin/changes", get(admin_changes::list))
        .route("/admin/changes/{id}/approve", post(admin_changes::approve))
        .route("/admin/changes/{id}/reject", post(admin_changes::reject))
        .route("/admin/changes/{id}/code", post(admin_changes::collect))
        .route("/admin/audit", get(admin_audit::list))
        .route("/admin/audit/verify", post(admin_audit::verify))
        .route("/cases/{id}", get(case::show))
        .route("/cases/{id}/presence", post(presence::heartbeat).layer(Extension(Background)))
        .route("/cases/{id}/{action}", post(case_actions::act))
        .route("/cases/{id}/messages/{mid}/html", get(case_parts::html))
        .route("/cases/{id}/messages/{mid}/attachments/{index}", get(case_parts::attachment))
        .route("/dashboard", get(dashboard::show))
        .route("/dashboard/{file}", get(dashboard::csv))
        .route("/stats", get(stats::show))
        .route("/stats.csv", get(stats::csv))
        .route("/cases/{id}/reply", get(reply::form).post(reply::edit))
        .route("/cases/{id}/reply/preview", post(reply::preview))
        .route("/cases/{id}/reply/send", post(reply::send))
        .route("/cases/{id}/reply/{entry}", get(reply::state))
        .route("/cases/{id}/reply/{entry}/undo", post(reply::undo))
        .route("/cases/{id}/reply/{entry}/approve", post(reply::approve))
        .route("/cases/{id}/reply/{entry}/return", post(reply::give_back))
        .route("/reviews", get(reply::reviews))
        .route("/notifications", get(notifications::list))
        .route("/notifications/read", post(notifications::mark_read))
        .route("/assets/{file}", get(assets::serve))
        .layer(middleware::from_fn_with_state(ctx, headers::page_headers))
}

/// True for paths of the JSON API, which answer in JSON even when there is no such route.
pub fn is_api_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}
