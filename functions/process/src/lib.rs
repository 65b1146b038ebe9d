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
//! - 200 `{"delivered":N,"rerouted":{"<stream>":N,...},"deadLettered":N,"notified":bool,
//!   "notifications":{"published","publishFailures","heldBack","unannounced"},"hosts":[...],
//!   "callbacks":{"sent","failed","queued","abandoned"}}`
//!   when every message was delivered or durably written to an error stream (`notifications`:
//!   this instance's counts so far, so a Notifications outage shows in every answer and log
//!   line; `hosts`: every target host this instance called, `docs/isolation.md`; `metrics`:
//!   this instance's PostMetricData calls and failures, when metrics are posted,
//!   `docs/metrics.md`; `callbacks`: this instance's delivery callbacks sent and given up,
//!   `docs/callbacks.md`);
//! - a status of 502 (the FDK's outer 502, which makes the connector deliver the batch again)
//!   with `{"code","message"}` when failures could not be written, or when the function is
//!   misconfigured (the message names the key). A redelivered batch carries the same
//!   `Idempotency-Key`s, so targets can drop what they already have.
#![warn(missing_docs)]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::callback::CallbackCounts;
use datasync_core::deliver::{Deliverer, HostHealth, Item, NotifyCounts, RouteReport};
use datasync_core::function_config::Function;
use datasync_core::metrics::PublishCounts;
use datasync_core::route_counts::RouteTally;
use datasync_core::settings::ConfigError;
use fdk::{Context, Response};
use http::StatusCode;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use tracing::Instrument as _;

/// The process function: the delivery engine, or the configuration error to answer with.
#[derive(Debug, Clone)]
pub struct Process {
    built: Result<Deliverer, Arc<ConfigError>>,
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
    /// When the stream appended it (RFC 3339): the batch's age is measured from the oldest.
    #[serde(default, borrow)]
    timestamp: Option<Text<'a>>,
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
    /// The item: its key base64-decoded (kept as it is when it is not base64), its value kept
    /// as a slice of `batch` ([`Item::decode_lazily`]).
    fn into_item(self, index: usize, batch: &Bytes) -> Item {
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
        let value = match self.value.map(|v| v.0) {
            Some(Cow::Borrowed(text)) => slice_of(batch, text),
            Some(Cow::Owned(text)) => Bytes::from(text.into_bytes()),
            None => Bytes::new(),
        };
        Item::decode_lazily(&stream, &partition, offset, key, value)
            .appended(self.timestamp.as_ref().map(|t| t.0.as_ref()))
    }
}

/// `part` as a slice of `batch` when it lies inside it (a string borrowed from it), else a copy.
fn slice_of(batch: &Bytes, part: &str) -> Bytes {
    let start = (part.as_ptr() as usize).wrapping_sub(batch.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= batch.len() => batch.slice(start..end),
        _ => Bytes::copy_from_slice(part.as_bytes()),
    }
}

/// Reads a batch element by element, so no element's text is copied or held decoded.
struct BatchVisitor<'b> {
    batch: &'b Bytes,
}

impl<'de> Visitor<'de> for BatchVisitor<'_> {
    type Value = Vec<Item>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of connector messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Item>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(10_000));
        while let Some(message) = seq.next_element::<ConnectorMessage<'de>>()? {
            let index = items.len();
            items.push(message.into_item(index, self.batch));
        }
        Ok(items)
    }
}

