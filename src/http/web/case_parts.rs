//! Parts of a customer's message, each served with its own restrictive headers instead of the
//! page's (`headers::OwnHeaders`), under the case's access rule (404 otherwise), audited as a
//! read of the message (`Cases::case_message`):
//!
//! * `GET /cases/{id}/messages/{mid}/html`: the HTML part, for the page's `<iframe sandbox>`
//!   only: no script, no remote image unless `?images=remote` (the user asked), framed by our own
//!   page and nobody else's (`X-Frame-Options: SAMEORIGIN`, the one exception to DENY).
//! * `GET /cases/{id}/messages/{mid}/attachments/{index}`: an attachment, always as a download.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::case::VIA;
use super::case_body;
use super::error::{PageError, Problem};
use super::headers::OwnHeaders;
use super::session::PageSession;
use crate::cases::CaseError;
use crate::http::HttpContext;

/// The mail's own styles may apply; nothing may run, load from elsewhere, or submit.
pub const HTML_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; sandbox; frame-ancestors 'self'";
/// The same with remote images, when the user asked for them.
pub const HTML_POLICY_REMOTE_IMAGES: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid: https: http:; sandbox; frame-ancestors 'self'";
/// A download renders nothing.
pub const ATTACHMENT_POLICY: &str = "default-src 'none'; sandbox";

/// Declared types passed on as they are; any other is served as `application/octet-stream`.
const HARMLESS_TYPES: [&str; 10] = [
    "application/pdf",
    "application/zip",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "text/plain",
    "text/csv",
    "audio/mpeg",
    "video/mp4",
];

#[derive(Deserialize, Default)]
pub struct HtmlOptions {
    #[serde(default)]
    images: String,
}

/// The stored message `mid` of case `id`, or the page to answer with.
async fn message(ctx: &HttpContext, session: &PageSession, id: &str, mid: &str) -> Result<Vec<u8>, Response> {
    let not_found = || PageError::new(session.lang, Problem::NotFound).into_response();
    let (Ok(id), Ok(mid)) = (id.parse::<i64>(), mid.parse::<i64>()) else { return Err(not_found()) };
    match ctx.cases.case_message(&session.principal, VIA, id, mid).await {
        Ok(raw) => Ok(raw.bytes),
        Err(CaseError::NotFound(_) | CaseError::NoSuchMessage(_)) => Err(not_found()),
        Err(e) => Err(PageError::internal(session.lang, e).into_response()),
    }
}

fn own_headers(body: Vec<u8>, content_type: &str, policy: &'static str, framable_by_self: bool) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let frame = if framable_by_self { "SAMEORIGIN" } else { "DENY" };
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static(frame));
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    (StatusCode::OK, headers, body)
}

/// `GET /cases/{id}/messages/{mid}/html`.
pub async fn html(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path((id, mid)): Path<(String, String)>,
    options: Result<Query<HtmlOptions>, QueryRejection>,
) -> Response {
    let raw = match message(&ctx, &session, &id, &mid).await {
        Ok(raw) => raw,
        Err(page) => return page,
    };
    let Some(html) = case_body::html(&raw) else { return PageError::new(session.lang, Problem::NotFound).into_response() };
    let remote = options.is_ok_and(|Query(o)| o.images == "remote");
    let policy = if remote { HTML_POLICY_REMOTE_IMAGES } else { HTML_POLICY };
    let mut response = own_headers(html.into_bytes(), "text/html; charset=utf-8", policy, true).into_response();
    response.extensions_mut().insert(OwnHeaders { framable_by_self: true });
    response
}

/// `filename*=UTF-8''…` (RFC 6266/8187): every byte but RFC 5987's attr-chars percent-encoded.
fn disposition(name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    format!("attachment; filename*=UTF-8''{encoded}")
}

/// `GET /cases/{id}/messages/{mid}/attachments/{index}`.
pub async fn attachment(
    State(ctx): State<Arc<HttpContext>>,
    session: PageSession,
    Path((id, mid, index)): Path<(String, String, String)>,
) -> Response {
    let raw = match message(&ctx, &session, &id, &mid).await {
        Ok(raw) => raw,
        Err(page) => return page,
    };
    let Some((info, bytes)) = index.parse::<usize>().ok().and_then(|i| case_body::attachment(&raw, i)) else {
        return PageError::new(session.lang, Problem::NotFound).into_response();
    };
    let content_type =
        if HARMLESS_TYPES.contains(&info.content_type.as_str()) { info.content_type.as_str() } else { "application/octet-stream" };
    let name = if info.name.trim().is_empty() { format!("attachment-{}", info.index + 1) } else { info.name.clone() };
    let mut response = own_headers(bytes, content_type, ATTACHMENT_POLICY, false).into_response();
    if let Ok(value) = HeaderValue::from_str(&disposition(&name)) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response.extensions_mut().insert(OwnHeaders { framable_by_self: false });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_is_percent_encoded_utf8() {
        assert_eq!(disposition("счёт 1.pdf"), "attachment; filename*=UTF-8''%D1%81%D1%87%D1%91%D1%82%201.pdf");
        assert_eq!(disposition("a\"b;c.txt"), "attachment; filename*=UTF-8''a%22b%3Bc.txt");
    }
}
