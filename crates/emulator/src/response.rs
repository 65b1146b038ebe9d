//! What a service answers: JSON, an empty body with a status, OCI's error body. Shared by the
//! HTTP front and every service, and importing neither.

use axum::body::Body;
use axum::response::Response;
use datasync_core::oci::models::ErrorBody;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::error::ApiError;

/// The OCI error response for `err`: its status and `{"code","message"}`.
pub(crate) fn error_response(err: &ApiError) -> Response {
    let body = serde_json::to_vec(&ErrorBody {
        code: err.code.to_owned(),
        message: err.message.clone(),
    })
    .unwrap_or_default();
    json_bytes(err.status, body)
}

/// `body`, already JSON, with `status`.
fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `value` as JSON with `status`.
///
/// # Errors
/// 500 when `value` cannot be serialized.
pub(crate) fn json<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_bytes(status, body))
}

/// 200 with `value` as JSON.
///
/// # Errors
/// 500 when `value` cannot be serialized.
pub(crate) fn ok<T: serde::Serialize>(value: &T) -> Result<Response, ApiError> {
    json(StatusCode::OK, value)
}

/// An empty answer with `status`.
pub(crate) fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Sets a header when `value` is a valid header value (every value the emulator writes is).
pub(crate) fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}
