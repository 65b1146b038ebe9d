//! What populate answers: the success bodies, and every refusal as an OCI-style
//! `{"code","message"}` error with an honest status.
//!
//! Messages name fields and rules, never values: a refused body may hold a token, a payload or
//! a URL with credentials in it, and answers end up in gateway logs.

use datasync_core::oci::client::OciError;
use datasync_core::oci::streaming::{FailedMessage, StoredMessage};
use fdk::Response;
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;

/// Why a call was not accepted (or not completely stored).
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Per-item outcomes, for stream failures (so the caller retries only what failed).
    pub items: Option<Vec<ItemAnswer>>,
    /// `Allow: POST` on 405.
    pub allow: bool,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            items: None,
            allow: false,
        }
    }

    pub fn method_not_allowed() -> Self {
        Self {
            allow: true,
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "POST /stream/sync only accepts POST",
            )
        }
    }

    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NotAuthenticated", message)
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
        )
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", message)
    }

    pub fn invalid(field: &str, rule: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("{field}: {rule}"),
        )
    }

    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "FunctionMisconfigured",
            message,
        )
    }

    /// Looking up the secret a message names failed: 503 when a later call may succeed
    /// (throttling, 5xx, network), 502 otherwise (permissions, a missing vault: an operator
    /// must act).
    pub fn vault(error: &OciError) -> Self {
        let (status, code) = if error.is_retryable() {
            (StatusCode::SERVICE_UNAVAILABLE, "VaultUnavailable")
        } else {
            (StatusCode::BAD_GATEWAY, "VaultError")
        };
        Self::new(
            status,
            code,
            format!(
                "the secret named by vaultSecretName could not be looked up in Vault ({}); nothing was written to the stream",
                describe(error)
            ),
        )
    }

    /// Encrypt failed: the token could not be sealed. 503 when it may pass later, else 502.
    pub fn crypto(error: &OciError) -> Self {
        let (status, code) = if error.is_retryable() {
            (StatusCode::SERVICE_UNAVAILABLE, "VaultUnavailable")
        } else {
            (StatusCode::BAD_GATEWAY, "VaultError")
        };
        Self::new(
            status,
            code,
            format!(
                "the Authorization token could not be sealed with the vault key ({}); nothing was written to the stream",
                describe(error)
            ),
        )
    }

    /// No token in the request, and no stored secret of the name `field` gives.
    pub fn no_such_secret(field: &str) -> Self {
        Self::invalid(
            field,
            "names no secret stored in the vault, and the request carries no Authorization header; send the token, or store the secret first; nothing was written to the stream",
        )
    }

    /// PutMessages failed as a whole: nothing stored.
    pub fn stream(error: &OciError, count: usize) -> Self {
        let (status, code) = if error.is_retryable() {
            (StatusCode::SERVICE_UNAVAILABLE, "StreamUnavailable")
        } else {
            (StatusCode::BAD_GATEWAY, "StreamError")
        };
        let mut r = Self::new(
            status,
            code,
            format!(
                "the data stream did not store the message(s) ({}); nothing was stored, send again",
                describe(error)
            ),
        );
        r.items = Some(
            (0..count)
                .map(|index| ItemAnswer::failed(index, None, "NotStored"))
                .collect(),
        );
        r
    }

    /// Some entries were not stored after the client's retries.
    pub fn partially_stored(items: Vec<ItemAnswer>, retryable: bool) -> Self {
        let failed = items.iter().filter(|i| !i.stored).count();
        let total = items.len();
        let (status, code) = if retryable {
            (StatusCode::SERVICE_UNAVAILABLE, "StreamUnavailable")
        } else {
            (StatusCode::BAD_GATEWAY, "StreamError")
        };
        let mut r = Self::new(
            status,
            code,
            format!(
                "{failed} of {total} message(s) were not stored; send only the items with \"stored\": false again"
            ),
        );
        r.items = Some(items);
        r
    }

    /// The response.
    pub fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            items: Option<&'a [ItemAnswer]>,
        }
        let body = Body {
            code: self.code,
            message: &self.message,
            items: self.items.as_deref(),
        };
        let mut response = match Response::json(&body) {
            Ok(r) => r.with_status(self.status),
            Err(_) => Response::error(self.status, self.code, &self.message),
        };
        if self.allow {
            response = response.with_header(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// `operation status code (opc-request-id …)` of an OCI error, without the service's free-text
/// message.
fn describe(error: &OciError) -> String {
    match error {
        OciError::Service {
            operation,
            status,
            code,
            opc_request_id,
            ..
        } => format!(
            "{operation}: {status} {code}, opc-request-id {}",
            opc_request_id.as_deref().unwrap_or("none")
        ),
        OciError::Transport { operation, .. } => format!("{operation}: service not reachable"),
        OciError::Auth(_) => "the function's OCI credentials could not be loaded".to_owned(),
        OciError::Sign(_) => "the request could not be signed".to_owned(),
        OciError::Decode { operation, .. } => format!("{operation}: unexpected answer"),
        OciError::Limit { operation, .. } => format!("{operation}: service limit"),
        OciError::Endpoint(_) => "endpoint not configured".to_owned(),
    }
}

/// Where one accepted message is: the success answer (`{"id","partition","offset"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    /// The envelope id (UUID v7), the target's `Idempotency-Key`.
    pub id: String,
    /// The stream partition.
    pub partition: String,
    /// The offset in that partition.
    pub offset: i64,
    /// The route a routed message names (left out for the sample's format): the local stack
    /// counts accepted messages per route from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

impl Stored {
    pub(crate) fn new(id: String, at: &StoredMessage, route: Option<String>) -> Self {
        Self {
            id,
            partition: at.partition.clone(),
            offset: at.offset,
            route,
        }
    }
}

/// One item of a failed (or partly failed) write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ItemAnswer {
    pub index: usize,
    pub stored: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ItemAnswer {
    pub fn stored(index: usize, s: Stored) -> Self {
        Self {
            index,
            stored: true,
            id: Some(s.id),
            partition: Some(s.partition),
            offset: Some(s.offset),
            code: None,
        }
    }

    pub fn failed(index: usize, id: Option<String>, code: &str) -> Self {
        Self {
            index,
            stored: false,
            id,
            partition: None,
            offset: None,
            code: Some(code.to_owned()),
        }
    }

    pub fn from_failure(index: usize, id: String, f: &FailedMessage) -> Self {
        Self::failed(index, Some(id), &f.code)
    }
}

/// Whether an entry failure may succeed when sent again.
pub(crate) fn entry_retryable(f: &FailedMessage) -> bool {
    match f.status {
        Some(s) => matches!(s, 408 | 429 | 500 | 502 | 503 | 504),
        // Entry errors (HTTP 200, failures > 0) are throttling or internal errors; transport
        // failures have no status either: both may pass later.
        None => f.code != "NotSent",
    }
}
