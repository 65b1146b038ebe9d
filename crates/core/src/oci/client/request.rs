//! A request before signing, a successful answer, and the service error an unsuccessful one
//! carries.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::OciError;
use crate::oci::models::ErrorBody;
use crate::oci::signer::BodySigning;

/// A request to an OCI service, before signing.
#[derive(Debug, Clone)]
pub struct OciRequest {
    /// The operation's name, for errors and logs.
    pub operation: &'static str,
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: Url,
    /// Extra headers (content-type, opc-meta-*, ...).
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
    /// Whether the body headers are signed.
    pub body_signing: BodySigning,
}

impl OciRequest {
    /// A request without a body.
    pub fn new(operation: &'static str, method: Method, url: Url) -> Self {
        Self {
            operation,
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            body_signing: BodySigning::Include,
        }
    }

    /// Sets a JSON body.
    ///
    /// # Errors
    /// [`OciError::Decode`] if `value` cannot be serialised (which does not happen for the
    /// model types).
    pub fn json(mut self, value: &impl serde::Serialize) -> Result<Self, OciError> {
        let body = serde_json::to_vec(value).map_err(|e| OciError::Decode {
            operation: self.operation,
            detail: e.to_string(),
        })?;
        self.body = Bytes::from(body);
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(self)
    }

    /// Signs only `date (request-target) host`, as the SDKs do for PutMessages and PutObject.
    pub fn exclude_body_from_signature(mut self) -> Self {
        self.body_signing = BodySigning::Exclude;
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct OciResponse {
    /// The operation it answers.
    pub operation: &'static str,
    /// The status (2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl OciResponse {
    /// The `opc-request-id` header.
    pub fn request_id(&self) -> Option<&str> {
        self.header("opc-request-id")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`OciError::Decode`] when it is not the expected shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, OciError> {
        serde_json::from_slice(&self.body).map_err(|e| OciError::Decode {
            operation: self.operation,
            detail: e.to_string(),
        })
    }
}

/// A service error and the `Retry-After` it asked for.
pub(super) type Failed = (OciError, Option<Duration>);

/// A 2xx answer, or the service error it carries and the `Retry-After` it asked for.
pub(super) fn answer(
    operation: &'static str,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<OciResponse, Failed> {
    if status.is_success() {
        return Ok(OciResponse {
            operation,
            status,
            headers,
            body,
        });
    }
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (code, message): (String, String) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.code, e.message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', ""),
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        ),
    };
    let error = OciError::Service {
        operation,
        status: status.as_u16(),
        code,
        message,
        opc_request_id: headers
            .get("opc-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    Err((error, retry_after))
}
