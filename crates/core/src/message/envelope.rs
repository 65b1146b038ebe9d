//! [`Envelope`]: what datasync writes to its streams, the [`StreamMessage`] fields plus our
//! metadata, and [`LastError`], why its last attempt failed.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{
    parse_rfc3339, rfc3339, HeaderPair, Payload, SealedToken, StreamMessage, MAX_ERROR_DETAIL,
};
use crate::classify::ErrorClass;

/// short, sanitised detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// The class, e.g. `serviceUnavailable`.
    pub class: ErrorClass,
    /// The target's HTTP status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// A short explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What datasync writes to its streams.
///
/// Read through [`EnvelopeFields`]: serde's `flatten` buffers a value before handing it on,
/// which a [`Payload`] (raw JSON text) cannot survive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "EnvelopeFields")]
pub struct Envelope {
    /// The message itself, its fields at the top level (as the sample wrote it).
    #[serde(flatten)]
    pub message: StreamMessage,
    /// The message id (UUID v7), sent to the target as `Idempotency-Key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When populate accepted it, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<String>,
    /// The authenticated caller, as the gateway named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempt: u32,
    /// When the first attempt failed, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// The earliest next attempt, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// The W3C trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The caller's token, sealed with the vault's key (populate); sent in place of the secret
    /// `vaultSecretName` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_token: Option<SealedToken>,
    /// `statusCallback`: the URL told the final outcome (`crate::callback`), checked at ingest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<String>,
    /// The route a routed message names (issue 21); its target fields are then empty and the
    /// route decides the call at delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// A routed message's data, as sent (compacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Payload>,
}

/// An [`Envelope`] as it is read: the [`StreamMessage`] fields and the metadata side by side.
/// Its fields and their attributes are those of the two structs, which the round-trip tests hold
/// to.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EnvelopeFields {
    #[serde(default)]
    vault_secret_name: Option<String>,
    #[serde(default)]
    vault_secret_header: Option<String>,
    #[serde(default)]
    target_rest_api: String,
    #[serde(default)]
    target_rest_api_operation: String,
    #[serde(default)]
    target_rest_api_payload: Option<Payload>,
    #[serde(default)]
    target_rest_api_headers: Vec<HeaderPair>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    first_failed_at: Option<String>,
    #[serde(default)]
    last_error: Option<LastError>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(default)]
    sealed_token: Option<SealedToken>,
    #[serde(default)]
    status_callback: Option<String>,
    route: Option<String>,
    #[serde(default)]
    data: Option<Payload>,
}

impl TryFrom<EnvelopeFields> for Envelope {
    type Error = &'static str;

    /// A message names its target (sample form) or a route (routed form).
    fn try_from(f: EnvelopeFields) -> Result<Self, Self::Error> {
        if f.route.is_none()
            && (f.target_rest_api.is_empty() || f.target_rest_api_operation.is_empty())
        {
            return Err("missing field `targetRestApi` or `targetRestApiOperation` (or `route`)");
        }
        Ok(Self {
            message: StreamMessage {
                vault_secret_name: f.vault_secret_name,
                vault_secret_header: f.vault_secret_header,
                target_rest_api: f.target_rest_api,
                target_rest_api_operation: f.target_rest_api_operation,
                target_rest_api_payload: f.target_rest_api_payload,
                target_rest_api_headers: f.target_rest_api_headers,
            },
            id: f.id,
            received_at: f.received_at,
            source: f.source,
            attempt: f.attempt,
            first_failed_at: f.first_failed_at,
            last_error: f.last_error,
            not_before: f.not_before,
            traceparent: f.traceparent,
            sealed_token: f.sealed_token,
            status_callback: f.status_callback,
            route: f.route,
            data: f.data,
        })
    }
}