/// Turns a connector batch into items. A body that is not a JSON array of messages becomes a
/// single undecodable item (dead-lettered, readable), so nothing is silently dropped; an
/// element whose value is not base64 becomes an undecodable item with its text.
///
/// Envelopes are decoded once here (to sort out what cannot be delivered and to learn the
/// ids) and then kept as slices of `body` ([`Item::decode_lazily`]): holding `body` is then
/// all the memory a batch takes while it waits for delivery.
pub fn parse_batch(body: &Bytes) -> Vec<Item> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_seq(BatchVisitor { batch: body })
        .and_then(|items| de.end().map(|()| items));
    match parsed {
        Ok(items) => items,
        Err(_) => vec![Item::decode("connector-batch", "0", 0, None, body.clone())],
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
        let built = Deliverer::from_lookup(Function::Process, |k| config.get(k).map(str::to_owned))
            .map_err(Arc::new);
        if let Err(e) = &built {
            tracing::error!(key = e.key(), error = %e, "process is misconfigured");
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

    /// Handles one connector batch (copied once: see [`handle_owned`](Self::handle_owned)).
    pub async fn handle(&self, ctx: &Context, body: &[u8]) -> Response {
        self.handle_owned(ctx, Bytes::copy_from_slice(body)).await
    }

    /// Handles one connector batch, holding it (the messages are slices of it) until the
    /// failures are written.
    pub async fn handle_owned(&self, ctx: &Context, body: Bytes) -> Response {
        let deliverer = match &self.built {
            Ok(d) => d,
            Err(e) => return misconfigured(e),
        };
        let items = parse_batch(&body);
        let span = tracing::info_span!("process", call_id = %ctx.call_id);
        Self::deliver(deliverer, ctx, items).instrument(span).await
    }

    async fn deliver(deliverer: &Deliverer, ctx: &Context, items: Vec<Item>) -> Response {
        let source = items.first().map(|i| i.stream.clone()).unwrap_or_default();
        let deadline = Instant::now() + ctx.remaining();
        let count = items.len();
        let outcomes = deliverer.deliver(items, deadline).await;
        let routed = deliverer.route(&outcomes, &source).await;
        // The answer is decided: the invocation's metrics go now, within their own timeout.
        deliverer.publish_metrics().await;
        match routed {
            Ok(report) => {
                // After the failures are stored: a callback reports a fate already kept.
                let callbacks = deliverer.send_callbacks(&outcomes, deadline).await;
                tracing::info!(
                    messages = count,
                    delivered = report.delivered,
                    dead_lettered = report.dead_lettered,
                    callbacks_sent = callbacks.sent,
                    callbacks_failed = callbacks.failed,
                    notify_failures = report.notifications.publish_failures,
                    notifications_held_back = report.notifications.held_back,
                    "batch handled"
                );
                let mut answer = Answer::from(&report);
                answer.hosts = deliverer.hosts();
                answer.metrics = deliverer
                    .publisher()
                    .is_enabled()
                    .then(|| deliverer.publisher().counts());
                answer.callbacks = deliverer.callbacks().totals();
                answer.routes = outcomes.route_tallies();
                Response::json(&answer).unwrap_or_else(|_| Response::new("{}"))
            }
            Err(e) => {
                tracing::error!(error = %e, messages = count, "failures could not be re-routed; the batch will be redelivered");
                Response::error(StatusCode::BAD_GATEWAY, "RoutingFailed", &e.to_string())
            }
        }
    }
}

/// The answer to a batch that was delivered or durably re-routed: the route report's counts.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    /// Messages the target accepted.
    delivered: usize,
    /// Messages written, per destination stream.
    rerouted: &'a BTreeMap<String, usize>,
    /// Messages that failed permanently.
    dead_lettered: usize,
    /// Whether the dead-letter summary was published (`null`: nothing to announce).
    notified: Option<bool>,
    /// This instance's notifications so far: published, publish failures, held back by the
    /// rate limit, dead letters not yet announced.
    notifications: NotifyCounts,
    /// Every target host this instance called: breaker state, adaptive concurrency, pause
    /// (`docs/isolation.md`; the local stack shows them on its status page).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hosts: Vec<HostHealth>,
    /// This instance's PostMetricData calls and their failures, when metrics are posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics: Option<PublishCounts>,
    /// This instance's delivery callbacks so far: sent, given up (`docs/callbacks.md`).
    callbacks: CallbackCounts,
    /// Per route, this call's routed messages delivered and failed (`docs/routes.md`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RouteTally>,
}

impl<'a> From<&'a RouteReport> for Answer<'a> {
    fn from(report: &'a RouteReport) -> Self {
        Self {
            delivered: report.delivered,
            rerouted: &report.rerouted,
            dead_lettered: report.dead_lettered,
            notified: report.notified,
            notifications: report.notifications,
            hosts: Vec::new(),
            metrics: None,
            callbacks: CallbackCounts::default(),
            routes: Vec::new(),
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
        let items = parse_batch(&Bytes::from(body));
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].offset, 9_007_199_254_740_993);
        assert!(items[0].key.is_none());
        assert_eq!(items[1].partition, "1");
        assert_eq!(items[1].key.as_deref(), Some(&b"k1"[..]));
        assert!(matches!(items[0].body, Body::Envelope(_)));
        assert!(
            matches!(&items[2].body, Body::Undecodable { raw, .. } if &raw[..] == b"not base64 !")
        );
        let junk = parse_batch(&Bytes::from_static(b"{\"not\":\"an array\"}"));
        assert_eq!(junk.len(), 1);
        assert!(matches!(junk[0].body, Body::Undecodable { .. }));
    }

    #[test]
    fn payloads_stay_in_the_batch_until_they_are_sent() {
        let envelope = br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","targetRestApiPayload":{"b":[1,2.5,"\u00e9"],"a":null},"id":"0193a1b2-0000-7000-8000-000000000001"}"#;
        let value = base64::engine::general_purpose::STANDARD.encode(envelope);
        // The second copy escapes a character, as some JSON writers do: it cannot be borrowed.
        let escaped = format!("\\u{:04x}{}", u32::from(value.as_bytes()[0]), &value[1..]);
        let body = Bytes::from(format!(
            r#"[{{"stream":"s","partition":"0","value":"{value}","offset":1}},
               {{"stream":"s","partition":"0","value":"{escaped}","offset":2}}]"#
        ));
        let items = parse_batch(&body);
        let eager = Item::decode("s", "0", 1, None, Bytes::from_static(envelope.as_slice()));
        let whole = eager.envelope().unwrap();
        for item in &items {
            let Body::Encoded { envelope, .. } = &item.body else {
                panic!("not kept encoded: {:?}", item.body);
            };
            assert_eq!(envelope.message.target_rest_api_payload, None);
            assert_eq!(item.id, eager.id);
            assert_eq!(item.decoded().unwrap().as_ref(), whole);
        }
        // The first is a slice of the batch, not a copy.
        let Body::Encoded { base64, .. } = &items[0].body else {
            unreachable!()
        };
        let start = base64.as_ptr() as usize - body.as_ptr() as usize;
        assert_eq!(&body[start..start + base64.len()], value.as_bytes());
    }
}
