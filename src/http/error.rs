//! Every failure leaves the API as `{"error": "<short code>", "reason": "<human sentence>"}` with
//! the matching status, including what axum's extractors reject (bad JSON, wrong content type,
//! too large a body, a malformed path or query).

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::access::admin::AdminError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
    /// Seconds, for 429 and 503 (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError { status, code, reason: reason.into(), retry_after: None }
    }

    pub fn unauthenticated(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", reason)
    }

    pub fn forbidden(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::FORBIDDEN, "forbidden", reason)
    }

    pub fn not_found(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// Well-formed but not acceptable (unknown status, unknown queue, user who may not read …).
    pub fn invalid(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", reason)
    }

    pub fn conflict(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::CONFLICT, "conflict", reason)
    }

    pub fn unavailable(reason: impl Into<String>) -> ApiError {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
    }

    /// Too many failed logins (429 with `Retry-After`).
    pub fn throttled(reason: impl Into<String>, retry_after: std::time::Duration) -> ApiError {
        ApiError { retry_after: Some(retry_seconds(retry_after)), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "throttled", reason) }
    }

    /// The server is too busy right now, nothing was done: try again (503 with `Retry-After`).
    pub fn busy(reason: impl Into<String>, retry_after: std::time::Duration) -> ApiError {
        ApiError { retry_after: Some(retry_seconds(retry_after)), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", reason) }
    }

    /// Logged in full (store errors name no customer data), answered without detail.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "http: request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the details")
    }
}

/// Whole seconds, rounded up, at least 1.
fn retry_seconds(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code, "reason": self.reason });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("no message is registered as {what}")),
            StoreError::BadNumber(number, why) => ApiError::not_found(format!("{number:?} is not a registration number: {why}")),
            // A registration whose content retention or erasure destroyed: gone for good.
            e @ StoreError::Purged(_) => ApiError::new(StatusCode::GONE, "purged", e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> ApiError {
        match e {
            AdminError::Invalid(reason) => ApiError::invalid(reason),
            e @ (AdminError::NoSuchUser(_) | AdminError::NoSuchRole(_) | AdminError::NoSuchChange(_)) => ApiError::not_found(e.to_string()),
            e @ AdminError::Exists(_) => ApiError::conflict(e.to_string()),
            AdminError::Forbidden(reason) => ApiError::forbidden(reason),
            AdminError::Conflict(reason) => ApiError::conflict(reason),
            AdminError::Store(e) => e.into(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let status = r.status();
        let code = match &r {
            JsonRejection::JsonDataError(_) => "invalid",
            JsonRejection::JsonSyntaxError(_) => "bad_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            _ => "bad_request",
        };
        let reason = match code {
            "unsupported_media_type" => "send the body as JSON with Content-Type: application/json".to_string(),
            "too_large" => "the request body is larger than http.max_body".to_string(),
            _ => r.body_text(),
        };
        ApiError::new(status, code, reason)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

/// Why text with U+0000 is refused: PostgreSQL cannot store it in a text column, and no name,
/// note or reply has a use for it. Refused the same way on both engines.
pub const NUL_REFUSED: &str = "text must not contain the NUL character (U+0000)";

/// `axum::Json` with rejections in our error shape, and text with U+0000 refused as invalid.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request<axum::body::Body>, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if has_nul(&value) {
            return Err(ApiError::invalid(NUL_REFUSED));
        }
        // Through axum again (not `from_value`) so a field's error still names its path.
        let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Json(axum::Json::<T>::from_bytes(&bytes)?.0))
    }
}

fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A percent-encoded NUL in a path or query: no name or id contains one (see `NUL_REFUSED`).
pub fn encodes_nul(raw: &str) -> bool {
    raw.contains("%00")
}

/// `axum::extract::Query` with rejections in our error shape.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A malformed query, as any other query that does not parse (400, as documented).
        if parts.uri.query().is_some_and(encodes_nul) {
            return Err(ApiError::bad_request(NUL_REFUSED));
        }
        Ok(Query(axum::extract::Query::<T>::from_request_parts(parts, state).await?.0))
    }
}

/// `axum::extract::Path` with rejections in our error shape.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if encodes_nul(parts.uri.path()) {
            return Err(ApiError::not_found("no such thing: no name or id contains the NUL character (U+0000)"));
        }
        Ok(Path(axum::extract::Path::<T>::from_request_parts(parts, state).await?.0))
    }
}