impl Envelope {
    /// A new envelope for an accepted message.
    pub fn new(
        message: StreamMessage,
        source: String,
        now: SystemTime,
        traceparent: String,
    ) -> Self {
        Self {
            message,
            id: Some(uuid::Uuid::now_v7().to_string()),
            received_at: Some(rfc3339(now)),
            source: Some(source),
            attempt: 0,
            first_failed_at: None,
            last_error: None,
            not_before: None,
            traceparent: Some(traceparent),
            sealed_token: None,
            status_callback: None,
            route: None,
            data: None,
        }
    }

    /// A new envelope for an accepted routed message: `route` and `data` as sent, no target
    /// fields (the route decides them at delivery).
    pub fn routed(
        route: String,
        data: Payload,
        source: String,
        now: SystemTime,
        traceparent: String,
    ) -> Self {
        let empty = StreamMessage {
            vault_secret_name: None,
            vault_secret_header: None,
            target_rest_api: String::new(),
            target_rest_api_operation: String::new(),
            target_rest_api_payload: None,
            target_rest_api_headers: Vec::new(),
        };
        Self {
            route: Some(route),
            data: Some(data),
            ..Self::new(empty, source, now, traceparent)
        }
    }

    /// Decodes a stream value: an envelope, or a bare sample `streamMessage`.
    ///
    /// # Errors
    /// The JSON error when the value is not a JSON object with the required fields.
    pub fn decode(value: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(value)
    }

