//! Headers on every page answer (error pages included). The API's stricter policy is set by
//! `observe` only where no handler or layer set one.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::{HttpContext, STRICT_TRANSPORT_SECURITY};

/// Scripts, styles and fetches only from this server, nothing inline (no `'unsafe-inline'`),
/// never framed by another site, forms only to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Sets the page headers on `headers`. `Cache-Control: no-store` unless the answer chose its own
/// (the immutable assets).
pub fn set_page_headers(headers: &mut HeaderMap, tls: bool) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
    }
}

/// On an answer that set its own headers (a part of a customer's message, `case_parts`): the
/// page layer leaves them, and `framable_by_self` makes `observe` send `X-Frame-Options:
/// SAMEORIGIN` instead of DENY (the sandboxed frame of the case page, and nothing else).
#[derive(Clone, Copy, Debug)]
pub struct OwnHeaders {
    pub framable_by_self: bool,
}

/// `X-Frame-Options` for an answer: DENY unless it is a mail part our own page frames.
pub fn frame_options(response: &Response) -> HeaderValue {
    match response.extensions().get::<OwnHeaders>() {
        Some(OwnHeaders { framable_by_self: true }) => HeaderValue::from_static("SAMEORIGIN"),
        _ => HeaderValue::from_static("DENY"),
    }
}

/// The layer over every page route.
pub async fn page_headers(State(ctx): State<Arc<HttpContext>>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let tls = ctx.tls.is_some();
    if response.extensions().get::<OwnHeaders>().is_some() {
        if tls {
            response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(STRICT_TRANSPORT_SECURITY));
        }
        return response;
    }
    set_page_headers(response.headers_mut(), tls);
    response
}
