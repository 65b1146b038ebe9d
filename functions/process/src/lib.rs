//! The process function: Service Connector Hub hands it a batch of data-stream messages; it
//! delivers each to its target and routes every failure to an error stream by class.
//!
//! The handler is a library type so the local stack calls the very same code in-process:
//!
//! ```no_run
//! # async fn demo(config: fdk::Config, batch: bytes::Bytes) {
//! let process = process::Process::from_config(&config);
//! let answer = process.handle(&fdk::Context::for_test("call-1"), &batch).await;
//! assert!(answer.status == 200 || answer.status == 502);
//! # }
//! ```
//!
//! Answers (contracts/oci-platform.md sections A and C):
//! - 200 `{"delivered":N,"rerouted":{"<stream>":N,...},"deadLettered":N,"notified":bool}` when
//!   every message was delivered or durably written to an error stream;
//! - a status of 502 (the FDK's outer 502, which makes the connector deliver the batch again)
//!   with `{"code","message"}` when failures could not be written, or when the function is
//!   misconfigured (the message names the key). A redelivered batch carries the same
//!   `Idempotency-Key`s, so targets can drop what they already have.
#![warn(missing_docs)]

use std::borrow::Cow;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::deliver::{Deliverer, Item};
use datasync_core::function_config::Function;
use datasync_core::settings::ConfigError;
use fdk::{Context, Response};
use http::StatusCode;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tracing::Instrument as _;

/// The process function: the delivery engine, or the configuration error to answer with.
#[derive(Debug, Clone)]
pub struct Process {
    built: Result<Deliverer, ConfigError>,
}

/// One element of a connector batch (section C): `partition` and `offset` as strings or
/// numbers, `key` base64 or null, `value` base64. The strings borrow from the batch when they
/// hold no escapes, which base64 never needs: parsing copies nothing but the decoded values.
#[derive(Debug, Deserialize)]
struct ConnectorMessage<'a> {
    #[serde(default, borrow)]
    stream: Option<Text<'a>>,
    #[serde(default, borrow)]
    partition: Option<Scalar<'a>>,
    #[serde(default, borrow)]
    key: Option<Text<'a>>,
    #[serde(default, borrow)]
    value: Option<Text<'a>>,
    #[serde(default, borrow)]
    offset: Option<Scalar<'a>>,
}

/// A JSON string, borrowed from the input when it has no escapes.
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// `partition` or `offset`: a string, a number, or anything else (ignored).
#[derive(Debug)]
enum Scalar<'a> {
    Text(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::UInt(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Scalar<'_> {
    /// As text: a string as is, a number as JSON writes it.
    fn text(&self) -> Option<String> {
        match self {
            Scalar::Text(s) => Some(s.clone().into_owned()),
            Scalar::Int(n) => Some(n.to_string()),
            Scalar::UInt(n) => Some(n.to_string()),
            Scalar::Float(n) => serde_json::Number::from_f64(*n).map(|n| n.to_string()),
            Scalar::Other => None,
        }
    }

    /// As a whole number: a string holding one, or an integer that fits.
    fn offset(&self) -> Option<i64> {
        match self {
            Scalar::Text(s) => s.trim().parse().ok(),
            Scalar::Int(n) => Some(*n),
            Scalar::UInt(n) => i64::try_from(*n).ok(),
            Scalar::Float(_) | Scalar::Other => None,
        }
    }
}

impl ConnectorMessage<'_> {
    /// The item, its key and value base64-decoded (kept as they are when they are not base64).
    fn into_item(self, index: usize) -> Item {
        let b64 = base64::engine::general_purpose::STANDARD;
        let stream = self.stream.map(|s| s.0).unwrap_or_default();
        let partition = self
            .partition
            .as_ref()
            .and_then(Scalar::text)
            .unwrap_or_else(|| "0".to_owned());
        let offset = self
            .offset
            .as_ref()
            .and_then(Scalar::offset)
            .unwrap_or(-(index as i64) - 1);
        let key = self.key.map(|Text(k)| {
            Bytes::from(
                b64.decode(k.as_bytes())
                    .unwrap_or_else(|_| k.into_owned().into_bytes()),
            )
        });
        let value = self.value.map(|v| v.0).unwrap_or_default();
        let value = match b64.decode(value.as_bytes()) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::from(value.into_owned().into_bytes()),
        };
        Item::decode(&stream, &partition, offset, key, value)
    }
}

/// Reads a batch element by element, decoding each as it goes, so no element's text is held
/// longer than its own decoding.
struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Vec<Item>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of connector messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Item>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(10_000));
        while let Some(message) = seq.next_element::<ConnectorMessage<'de>>()? {
            let index = items.len();
            items.push(message.into_item(index));
        }
        Ok(items)
    }
}

