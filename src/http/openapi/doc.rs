//! What utoipa generates the document from: the operations (`#[utoipa::path]` on each handler),
//! the component schemas (the request and response types), the shared error answers and the
//! security schemes.

use serde::Serialize;
use utoipa::openapi::header::Header;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

use crate::cases::dashboard;
use crate::http::admin::{self, ResetBody, answers};
use crate::http::cases::answers as case;
use crate::http::{app_passwords, auth, cases, enrol, notifications, queues, two_factor};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mailroom staff API",
        description = "Queues, cases and access management of mailroom. Every error is {\"error\": code, \"reason\": sentence}. \
                       Reads of customer data are authorised per queue and audited.",
    ),
    servers((url = "/")),
    security(("cookie" = []), ("bearer" = [])),
    paths(
        super::serve_document,
        auth::login,
        auth::logout,
        auth::me,
        two_factor::status,
        two_factor::enrol,
        two_factor::confirm,
        two_factor::disable,
        app_passwords::list,
        app_passwords::create,
        app_passwords::revoke,
        enrol::enrol,
        notifications::list,
        notifications::mark_read,
        queues::list_queues,
        queues::list_cases,
        queues::stats,
        queues::dashboard,
        cases::get_case,
        cases::claim,
        cases::assign,
        cases::transfer,
        cases::escalate,
        cases::status,
        cases::priority,
        cases::category,
        cases::tags,
        cases::note,
        cases::reply,
        cases::follow_up,
        cases::undo_reply,
        cases::raw_message,
        admin::list_users,
        admin::add_user,
        admin::reset_password,
        admin::lock_user,
        admin::unlock_user,
        admin::reset_two_factor,
        admin::set_email,
        admin::remove_user,
        admin::list_roles,
        admin::add_role,
        admin::grant,
        admin::revoke,
        admin::add_member,
        admin::remove_member,
        admin::list_changes,
        admin::approve_change,
        admin::reject_change,
        admin::collect_code,
        admin::audit_log,
        admin::audit_verify,
    ),
    components(
        schemas(ErrorBody, auth::LoginRequest, auth::Login, auth::Me, enrol::EnrolRequest, enrol::Enrolled,
            two_factor::TotpStatus, two_factor::TotpEnrolment, two_factor::TotpCode, two_factor::TotpConfirmed,
            app_passwords::AppPassword, app_passwords::AppPasswordList, app_passwords::NewAppPassword, app_passwords::CreatedAppPassword,
            notifications::NotificationList, notifications::NotificationItem, notifications::MarkRead, notifications::MarkedRead, queues::QueueList, queues::CaseList, queues::Stats,
            dashboard::Dashboard, dashboard::Backlog, dashboard::DayFlow, dashboard::Durations, dashboard::WeekSla, dashboard::Volume,
            admin::Grant, answers::User, answers::Role, answers::Change, answers::Enrolment, answers::Pending, answers::NewAccount,
            answers::Reset, answers::CollectedCode, answers::AuditPage, answers::AuditCheck,
            case::Mailbox, case::Case, case::CaseListItem, case::Message, case::Entry, case::HistoryEntry, case::CaseDetail, case::ActionResult),
        responses(BadRequest, Unauthenticated, Forbidden, NotFound, Gone, Conflict, TooLarge, UnsupportedMediaType, Invalid, Throttled, Unavailable),
    ),
    modifiers(&SecuritySchemes, &ResetBody, &AuthenticatedCanBeForbidden),
)]
pub struct ApiDoc;

/// The body of every failure (`error::ApiError`).
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    #[schema(example = "forbidden")]
    pub error: String,
    pub reason: String,
}

/// Session cookie, its CSRF header, and bearer tokens.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("cookie", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(auth::COOKIE))));
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "required with the cookie on every state-changing request",
            ))),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every authenticated operation can answer 403: `two_factor_required` (the caller's role requires
/// two-factor login and he has not enrolled; `http::auth` lets only the enrolment through) and,
/// for a change with a cookie session, `csrf`. So each one lists `Forbidden`, also those whose
/// handler checks no permission of its own.
struct AuthenticatedCanBeForbidden;

impl Modify for AuthenticatedCanBeForbidden {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                if is_public(operation) {
                    continue;
                }
                operation.responses.responses.entry("403".into()).or_insert_with(|| Ref::from_response_name("Forbidden").into());
            }
        }
    }
}

/// An operation anyone may call: its security is the one empty requirement (`security(())`).
fn is_public(operation: &utoipa::openapi::path::Operation) -> bool {
    operation.security.as_ref().is_some_and(|requirements| {
        requirements.iter().all(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty())))
    })
}

/// An error answer with the `Error` body.
fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content("application/json", Content::new(Some(Ref::from_schema_name("Error"))))
}

/// The same, with the `Retry-After` header (seconds).
fn retry_response(description: &str) -> ResponseBuilder {
    error_response(description).header("Retry-After", Header::new(Object::with_type(Type::Integer)))
}

/// The error answers operations share, each a `components.responses` entry.
macro_rules! shared_responses {
    ($($name:ident: $make:ident($description:expr);)*) => {$(
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $make($description).into())
            }
        }
    )*};
}

shared_responses! {
    BadRequest: error_response("malformed JSON, path or query parameter (error bad_json or bad_request)");
    Unauthenticated: error_response("no session, or it ended (logged out, expired, user locked or removed)");
    Forbidden: error_response("missing permission (error forbidden), CSRF check failed (error csrf), or the caller's role requires two-factor login and he has not enrolled yet (error two_factor_required)");
    NotFound: error_response("no such thing, or it is in a queue the caller may not read");
    Gone: error_response("the registration exists but retention or erasure destroyed its content (error purged; the reason gives the dates and the policy)");
    Conflict: error_response("the current state does not allow it");
    TooLarge: error_response("the body is larger than http.max_body");
    UnsupportedMediaType: error_response("the body is not sent as application/json");
    Invalid: error_response("well-formed but not acceptable: unknown name, wrong field, value out of range (the reason says which)");
    Throttled: retry_response("too many failed logins; try again after Retry-After seconds");
    Unavailable: error_response("not configured, or the request ran out of time");
}

/// The errors every change sent with a JSON body can meet (an action on a case, an access
/// change): bad JSON, no session, no permission, no such thing, too large, not JSON, invalid.
pub struct ChangeErrors;

impl utoipa::IntoResponses for ChangeErrors {
    fn responses() -> std::collections::BTreeMap<String, RefOr<Response>> {
        [
            ("400", "BadRequest"),
            ("401", "Unauthenticated"),
            ("403", "Forbidden"),
            ("404", "NotFound"),
            ("413", "TooLarge"),
            ("415", "UnsupportedMediaType"),
            ("422", "Invalid"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_string(), Ref::from_response_name(name).into()))
        .collect()
    }
}
