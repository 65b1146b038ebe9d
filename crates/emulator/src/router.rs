//! The router: mounts each service under its API's first path segment, and says what a
//! route's body may be before it is read.
//!
//! A new service is a module with a `route(inner, &Call)` function and an entry in
//! [`dispatch`] under its API version (Monitoring is `20180401`, Logging Search `20190909`).

use std::sync::Arc;

use axum::response::Response;
use http::Method;

use crate::emulator::Inner;
use crate::error::ApiError;
use crate::http::BODY_LIMIT;
use crate::options::EmulatorOptions;
use crate::request::Call;
use crate::{kms, monitoring, notifications, objectstorage, secrets, streaming};

/// Routes a verified call to its service.
///
/// # Errors
/// The service's [`ApiError`]; 404 for a path no service serves.
pub(crate) async fn dispatch(inner: &Arc<Inner>, call: Call) -> Result<Response, ApiError> {
    match call.segments.first().map(String::as_str) {
        Some(streaming::API) => streaming::route(inner, &call).await,
        // Key Management's crypto API shares Vault's version segment.
        Some(secrets::VAULT_API) if kms::is_crypto(&call.segments) => {
            kms::route(inner, &call).await
        }
        Some(secrets::SECRETS_API | secrets::VAULT_API) => secrets::route(inner, &call).await,
        Some(notifications::API) => notifications::route(inner, &call).await,
        Some(monitoring::API) => monitoring::route(inner, &call).await,
        Some(objectstorage::PREFIX) => objectstorage::route(inner, &call).await,
        _ => Err(call.not_found()),
    }
}

/// What a request's body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyRules {
    /// The most bytes it may hold (413 beyond).
    pub limit: usize,
    /// Whether its signature leaves the body out, as OCI signs PutMessages and PutObject.
    pub body_exempt: bool,
}

/// The body rules of a request, from its method and path alone.
pub(crate) fn body_rules(
    method: &Method,
    path: &str,
    segments: &[String],
    options: &EmulatorOptions,
) -> BodyRules {
    if objectstorage::is_put_object(method, path) {
        BodyRules {
            limit: options.max_object_bytes,
            body_exempt: true,
        }
    } else {
        BodyRules {
            limit: BODY_LIMIT,
            body_exempt: streaming::is_put_messages(method, segments),
        }
    }
}
