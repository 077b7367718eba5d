//! The staff HTTP API (JSON), described by its own OpenAPI document at `/api/openapi.json`.
//!
//! * `auth`: login (cookie or bearer), logout, the session behind each request, CSRF.
//! * `queues`: the queues I may read, a queue's cases, statistics.
//! * `cases`: the case view, the raw message, the actions on a case.
//! * `admin`: the security officer's users, roles, pending changes and audit log.
//! * `enrol`: a user sets his own password with a one-time enrolment code.
//! * `error`: every failure as `{"error", "reason"}` with its status.
//! * `openapi`: the document, checked against the router by a test.
//! * `validate`: the input rules the document declares and the handlers enforce.
//!
//! Served with hyper over plain TCP (loopback only, config validation sees to that) or rustls.
//! Every request gets a time limit and a body limit, and leaves one log line: method, route
//! template, status, duration, staff user. Never an address or a subject.

pub mod admin;
pub mod auth;
pub mod cases;
pub mod config;
pub mod enrol;
pub mod error;
pub mod openapi;
pub mod queues;
pub mod validate;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::MethodRouter;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::access::Access;
use crate::cases::Cases;
use crate::config::Settings;
use crate::shutdown::{Phase, Shutdown};
use error::ApiError;

/// What every HTTP request shares.
pub struct HttpContext {
    pub settings: Arc<Settings>,
    pub access: Access,
    /// The case workflow: every queue, case and message endpoint goes through it.
    pub cases: Cases,
    /// Some when `http.tls = true`.
    pub tls: Option<TlsAcceptor>,
    pub shutdown: Shutdown,
}

/// The staff user of a request, filled in by the session extractor, for the log line.
#[derive(Clone, Default)]
pub(crate) struct RequestUser(Arc<OnceLock<String>>);

/// The router and, alongside, every (method, path) it serves, so the OpenAPI document can be
/// checked against what is really routed.
pub struct Routes {
    router: Router<Arc<HttpContext>>,
    pub list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<Arc<HttpContext>>) -> Self {
        self.list.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, Arc<HttpContext>>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("get", path, axum::routing::get(handler))
    }

    fn post<H: Handler<T, Arc<HttpContext>>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("post", path, axum::routing::post(handler))
    }

    fn delete<H: Handler<T, Arc<HttpContext>>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add("delete", path, axum::routing::delete(handler))
    }
}

/// Every route of the API.
pub fn routes() -> Routes {
    Routes { router: Router::new(), list: Vec::new() }
        .get("/", index)
        .get("/api/openapi.json", openapi::serve_document)
        .post("/api/login", auth::login)
        .post("/api/enrol", enrol::enrol)
        .post("/api/logout", auth::logout)
        .get("/api/me", auth::me)
        .get("/api/queues", queues::list_queues)
        .get("/api/queues/{queue}/cases", queues::list_cases)
        .get("/api/stats", queues::stats)
        .get("/api/cases/{id}", cases::get_case)
        .post("/api/cases/{id}/claim", cases::claim)
        .post("/api/cases/{id}/assign", cases::assign)
        .post("/api/cases/{id}/transfer", cases::transfer)
        .post("/api/cases/{id}/escalate", cases::escalate)
        .post("/api/cases/{id}/status", cases::status)
        .post("/api/cases/{id}/priority", cases::priority)
        .post("/api/cases/{id}/category", cases::category)
        .post("/api/cases/{id}/tags", cases::tags)
        .post("/api/cases/{id}/notes", cases::note)
        .post("/api/cases/{id}/reply", cases::reply)
        .post("/api/cases/{id}/follow-up", cases::follow_up)
        .get("/api/messages/{number}/raw", cases::raw_message)
        .get("/api/admin/users", admin::list_users)
        .post("/api/admin/users", admin::add_user)
        .post("/api/admin/users/{name}/password", admin::reset_password)
        .post("/api/admin/users/{name}/lock", admin::lock_user)
        .post("/api/admin/users/{name}/unlock", admin::unlock_user)
        .delete("/api/admin/users/{name}", admin::remove_user)
        .get("/api/admin/roles", admin::list_roles)
        .post("/api/admin/roles", admin::add_role)
        .post("/api/admin/roles/{role}/grants", admin::grant)
        .delete("/api/admin/roles/{role}/grants", admin::revoke)
        .post("/api/admin/roles/{role}/members", admin::add_member)
        .delete("/api/admin/roles/{role}/members/{user}", admin::remove_member)
        .get("/api/admin/changes", admin::list_changes)
        .post("/api/admin/changes/{id}/approve", admin::approve_change)
        .post("/api/admin/changes/{id}/reject", admin::reject_change)
        .post("/api/admin/changes/{id}/code", admin::collect_code)
        .get("/api/admin/audit", admin::audit_log)
        .get("/api/admin/audit/verify", admin::audit_verify)
}

/// The whole application: routes, JSON answers for unknown routes and methods, limits, logging.
pub fn app(ctx: Arc<HttpContext>) -> Router {
    let max_body = ctx.settings.config.http.max_body;
    routes()
        .router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such endpoint; GET /api/openapi.json lists them") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method; GET /api/openapi.json lists them",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(ctx.clone(), observe))
        .with_state(ctx)
}