    /// The envelope as compact JSON.
    ///
    /// # Errors
    /// Never in practice: every field is text, a number or a [`Payload`] already JSON.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// The id, or for a bare sample message (which has none) one derived from where it was
    /// read, so a redelivered batch produces the same `Idempotency-Key`.
    pub fn id_or_derived(&self, stream: &str, partition: &str, offset: i64) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => derived_id(stream, partition, offset),
        }
    }

    /// `receivedAt` as a time.
    pub fn received_at(&self) -> Option<SystemTime> {
        self.received_at.as_deref().and_then(parse_rfc3339)
    }

    /// `firstFailedAt` as a time.
    pub fn first_failed_at(&self) -> Option<SystemTime> {
        self.first_failed_at.as_deref().and_then(parse_rfc3339)
    }

    /// `notBefore` as a time.
    pub fn not_before(&self) -> Option<SystemTime> {
        self.not_before.as_deref().and_then(parse_rfc3339)
    }

    /// Records a failed attempt: bumps `attempt` (unless the message was not tried, as on a
    /// deadline re-route), sets `firstFailedAt` once, `lastError`, and `notBefore`.
    pub fn record_failure(
        &mut self,
        error: LastError,
        tried: bool,
        now: SystemTime,
        not_before: Option<SystemTime>,
    ) {
        if tried {
            self.attempt = self.attempt.saturating_add(1);
        }
        if self.first_failed_at.is_none() {
            self.first_failed_at = Some(rfc3339(now));
        }
        let mut error = error;
        if let Some(detail) = &mut error.detail {
            truncate_utf8(detail, MAX_ERROR_DETAIL);
        }
        self.last_error = Some(error);
        self.not_before = not_before.map(rfc3339);
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// The id of a message that carries none (a bare sample message, or a value that is not a
/// datasync message): a UUID from the SHA-256 of `<stream>/<partition>/<offset>`, the same
/// every time the same position is read (what [`Envelope::id_or_derived`] gives
/// for a message without an id).
pub fn derived_id(stream: &str, partition: &str, offset: i64) -> String {
    let digest = Sha256::digest(format!("{stream}/{partition}/{offset}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;
    use crate::message::new_traceparent;
    use crate::message::test_support::message;

    #[test]
    fn envelopes_round_trip_and_bare_sample_messages_decode() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        let env = Envelope::new(message(), "caller-a".into(), now, new_traceparent());
        let bytes = env.encode().unwrap();
        let back = Envelope::decode(&bytes).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.received_at(), Some(now));
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(r#""targetRestApi":"https://api.example.com/orders""#),
            "{text}"
        );
        assert!(text.contains(r#""attempt":0"#));

        let bare = br#"{"vaultSecretName":"789","targetRestApi":"https://a/b","targetRestApiOperation":"PUT","targetRestApiHeaders":[]}"#;
        let env = Envelope::decode(bare).unwrap();
        assert_eq!(env.id, None);
        let a = env.id_or_derived("s", "0", 5);
        assert_eq!(a, env.id_or_derived("s", "0", 5));
        assert_ne!(a, env.id_or_derived("s", "0", 6));
        assert!(Envelope::decode(b"\"text\"").is_err());
    }

    #[test]
    fn every_field_survives_a_round_trip_and_the_payload_keeps_its_text() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut m = message();
        m.vault_secret_header = Some("x-api-key".into());
        let payload = r#"{"z":[1.10,-0,1E2,123456789012345678901234567890],"a":"\u00e9","a":null}"#;
        m.target_rest_api_payload = Some(Payload::from_json(payload).unwrap());
        let mut env = Envelope::new(m, "c".into(), now, new_traceparent());
        env.status_callback = Some("https://app.example.com/cb".into());
        let error = LastError {
            class: ErrorClass::ServiceUnavailable,
            status: Some(503),
            detail: Some("busy".into()),
        };
        env.record_failure(error, true, now, Some(now + Duration::from_secs(10)));
        let text = String::from_utf8(env.encode().unwrap()).unwrap();
        assert!(text.contains(payload), "{text}");
        let back = Envelope::decode(text.as_bytes()).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.attempt, 1);
        assert!(
            text.contains(r#""statusCallback":"https://app.example.com/cb""#),
            "{text}"
        );
        assert!(back.last_error.is_some() && back.not_before.is_some());
        assert_eq!(
            back.message.vault_secret_header.as_deref(),
            Some("x-api-key")
        );
        // A sample message's null payload is none.
        let bare = br#"{"targetRestApi":"https://a/b","targetRestApiOperation":"PUT","targetRestApiPayload":null}"#;
        assert_eq!(
            Envelope::decode(bare)
                .unwrap()
                .message
                .target_rest_api_payload,
            None
        );
    }

    #[test]
    fn routed_envelopes_round_trip_without_target_fields() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let data = Payload::from_json(r#"{"orderId": 7, "total": 12.5}"#).unwrap();
        let env = Envelope::routed("orders".into(), data, "c".into(), now, new_traceparent());
        let text = String::from_utf8(env.encode().unwrap()).unwrap();
        assert!(!text.contains("targetRestApi\""), "{text}");
        assert!(!text.contains("targetRestApiOperation"), "{text}");
        assert!(
            text.ends_with(r#""route":"orders","data":{"orderId":7,"total":12.5}}"#),
            "{text}"
        );
        let back = Envelope::decode(text.as_bytes()).unwrap();
        assert_eq!(back, env);
        // Neither a target nor a route: not a datasync message.
        assert!(Envelope::decode(br#"{"id":"x","attempt":0}"#).is_err());
        assert!(Envelope::decode(br#"{"targetRestApi":"https://a/b"}"#).is_err());
    }

    #[test]
    fn failures_are_recorded_without_growing_unbounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut env = Envelope::new(message(), "c".into(), now, new_traceparent());
        let err = LastError {
            class: ErrorClass::ServiceUnavailable,
            status: Some(503),
            detail: Some("é".repeat(400)),
        };
        env.record_failure(err.clone(), true, now, Some(now + Duration::from_secs(10)));
        env.record_failure(err, false, now + Duration::from_secs(20), None);
        assert_eq!(env.attempt, 1);
        assert_eq!(env.first_failed_at(), Some(now));
        assert_eq!(env.not_before(), None);
        assert!(env.last_error.unwrap().detail.unwrap().len() <= MAX_ERROR_DETAIL);
    }
}
