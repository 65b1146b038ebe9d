//! What a handler returns.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;

use crate::Error;

/// A handler's answer: status, headers and body.
///
/// For `httprequest` calls the status and headers reach the gateway's client (as
/// `Fn-Http-Status` and `Fn-Http-H-*`); the FDK's own status stays 200. For other calls the
/// headers are sent as they are, and a status of 400 or more marks the call failed (outer
/// 502, or 504 for a 504), so that Connector Hub redelivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status (200 by default).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Default for Response {
    fn default() -> Self {
        Self::new(Bytes::new())
    }
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Response {
    /// A 200 response with `body` and no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// A 200 response with `value` serialized as JSON and `Content-Type: application/json`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when `value` cannot be serialized.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(Self::new(body).with_header(CONTENT_TYPE, JSON))
    }

    /// An OCI-style error: `status` with the JSON body `{"code": code, "message": message}`.
    pub fn error(status: StatusCode, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        Self::new(body)
            .with_status(status)
            .with_header(CONTENT_TYPE, JSON)
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Appends a header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }
}

/// Anything a handler may return as its success value.
pub trait IntoResponse {
    /// Converts into a [`Response`].
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::default()
    }
}

impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::new(self.to_string()).with_header(CONTENT_TYPE, JSON)
    }
}

impl<T: Serialize> IntoResponse for crate::Json<T> {
    fn into_response(self) -> Response {
        match Response::json(&self.0) {
            Ok(r) => r,
            Err(e) => Response::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "FunctionError",
                &e.to_string(),
            ),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let r = Response::error(StatusCode::NOT_FOUND, "NotFound", "no \"x\"");
        assert_eq!(r.status, 404);
        assert_eq!(r.headers[CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "NotFound", "message": "no \"x\""})
        );
        let j = Response::json(&serde_json::json!({"a": 1})).unwrap();
        assert_eq!(&j.body[..], br#"{"a":1}"#);
        assert_eq!(crate::Json(vec![1]).into_response().body, "[1]");
        assert_eq!("hi".into_response().body, "hi");
    }
}