/// Sent with every response: the API serves no script, style, image or frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// Sent with every response over TLS: a year, so a browser never tries plain HTTP first.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Time limit, safe default headers, and the one log line per request.
async fn observe(State(ctx): State<Arc<HttpContext>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "-".to_string(), |p| p.as_str().to_string());
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let mut response = match tokio::time::timeout(ctx.settings.config.http.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable("the request took longer than http.request_timeout and was abandoned (nothing was changed)")
            .into_response(),
    };
    let headers = response.headers_mut();
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Every answer, JSON and errors included: nothing served here may run script, load anything,
    // or be framed, whatever a browser makes of it.
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    if ctx.tls.is_some() {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    }
    tracing::info!(
        target: "mailroom::http",
        method = %method,
        route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        user = user.0.get().map_or("-", String::as_str),
        peer = %peer.map_or_else(|| "-".to_string(), |ip| ip.to_string()),
        "request"
    );
    response
}

/// `GET /`: a pointer to the API for whoever opens the address in a browser.
async fn index() -> Response {
    let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>mailroom</title></head>\
                <body><h1>mailroom</h1><p>This is the staff API of mailroom. It is described by its \
                <a href=\"/api/openapi.json\">OpenAPI document</a>; log in with <code>POST /api/login</code>.</p></body></html>";
    // The Content-Security-Policy comes from `observe`, as for every other response.
    Html(page).into_response()
}

/// Serves the API on `listener` until shutdown begins. Each connection then finishes the request
/// it is running and closes (an idle keep-alive one at once); `Phase::Forced` cuts off the rest
/// (`net::drain`).
///
/// Each connection holds a slot in `connections` (with the per-source cap and the reserved
/// share) until it closes. A connection must send each request's headers within
/// `http.idle_timeout` (and `http.request_timeout`, whichever is shorter) of connecting or of
/// the previous response: hyper's header read timeout runs from the moment it waits for a
/// request head, so it also closes idle keep-alive and silent connections. A response write
/// that makes no progress for `http.request_timeout` ends it, so no client can hold a slot by
/// not reading either.
pub async fn serve(listener: TcpListener, ctx: Arc<HttpContext>, connections: Arc<crate::net::Pool>) {
    use crate::net::{Admission, Listener, Policy, deadline::WriteDeadline};
    let app = app(ctx.clone());
    let config = &ctx.settings.config.http;
    let (idle, write_limit) = (config.idle_timeout.min(config.request_timeout), config.request_timeout);
    let name = if ctx.tls.is_some() { "https" } else { "http" };
    let listener = Listener::new(listener, name).gate(connections.clone(), Policy::capped(config.max_connections_per_source));
    listener
        .run(ctx.shutdown.clone(), |stream, peer, admission| {
            let slot = match admission {
                Admission::Admitted(slot) => slot,
                Admission::Refused(refused) => {
                    refuse(stream, refused, ctx.tls.is_none());
                    return;
                }
            };
            let service = TowerToHyperService::new(app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            }));
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(idle);
            let (tls, shutdown) = (ctx.tls.clone(), ctx.shutdown.clone());
            tokio::spawn(async move {
                match tls {
                    None => {
                        serve_connection(http.serve_connection(TokioIo::new(WriteDeadline::new(stream, write_limit)), service), shutdown)
                            .await
                    }
                    Some(acceptor) => match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let io = TokioIo::new(WriteDeadline::new(tls, write_limit));
                            serve_connection(http.serve_connection(io, service), shutdown).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "http: TLS handshake failed"),
                        Err(_) => tracing::debug!("http: TLS handshake timed out"),
                    },
                }
                drop(slot);
            });
        })
        .await;
}

/// One HTTP/1 connection until it closes: at `Draining` it finishes the request in progress and
/// closes; at `Forced` it is dropped where it stands.
async fn serve_connection<I, S>(conn: hyper::server::conn::http1::Connection<I, S>, mut shutdown: Shutdown)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.reached(Phase::Draining) => conn.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.reached(Phase::Forced) => tracing::debug!("http: a request still running was cut off"),
    }
}

/// Over a connection limit. Plain HTTP gets a 503 in the API's error format; on HTTPS the
/// connection is just closed (a TLS handshake only to refuse would cost more than it tells).
fn refuse(stream: tokio::net::TcpStream, refused: crate::net::Refused, plain: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !plain {
        return;
    }
    let reason = if refused.why.is_per_source() {
        "too many connections from your address; try again later"
    } else {
        "too many connections; try again later"
    };
    let body = serde_json::json!({"error": "unavailable", "reason": reason}).to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    refused.answer_now(&stream, response.as_bytes());
    if refused.answering.is_none() {
        return;
    }
    // Read what the client sends for a moment: closing with unread input resets the
    // connection, and the client could lose the answer.
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            while let Ok(1..) = stream.read(&mut sink).await {}
        })
        .await;
        drop(refused);
    });
}
