//! The retry function (`POST /stream/retry`): reads an error stream, delivers its messages again
//! with the same engine as process, and routes what fails again.
//!
//! Two request shapes, one serde type ([`request::RetryRequest`]; a field it does not know is
//! a 400):
//!
//! - **Sample mode**, compatible with Oracle's Java sample:
//!   `{"streamOCIDToRetry","noOfMessagesToProcess","readAfterOffset","readPartition","errormapping"}`
//!   answered with `{"lastReadOffset","processedmessages","failedMessages","endOfStream"}`, with
//!   the sample's bugs fixed (contracts/original-sample.md section 8): exactly N messages are
//!   read (not N+1); offsets are int64; `lastReadOffset` is the last offset *fully handled*
//!   (delivered or durably re-routed), so passing it back never skips a message;
//!   `processedmessages` counts the delivered ones and `failedMessages` those that failed again
//!   and were re-routed; `endOfStream` is always present and true only when nothing follows
//!   (checked with a one-message peek at the next cursor); only configured streams may be read
//!   or mapped to; a missing `unexpectedError` mapping falls back to the class's stream;
//!   client errors are 400 `{"code":"InvalidParameter","message":...}` naming the field.
//! - **Group mode**: `{"stream","group"?,"max"?,"dryRun"?}` keeps its position in a consumer
//!   group (`retry_consumer_group` by default), handles messages in order until one whose
//!   `notBefore` is still in the future (reported as `nextDueAt`), commits only what was
//!   handled, and answers
//!   `{"processed","delivered","rerouted","deadLettered","nextDueAt","endOfStream","dryRun"}`.
//!   That request and its answers are the serde types of [`api`], shared with `datasync retry`.
//!
//! Both modes refuse, as populate does, a body not declared `application/json` (415
//! `UnsupportedMediaType`), a repeated member and an unknown one (400 naming it).
//!
//! A misconfigured function answers 500 `{"code":"FunctionMisconfigured"}` naming the key; a
//! failed re-route answers 502 `{"code":"RoutingFailed"}` and reports no progress.
#![warn(missing_docs)]

pub mod api;
mod callbacks;
mod group;
mod release;
pub mod request;
mod sample;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use datasync_core::deliver::{Deliverer, Item, RouteError};
use datasync_core::function_config::Function;
use datasync_core::oci::client::OciError;
use datasync_core::oci::models::Message;
use datasync_core::oci::streaming::{message_key, message_value};
use datasync_core::settings::ConfigError;
use datasync_core::trace::{emit, TraceEvent, TraceKind};
use fdk::{Context, Response};
use http::StatusCode;
use serde::Serialize;
use tracing::Instrument as _;

pub use request::DEFAULT_GROUP_MAX;
use request::{InvalidRequest, Mode};

/// The retry function: the engine, or the configuration error to answer with.
#[derive(Debug, Clone)]
pub struct Retry {
    built: Result<Deliverer, Arc<ConfigError>>,
}

/// Why a call is answered with an error.
#[derive(Debug)]
enum Refusal {
    /// The request is at fault: 400.
    Invalid(InvalidRequest),
    /// The body is not declared as JSON: 415.
    NotJson,
    /// A Streaming call failed: 429 when throttled, else 502.
    Streaming(OciError),
    /// The failures could not be written: 502, no progress reported.
    Routing(RouteError),
    /// Queued callbacks could not be written back: 502, nothing committed.
    Callbacks(datasync_core::callback::QueueError),
    /// The parked keys could not be read or written: 502.
    Parked(datasync_core::parked::ParkedError),
}

impl From<InvalidRequest> for Refusal {
    fn from(e: InvalidRequest) -> Self {
        Refusal::Invalid(e)
    }
}

impl From<OciError> for Refusal {
    fn from(e: OciError) -> Self {
        Refusal::Streaming(e)
    }
}

impl Refusal {
    /// A 400 naming the field.
    fn invalid(message: impl Into<String>) -> Self {
        Refusal::Invalid(InvalidRequest(message.into()))
    }

