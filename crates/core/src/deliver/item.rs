//! The first stage: a stream value becomes an [`Item`], an envelope (whole, or with its
//! payload kept encoded until its call starts) or a value that is not a datasync message.

use std::borrow::Cow;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::{derived_id, parse_rfc3339, Envelope, LastError, Payload};

/// One message of a batch, as read from a stream.
#[derive(Debug, Clone)]
pub struct Item {
    /// The stream it was read from (the connector gives the name, retry the OCID).
    pub stream: String,
    /// Its partition.
    pub partition: String,
    /// Its offset.
    pub offset: i64,
    /// Its key (decoded bytes), kept when it is re-routed.
    pub key: Option<Bytes>,
    /// The message, or why it could not be read.
    pub body: Body,
    /// The message id: the envelope's, or one derived from stream/partition/offset for a bare
    /// sample message ([`derived_id`]), so a redelivered batch yields the same
    /// `Idempotency-Key`.
    pub id: String,
    /// When the stream appended it (the connector's `timestamp`, GetMessages' `timestamp`),
    /// when known: the batch's age is measured from its oldest message.
    pub appended_at: Option<SystemTime>,
}

/// A stream value, decoded or not.
#[derive(Debug, Clone)]
pub enum Body {
    /// An envelope (or a bare sample `streamMessage`).
    Envelope(Box<Envelope>),
    /// An envelope whose payload is kept encoded ([`Item::decode_lazily`]): `envelope` holds
    /// everything but the payload, which is read from `base64` when the message is sent or
    /// re-routed.
    Encoded {
        /// The envelope without its payload.
        envelope: Box<Envelope>,
        /// The value as the stream transport carries it: base64 of the whole envelope's JSON.
        base64: Bytes,
    },
    /// Not a datasync message.
    Undecodable {
        /// The value's bytes (already base64-decoded).
        raw: Bytes,
        /// Where the JSON failed (position and category; never the content).
        error: String,
        /// The original value, when `raw` is already an undecodable record written by a
        /// previous run (so it is not wrapped twice).
        record: Option<Box<UndecodableRecord>>,
    },
}

/// What the dead-letter stream holds for a value that is not a datasync message: the value
/// readable by a person (UTF-8 text as is, anything else base64), never the base64 of the
/// stream transport (the sample's bug 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UndecodableRecord {
    /// The value: text when it is UTF-8, else base64.
    pub undecodable: String,
    /// `utf8` or `base64`.
    pub encoding: String,
    /// Where it was first read: `<stream>/<partition>/<offset>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Why it was dead-lettered.
    pub last_error: LastError,
}

impl Item {
    /// An item from a stream value (`value` and `key` already base64-decoded).
    pub fn decode(
        stream: &str,
        partition: &str,
        offset: i64,
        key: Option<Bytes>,
        value: Bytes,
    ) -> Self {
        let (body, id) = match Envelope::decode(&value) {
            Ok(envelope) => {
                let id = envelope
                    .id
                    .clone()
                    .unwrap_or_else(|| derived_id(stream, partition, offset));
                (Body::Envelope(Box::new(envelope)), id)
            }
            Err(e) => {
                let record = serde_json::from_slice::<UndecodableRecord>(&value)
                    .ok()
                    .map(Box::new);
                let body = Body::Undecodable {
                    raw: value,
                    error: format!(
                        "not a datasync message ({:?} error at line {} column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    ),
                    record,
                };
                (body, derived_id(stream, partition, offset))
            }
        };
        Self {
            stream: stream.to_owned(),
            partition: partition.to_owned(),
            offset,
            key,
            body,
            id,
            appended_at: None,
        }
    }

    /// The same item, appended to its stream at `at` (RFC 3339; ignored when malformed).
    pub fn appended(mut self, at: Option<&str>) -> Self {
        self.appended_at = at.and_then(parse_rfc3339);
        self
    }

    /// The target's `host[:port]` (lower case, the port when the URL names one), as the
    /// metrics' `targetHost` dimension; `None` when the value is not a message or its URL
    /// does not parse.
    pub fn target_host(&self) -> Option<String> {
        let envelope = self.envelope()?;
        let url = url::Url::parse(&envelope.message.target_rest_api).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        Some(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    }

    /// An item from a stream value still in base64 (`key` already decoded), for a caller that
    /// holds the batch anyway (the process function): the value is decoded as
    /// [`Item::decode`] does, but an envelope's payload is then dropped and read again from
    /// `base64` (best a slice of the batch) when it is needed, so the payloads of a batch take
    /// no memory beyond the batch's own while they wait for delivery. A value that is not
    /// base64 is taken as it is.
    pub fn decode_lazily(
        stream: &str,
        partition: &str,
        offset: i64,
        key: Option<Bytes>,
        base64: Bytes,
    ) -> Self {
        let value = match base64::engine::general_purpose::STANDARD.decode(&base64) {
            Ok(value) => Bytes::from(value),
            Err(_) => return Self::decode(stream, partition, offset, key, base64),
        };
        let item = Self::decode(stream, partition, offset, key, value);
        match item.body {
            Body::Envelope(mut envelope) if envelope.message.target_rest_api_payload.is_some() => {
                envelope.message.target_rest_api_payload = None;
                Self {
                    body: Body::Encoded { envelope, base64 },
                    ..item
                }
            }
            body => Self { body, ..item },
        }
    }

    /// The envelope, when the value decoded: its target, key, attempts, class and route. For
    /// [`Body::Encoded`] its payload is absent (`targetRestApiPayload` is `None`): read
    /// [`Item::decoded`] for the whole envelope.
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.body {
            Body::Envelope(e) | Body::Encoded { envelope: e, .. } => Some(e),
            Body::Undecodable { .. } => None,
        }
    }

    /// The whole envelope, its payload read again when it is kept encoded.
    pub fn decoded(&self) -> Option<Cow<'_, Envelope>> {
        match &self.body {
            Body::Envelope(e) => Some(Cow::Borrowed(e)),
            Body::Encoded { envelope, base64 } => {
                let mut whole = (**envelope).clone();
                whole.message.target_rest_api_payload = payload_of(base64)?;
                Some(Cow::Owned(whole))
            }
            Body::Undecodable { .. } => None,
        }
    }

