//! The message: what source applications send, what the stream holds, and the rules a message
//! must follow before it is accepted.
//!
//! - [`SyncRequest`]: the body of `POST /stream/sync`, compatible with Oracle's sample.
//! - [`StreamMessage`]: the sample's `streamMessage` (target, operation, payload, headers, secret).
//! - [`Payload`]: `targetRestApiPayload` kept as the JSON text the source sent, so the target gets
//!   the same keys in the same order and the same numbers.
//! - [`Envelope`]: what datasync writes to the streams: the `streamMessage` fields plus our
//!   metadata (`id`, `receivedAt`, `source`, `attempt`, `firstFailedAt`, `lastError`,
//!   `notBefore`, `traceparent`, `sealedToken`). A bare sample `streamMessage` decodes as an envelope without
//!   metadata, so error streams written by the Java sample can be replayed.
//! - [`RoutedRequest`]: the routed form of a sync request (issue 21), `{"route", "data"}`,
//!   read by [`read_routed_request`]; the envelope then carries `route` and `data` instead of
//!   the target fields.
//! - [`read_sync_request`]: one sync request read against that schema, each refusal naming
//!   its field; [`near_miss`] suggests the field a misspelt member meant.
//! - [`validate`]: every rule populate enforces, and process re-checks;
//!   [`validate_status_callback`]: the same rules for a request's `statusCallback`.
//! - [`AllowList`], [`Policy`]: the deployment's target rules; [`Invalid`]: a refusal naming
//!   the field.
//! - [`rfc3339`], [`parse_rfc3339`], traceparents and [`scoped_secret_name`]: the small formats
//!   the envelope carries.

mod allow_list;
mod envelope;
mod escape;
mod payload;
mod read;
mod rfc3339;
mod routed;
mod sealed;
mod secret_name;
mod stream_message;
mod suggest;
mod traceparent;
mod validate;

pub use allow_list::{AllowList, AllowListError};
pub use envelope::{derived_id, truncate_utf8, Envelope, LastError};
pub use payload::Payload;
pub use read::read_sync_request;
pub use rfc3339::{parse_rfc3339, rfc3339};
pub use routed::{is_routed, read_routed_request, RoutedRequest};
pub use sealed::{sealed_allowance, sealed_context, with_sealed_token, SealedToken, SEALED_FOR};
pub use secret_name::scoped_secret_name;
pub use stream_message::{HeaderPair, StreamMessage, SyncRequest};
pub use suggest::{fields_of, near_miss};
pub use traceparent::{is_valid_traceparent, new_traceparent};
pub use validate::{
    refuse_credential_headers, validate, validate_status_callback, Invalid, Policy,
    MAX_CALLBACK_URL, STATUS_CALLBACK_FIELD,
};

/// The most bytes one envelope may take on the stream (OCI's per-message limit).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most custom headers a message may carry.
pub const MAX_HEADERS: usize = 50;
/// The longest `vaultSecretName`.
pub const MAX_SECRET_NAME: usize = 100;
/// The longest `streamKey`, in bytes.
pub const MAX_STREAM_KEY: usize = 1024;
/// The longest `lastError.detail` kept.
pub const MAX_ERROR_DETAIL: usize = 512;

/// Fixtures the module's tests share.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    pub(crate) fn policy(list: &str) -> Policy {
        Policy {
            allow_list: AllowList::parse(list).unwrap(),
            allow_http: false,
        }
    }

    pub(crate) fn message() -> StreamMessage {
        serde_json::from_str(
            &serde_json::json!({
                "vaultSecretName": "789",
                "targetRestApi": "https://api.example.com/orders",
                "targetRestApiOperation": "post",
                "targetRestApiPayload": {"orderid": "18jan"},
                "targetRestApiHeaders": [{"key": "Content-Type", "value": "application/json"}]
            })
            .to_string(),
        )
        .unwrap()
    }
}