    fn response(&self) -> Response {
        match self {
            Refusal::Invalid(e) => {
                Response::error(StatusCode::BAD_REQUEST, "InvalidParameter", &e.0)
            }
            Refusal::NotJson => Response::error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "Content-Type must be application/json",
            ),
            Refusal::Streaming(e) => {
                tracing::error!(error = %e, "a streaming call failed");
                let status = match e.status() {
                    Some(429) => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::BAD_GATEWAY,
                };
                Response::error(status, "StreamingFailed", &e.to_string())
            }
            Refusal::Routing(e) => {
                Response::error(StatusCode::BAD_GATEWAY, "RoutingFailed", &e.to_string())
            }
            Refusal::Callbacks(e) => Response::error(
                StatusCode::BAD_GATEWAY,
                "CallbacksNotQueued",
                &e.to_string(),
            ),
            Refusal::Parked(e) => {
                tracing::error!(error = %e, "the parked keys could not be changed");
                Response::error(StatusCode::BAD_GATEWAY, "ParkedKeysFailed", &e.to_string())
            }
        }
    }
}

/// The items of messages read from `stream`.
fn items_from(messages: &[Message], stream: &str) -> Vec<Item> {
    messages
        .iter()
        .map(|m| {
            let key = message_key(m).ok().flatten().map(Bytes::from);
            let value = match message_value(m) {
                Ok(v) => Bytes::from(v),
                Err(_) => Bytes::from(m.value.clone().into_bytes()),
            };
            Item::decode(stream, &m.partition, m.offset, key, value)
                .appended(Some(m.timestamp.as_str()))
        })
        .collect()
}

/// Emits a `replayed` trace line for each item about to be delivered again.
fn trace_replays(items: &[Item]) {
    for item in items {
        let mut event = TraceEvent::new(TraceKind::Replayed, &item.id).key(item.key.as_deref());
        event.stream = Some(item.stream.clone());
        event.partition = Some(item.partition.clone());
        event.offset = Some(item.offset);
        event.attempt = item.envelope().map(|e| e.attempt);
        emit(&event);
    }
}

/// The answer as JSON.
fn answer(value: &impl Serialize) -> Response {
    Response::json(value).unwrap_or_else(|_| Response::new("{}"))
}

impl Retry {
    /// Builds the function from its configuration; a bad key is logged once here and answered
    /// on every call.
    pub fn from_config(config: &fdk::Config) -> Self {
        let built = Deliverer::from_lookup(Function::Retry, |k| config.get(k).map(str::to_owned))
            .map_err(Arc::new);
        if let Err(e) = &built {
            tracing::error!(key = e.key(), error = %e, "retry is misconfigured");
        }
        Self { built }
    }

    /// The function around an engine built elsewhere.
    pub fn new(deliverer: Deliverer) -> Self {
        Self {
            built: Ok(deliverer),
        }
    }

    /// Handles one `POST /stream/retry`.
    pub async fn handle(&self, ctx: &Context, body: &[u8]) -> Response {
        let span = tracing::info_span!("retry", call_id = %ctx.call_id);
        self.handle_in_span(ctx, body).instrument(span).await
    }

    async fn handle_in_span(&self, ctx: &Context, body: &[u8]) -> Response {
        let deliverer = match &self.built {
            Ok(d) => d,
            Err(e) => {
                return Response::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "FunctionMisconfigured",
                    &e.to_string(),
                )
            }
        };
        if !request::declared_json(ctx) {
            return Refusal::NotJson.response();
        }
        let callback_stream = deliverer.settings().callbacks.stream.clone();
        let mode = request::parse(body).and_then(|r| {
            // The callback stream may be named by a group-mode request only.
            let callbacks = callback_stream
                .as_deref()
                .filter(|s| r.reads_in_group_mode(s));
            r.check(|s| configured(deliverer, s) || callbacks == Some(s))
        });
        let deadline = Instant::now() + ctx.remaining();
        let answered = match mode {
            Ok(Mode::Sample(req)) => sample::run(deliverer, req, deadline).await,
            Ok(Mode::Group(req)) if callback_stream.as_deref() == Some(req.stream.as_str()) => {
                callbacks::run(deliverer, req, deadline).await
            }
            Ok(Mode::Group(req)) => group::run(deliverer, req, deadline).await,
            Ok(Mode::Release(key)) => release::run(deliverer, key).await,
            Err(e) => Err(Refusal::Invalid(e)),
        };
        let response = answered.unwrap_or_else(|refusal| refusal.response());
        // The answer is decided: the invocation's metrics go now, within their own timeout.
        deliverer.publish_metrics().await;
        response
    }
}

/// Whether retry may read from or route to `stream`: one of the configured error streams.
fn configured(deliverer: &Deliverer, stream: &str) -> bool {
    let s = deliverer.settings();
    s.routes.iter().any(|(_, id)| id == stream) || s.unrecoverable_stream.as_deref() == Some(stream)
}
