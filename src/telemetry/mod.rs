//! Observability: the Prometheus `/metrics` text, `/healthz` and `/readyz`, on a listener of
//! their own (`[metrics] listen`), never on the staff HTTP port.
//!
//! * `recorder`: the process's recorder (metrics-exporter-prometheus) and the catalogue of every
//!   metric. The modules record through the `metrics` facade where things happen (smtp, the
//!   store's writer, access, net); nothing is recorded when no metrics listener is configured.
//! * `gauges`: what is read at scrape time: queue depth, overdue cases, outbox, connections
//!   open, store size, free disk.
//! * `health`: the readiness checks.
//! * `config`: `[metrics]`.
//!
//! No label value ever comes from mail or from a client: protocols, reply codes, results and
//! statuses are fixed sets, queue names come from the configuration.

pub mod config;
mod gauges;
pub mod health;
pub mod recorder;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::net::Pool;
use crate::shutdown::{Phase, Shutdown};
use crate::store::Store;

/// A scraper or probe must send its request's headers within this of connecting.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often histogram samples are folded in when nobody scrapes (bounded memory).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// What the metrics listener reads from.
pub struct Telemetry {
    pub handle: PrometheusHandle,
    pub store: Store,
    /// `Authorization: Bearer` must carry this for `/metrics`, when set.
    pub token: Option<Zeroizing<String>>,
    /// The configured queue names: the only queue labels.
    pub queues: Vec<String>,
    /// Service name ("smtp", "imap", "http") and the pools its connections hold slots in.
    pub connections: Vec<(&'static str, Vec<Arc<Pool>>)>,
    pub data_dir: PathBuf,
    pub min_free_disk: Option<u64>,
    /// `limits.max_message_size`: the room a database under its cap must still have.
    pub max_message_size: u64,
    pub shutdown: Shutdown,
    /// When the store's counts were last read (see `gauges`).
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

impl Telemetry {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        handle: PrometheusHandle,
        store: Store,
        token: Option<Zeroizing<String>>,
        queues: Vec<String>,
        connections: Vec<(&'static str, Vec<Arc<Pool>>)>,
        data_dir: PathBuf,
        min_free_disk: Option<u64>,
        max_message_size: u64,
        shutdown: Shutdown,
    ) -> Telemetry {
        Telemetry {
            handle,
            store,
            token,
            queues,
            connections,
            data_dir,
            min_free_disk,
            max_message_size,
            shutdown,
            refreshed: Default::default(),
        }
    }
}

pub fn router(t: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(ready))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found: /metrics, /healthz, /readyz\n") })
        .with_state(t)
}

async fn scrape(State(t): State<Arc<Telemetry>>, headers: HeaderMap) -> Response {
    if let Some(token) = &t.token
        && !bearer_matches(&headers, token)
    {
        let mut response = (StatusCode::UNAUTHORIZED, "a bearer token is required (metrics.bearer_token_file)\n").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"mailroom metrics\""));
        return response;
    }
    gauges::refresh(&t).await;
    t.handle.run_upkeep();
    let body = t.handle.render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in constant time).
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, given)) = value.split_once(' ') else { return false };
    scheme.eq_ignore_ascii_case("bearer")
        && aws_lc_rs::constant_time::verify_slices_are_equal(given.trim().as_bytes(), token.as_bytes()).is_ok()
}

async fn ready(State(t): State<Arc<Telemetry>>) -> Response {
    let readiness = health::readiness(&t).await;
    let status = if readiness.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    if let Some(reason) = &readiness.reason {
        tracing::debug!(reason, "readyz: not ready");
    }
    (status, axum::Json(readiness)).into_response()
}

/// Serves the router on `listener` until shutdown begins (then each connection finishes its
/// request). Each connection holds a slot in `connections`; over the limit it is closed.
pub async fn serve(listener: TcpListener, t: Arc<Telemetry>, connections: Arc<Pool>) {
    use crate::net::{Admission, Listener, Policy};
    let app = router(t.clone());
    let upkeep = {
        let (handle, mut shutdown) = (t.handle.clone(), t.shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(UPKEEP_EVERY) => handle.run_upkeep(),
                    _ = shutdown.reached(Phase::Draining) => break,
                }
            }
        })
    };
    Listener::new(listener, "metrics")
        .gate(connections, Policy::trusted())
        .run(t.shutdown.clone(), |stream, _peer, admission| {
            let Admission::Admitted(slot) = admission else { return };
            let service = TowerToHyperService::new(app.clone());
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let mut shutdown = t.shutdown.clone();
            tokio::spawn(async move {
                let conn = http.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = shutdown.reached(Phase::Draining) => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(HEADER_TIMEOUT, conn).await;
                    }
                }
                drop(slot);
            });
        })
        .await;
    let _ = upkeep.await;
}
