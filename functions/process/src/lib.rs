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

use std::time::Instant;

use base64::Engine as _;
use bytes::Bytes;
use datasync_core::deliver::{Deliverer, Item};
use datasync_core::function_config::Function;
use datasync_core::settings::ConfigError;
use fdk::{Context, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument as _;

/// The process function: the delivery engine, or the configuration error to answer with.
#[derive(Debug, Clone)]
pub struct Process {
    built: Result<Deliverer, ConfigError>,
}

/// One element of a connector batch (section C): `partition` and `offset` as strings or
/// numbers, `key` base64 or null, `value` base64.
#[derive(Debug, Deserialize)]
struct ConnectorMessage {
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    partition: Option<Value>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    offset: Option<Value>,
}

fn text_of(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn offset_of(v: &Option<Value>) -> Option<i64> {
    match v {
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// Turns a connector batch into items. A body that is not a JSON array of messages becomes a
/// single undecodable item (dead-lettered, readable), so nothing is silently dropped; an
/// element whose value is not base64 becomes an undecodable item with its text.
pub fn parse_batch(body: &[u8]) -> Vec<Item> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Ok(elements) = serde_json::from_slice::<Vec<ConnectorMessage>>(body) else {
        return vec![Item::decode(
            "connector-batch",
            "0",
            0,
            None,
            Bytes::copy_from_slice(body),
        )];
    };
    elements
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let stream = m.stream.unwrap_or_default();
            let partition = text_of(&m.partition).unwrap_or_else(|| "0".to_owned());
            let offset = offset_of(&m.offset).unwrap_or(-(i as i64) - 1);
            let key = m
                .key
                .map(|k| Bytes::from(b64.decode(k.as_bytes()).unwrap_or_else(|_| k.into_bytes())));
            let value = m.value.unwrap_or_default();
            let value = match b64.decode(value.as_bytes()) {
                Ok(v) => Bytes::from(v),
                Err(_) => Bytes::from(value.into_bytes()),
            };
            Item::decode(&stream, &partition, offset, key, value)
        })
        .collect()
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
        let span = tracing::info_span!("process", call_id = %ctx.call_id);
        self.handle_in_span(ctx, body).instrument(span).await
    }

    async fn handle_in_span(&self, ctx: &Context, body: &[u8]) -> Response {
        let deliverer = match &self.built {
            Ok(d) => d,
            Err(e) => {
                return Response::error(
                    StatusCode::BAD_GATEWAY,
                    "FunctionMisconfigured",
                    &e.to_string(),
                )
            }
        };
        let items = parse_batch(body);
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