    /// Where it was read, as an undecodable record names it: `<stream>/<partition>/<offset>`.
    pub fn origin(&self) -> String {
        format!("{}/{}/{}", self.stream, self.partition, self.offset)
    }
}

/// The payload in a base64 envelope (`None` when it cannot be read; `Some(None)` when it has
/// none), without decoding the rest of it.
pub(super) fn payload_of(base64: &[u8]) -> Option<Option<Payload>> {
    #[derive(Deserialize)]
    struct PayloadOnly {
        #[serde(default, rename = "targetRestApiPayload")]
        payload: Option<Payload>,
    }
    let value = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .ok()?;
    serde_json::from_slice::<PayloadOnly>(&value)
        .ok()
        .map(|p| p.payload)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn bare(offset: i64) -> Item {
        Item::decode(
            "s",
            "0",
            offset,
            None,
            Bytes::from_static(
                br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST"}"#,
            ),
        )
    }

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(bare(1).id, bare(1).id);
        assert_ne!(bare(1).id, bare(2).id);
        let junk = Item::decode("s", "0", 3, None, Bytes::from_static(b"\xff\x00"));
        assert!(matches!(junk.body, Body::Undecodable { .. }));
        assert_eq!(junk.id, Item::decode("s", "0", 3, None, Bytes::new()).id);
        // A value that is not a message gets the id a bare message at its place would get.
        assert_eq!(junk.id, bare(3).id);
    }

    #[test]
    fn derived_ids_are_those_the_envelope_derives() {
        let item = bare(5);
        let envelope = item.envelope().unwrap();
        assert_eq!(item.id, envelope.id_or_derived("s", "0", 5));
        assert_eq!(derived_id("s", "0", 5), envelope.id_or_derived("s", "0", 5));
    }

    #[test]
    fn an_envelope_keeps_its_own_id() {
        let item = Item::decode(
            "s",
            "0",
            1,
            None,
            Bytes::from_static(
                br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","id":"0193a1b2-0000-7000-8000-000000000001"}"#,
            ),
        );
        assert_eq!(item.id, "0193a1b2-0000-7000-8000-000000000001");
    }

    #[test]
    fn a_lazily_decoded_item_answers_for_its_envelope_and_reads_its_payload_again() {
        // As the process function holds a message: its payload kept encoded until the call.
        use base64::Engine as _;
        let value = br#"{"targetRestApi":"https://a.example/o","targetRestApiOperation":"POST","targetRestApiPayload":{"n":1},"attempt":2}"#;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let item = Item::decode_lazily("s", "0", 7, None, Bytes::from(encoded));
        assert!(matches!(item.body, Body::Encoded { .. }));
        // The attempt count (trace lines, parkOnPermanent) needs no payload.
        let envelope = item.envelope().unwrap();
        assert_eq!(envelope.attempt, 2);
        assert_eq!(envelope.message.target_rest_api_payload, None);
        let whole = item.decoded().unwrap();
        assert_eq!(
            whole
                .message
                .target_rest_api_payload
                .as_ref()
                .map(|p| p.get()),
            Some(r#"{"n":1}"#)
        );
    }
}
