//! The sample's message types: [`SyncRequest`] (the body of `POST /stream/sync`),
//! [`StreamMessage`] and [`HeaderPair`]. Their serde form is the one schema of a sync request:
//! populate reads requests against it and the envelope holds its fields.

use serde::{Deserialize, Serialize};

use super::Payload;

/// One custom header for the target call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderPair {
    /// The header name.
    pub key: String,
    /// The header value.
    pub value: String,
}

/// The sample's `streamMessage`: where and how to deliver, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamMessage {
    /// Names the Vault secret holding the target's credential (sent as `Authorization`, or in
    /// `vault_secret_header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_secret_name: Option<String>,
    /// The header the Vault secret is sent in (`Authorization` when absent), for targets that
    /// take their credential elsewhere, e.g. `x-api-key`. Not in Oracle's sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_secret_header: Option<String>,
    /// The target URL (empty in a routed message's envelope, and then not written).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_rest_api: String,
    /// POST, PUT, PATCH or DELETE (empty in a routed message's envelope, and then not written).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target_rest_api_operation: String,
    /// The JSON body (none for DELETE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rest_api_payload: Option<Payload>,
    /// Extra headers for the target call.
    #[serde(default)]
    pub target_rest_api_headers: Vec<HeaderPair>,
}

/// The body of `POST /stream/sync`: one of these, or a JSON array of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// The stream key: messages with the same key are delivered in order.
    #[serde(default)]
    pub stream_key: Option<String>,
    /// The message.
    pub stream_message: StreamMessage,
    /// `statusCallback`: an https URL told the message's final outcome, signed as Standard
    /// Webhooks do (`docs/callbacks.md`). Checked at ingest like a target URL.
    #[serde(default)]
    pub status_callback: Option<String>,
}