/// Turns a connector batch into items. A body that is not a JSON array of messages becomes a
/// single undecodable item (dead-lettered, readable), so nothing is silently dropped; an
/// element whose value is not base64 becomes an undecodable item with its text.
pub fn parse_batch(body: &[u8]) -> Vec<Item> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_seq(BatchVisitor)
        .and_then(|items| de.end().map(|()| items));
    match parsed {
        Ok(items) => items,
        Err(_) => vec![Item::decode(
            "connector-batch",
            "0",
            0,
            None,
            Bytes::copy_from_slice(body),
        )],
    }
}

fn misconfigured(e: &ConfigError) -> Response {
    Response::error(
        StatusCode::BAD_GATEWAY,
        "FunctionMisconfigured",
        &e.to_string(),
    )
}

impl Process {
    /// Builds the function from its configuration. A missing or invalid key is logged once
    /// here and answered on every call.
    pub fn from_config(config: &fdk::Config) -> Self {
        let built = Deliverer::from_lookup(Function::Process, |k| config.get(k).map(str::to_owned));
        if let Err(e) = &built {
            tracing::error!(key = %e.key, problem = %e.problem, "process is misconfigured");
        }
        Self { built }
    }

    /// The function around an engine built elsewhere (the local stack, tests).
    pub fn new(deliverer: Deliverer) -> Self {
        Self {
            built: Ok(deliverer),
        }
    }

    /// The engine, when the configuration is valid.
    pub fn deliverer(&self) -> Option<&Deliverer> {
        self.built.as_ref().ok()
    }

    /// Handles one connector batch.
    pub async fn handle(&self, ctx: &Context, body: &[u8]) -> Response {
        let deliverer = match &self.built {
            Ok(d) => d,
            Err(e) => return misconfigured(e),
        };
        let items = parse_batch(body);
        let span = tracing::info_span!("process", call_id = %ctx.call_id);
        Self::deliver(deliverer, ctx, items).instrument(span).await
    }

    /// [`handle`](Self::handle), taking the batch and freeing it as soon as it is parsed:
    /// the binary's path, where a 6 MB batch is then not held while it is delivered.
    pub async fn handle_owned(&self, ctx: &Context, body: Bytes) -> Response {
        let deliverer = match &self.built {
            Ok(d) => d,
            Err(e) => return misconfigured(e),
        };
        let items = parse_batch(&body);
        drop(body);
        let span = tracing::info_span!("process", call_id = %ctx.call_id);
        Self::deliver(deliverer, ctx, items).instrument(span).await
    }

    async fn deliver(deliverer: &Deliverer, ctx: &Context, items: Vec<Item>) -> Response {
        let source = items.first().map(|i| i.stream.clone()).unwrap_or_default();
        let deadline = Instant::now() + ctx.remaining();
        let count = items.len();
        let outcomes = deliverer.deliver(items, deadline).await;
        match deliverer.route(&outcomes, &source).await {
            Ok(report) => {
                tracing::info!(
                    messages = count,
                    delivered = report.delivered,
                    dead_lettered = report.dead_lettered,
                    "batch handled"
                );
                let answer = serde_json::json!({
                    "delivered": report.delivered,
                    "rerouted": report.rerouted,
                    "deadLettered": report.dead_lettered,
                    "notified": report.notified,
                });
                Response::json(&answer).unwrap_or_else(|_| Response::new("{}"))
            }
            Err(e) => {
                tracing::error!(error = %e, messages = count, "failures could not be re-routed; the batch will be redelivered");
                Response::error(StatusCode::BAD_GATEWAY, "RoutingFailed", &e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use datasync_core::deliver::Body;

    #[test]
    fn batches_accept_strings_or_numbers_and_null_keys() {
        let value = base64::engine::general_purpose::STANDARD
            .encode(br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST"}"#);
        let body = format!(
            r#"[{{"stream":"s","partition":"0","key":null,"value":"{value}","offset":"9007199254740993","timestamp":"2018-04-26T01:03:06.051Z"}},
               {{"stream":"s","partition":1,"key":"azE=","value":"{value}","offset":4}},
               {{"stream":"s","partition":"0","key":null,"value":"not base64 !","offset":5}}]"#
        );
        let items = parse_batch(body.as_bytes());
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].offset, 9_007_199_254_740_993);
        assert!(items[0].key.is_none());
        assert_eq!(items[1].partition, "1");
        assert_eq!(items[1].key.as_deref(), Some(&b"k1"[..]));
        assert!(matches!(items[0].body, Body::Envelope(_)));
        assert!(
            matches!(&items[2].body, Body::Undecodable { raw, .. } if &raw[..] == b"not base64 !")
        );
        let junk = parse_batch(b"{\"not\":\"an array\"}");
        assert_eq!(junk.len(), 1);
        assert!(matches!(junk[0].body, Body::Undecodable { .. }));
    }
}
