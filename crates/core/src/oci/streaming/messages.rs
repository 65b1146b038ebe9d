//! The messages of the Streaming API as callers see them: what to put ([`PutMessage`]), what
//! became of it ([`StoredMessage`], [`FailedMessage`]), where a cursor starts
//! ([`CursorStart`]), and the key and value of a received message, decoded.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;

use crate::oci::client::OciError;
use crate::oci::models::{CreateCursorDetails, CursorType, Message};

/// One message to put: raw bytes, base64-encoded on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct PutMessage {
    /// The key; messages with the same key go to the same partition. `None` lets the service
    /// pick a partition.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Bytes,
}

impl PutMessage {
    /// A message with an optional key (`None`: the service picks the partition).
    pub fn new(key: Option<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key,
            value: value.into(),
        }
    }

    /// A message with `key`.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            value: value.into(),
        }
    }

    /// The size the service counts against its limits: key + value, decoded.
    pub fn decoded_len(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len) + self.value.len()
    }
}

impl fmt::Debug for PutMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads can be large and hold customer data: sizes only.
        f.debug_struct("PutMessage")
            .field("key_len", &self.key.as_ref().map(Bytes::len))
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// Where a message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The partition the service chose.
    pub partition: String,
    /// The offset in that partition.
    pub offset: i64,
    /// When the stream stored it (RFC 3339), when the service said.
    pub timestamp: Option<String>,
}

/// Why a message was not stored, after the retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMessage {
    /// The entry's error code (e.g. `TooManyRequests`), or the request's error code when the
    /// whole request failed.
    pub code: String,
    /// The service's message.
    pub message: String,
    /// The HTTP status, when the whole request failed with one.
    pub status: Option<u16>,
    /// How many times this message was sent.
    pub attempts: u32,
}

/// The outcome of one message of [`StreamClient::put_messages`](super::StreamClient::put_messages).
pub type PutOutcome = Result<StoredMessage, FailedMessage>;

/// Where a partition cursor starts (CreateCursor's five types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorStart {
    /// `AT_OFFSET`: at this offset.
    AtOffset(i64),
    /// `AFTER_OFFSET`: just after this offset.
    AfterOffset(i64),
    /// `AT_TIME`: at the first message at or after this RFC 3339 time.
    AtTime(String),
    /// `LATEST`: after the last message now in the partition.
    Latest,
    /// `TRIM_HORIZON`: at the oldest message retained.
    TrimHorizon,
}

impl CursorStart {
    /// The CreateCursor body for `partition`.
    pub fn details(&self, partition: &str) -> CreateCursorDetails {
        let (cursor_type, offset, time) = match self {
            CursorStart::AtOffset(o) => (CursorType::AtOffset, Some(*o), None),
            CursorStart::AfterOffset(o) => (CursorType::AfterOffset, Some(*o), None),
            CursorStart::AtTime(t) => (CursorType::AtTime, None, Some(t.clone())),
            CursorStart::Latest => (CursorType::Latest, None, None),
            CursorStart::TrimHorizon => (CursorType::TrimHorizon, None, None),
        };
        CreateCursorDetails {
            partition: partition.to_owned(),
            cursor_type,
            offset,
            time,
        }
    }
}

/// The key of a received message, decoded.
///
/// # Errors
/// [`OciError::Decode`] when it is not base64.
pub fn message_key(message: &Message) -> Result<Option<Vec<u8>>, OciError> {
    message
        .key
        .as_deref()
        .map(|k| decode_b64("GetMessages", "key", k))
        .transpose()
}

/// The value of a received message, decoded.
///
/// # Errors
/// [`OciError::Decode`] when it is not base64.
pub fn message_value(message: &Message) -> Result<Vec<u8>, OciError> {
    decode_b64("GetMessages", "value", &message.value)
}

fn decode_b64(operation: &'static str, what: &str, text: &str) -> Result<Vec<u8>, OciError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| OciError::Decode {
            operation,
            detail: format!("{what} is not base64: {e}"),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn cursor_starts_fill_the_right_fields() {
        let d = CursorStart::AtOffset(7).details("2");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"partition":"2","type":"AT_OFFSET","offset":7}"#
        );
        let d = CursorStart::AtTime("2024-01-01T00:00:00Z".into()).details("0");
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"partition":"0","type":"AT_TIME","time":"2024-01-01T00:00:00Z"}"#
        );
    }
}
