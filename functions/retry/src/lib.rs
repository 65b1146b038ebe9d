//! The retry function (`POST /stream/retry`): reads an error stream, delivers its messages again
//! with the same engine as process, and routes what fails again.
//!
//! Two request shapes:
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
//!
//! A misconfigured function answers 500 `{"code":"FunctionMisconfigured"}` naming the key; a
//! failed re-route answers 502 `{"code":"RoutingFailed"}` and reports no progress.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use datasync_core::classify::ErrorClass;
use datasync_core::deliver::{Deliverer, Item, Outcome, Outcomes};
use datasync_core::function_config::Function;
use datasync_core::oci::models::{CreateGroupCursorDetails, GroupCursorType, Message};
use datasync_core::oci::streaming::{message_key, message_value, CursorStart, MAX_GET_LIMIT};
use datasync_core::settings::ConfigError;
use fdk::{Context, Response};
use http::StatusCode;
use serde_json::{json, Value};
use tracing::Instrument as _;

/// Messages a group-mode call handles when `max` is not given.
pub const DEFAULT_GROUP_MAX: u32 = 100;

/// The retry function: the engine, or the configuration error to answer with.
#[derive(Debug, Clone)]
pub struct Retry {
    built: Result<Deliverer, Arc<ConfigError>>,
}

fn invalid(message: impl Into<String>) -> Response {
    Response::error(StatusCode::BAD_REQUEST, "InvalidParameter", &message.into())
}

fn oci_failure(e: &datasync_core::oci::client::OciError) -> Response {
    tracing::error!(error = %e, "a streaming call failed");
    let status = match e.status() {
        Some(429) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_GATEWAY,
    };
    Response::error(status, "StreamingFailed", &e.to_string())
}

/// A routing destination in `errormapping`: a status, a class like `5xx`, or
/// `unexpectedError`.
#[derive(Debug, Default)]
struct Mapping {
    exact: HashMap<u16, String>,
    classes: HashMap<u16, String>,
    unexpected: Option<String>,
}

impl Mapping {
    fn pick(&self, outcome: &Outcome) -> Option<String> {
        let f = outcome.failure()?;
        // Exhausted messages always go to the dead-letter stream: a mapping must not keep
        // them circling (the sample's bug 6).
        if f.class == ErrorClass::Exhausted {
            return None;
        }
        if f.unexpected {
            return self.unexpected.clone();
        }
        let status = f.status?;
        self.exact
            .get(&status)
            .or_else(|| self.classes.get(&(status / 100)))
            .cloned()
    }
}

fn text_or_number(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

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
        })
        .collect()
}

fn counts(outcomes: &Outcomes) -> (usize, usize, usize) {
    let delivered = outcomes.delivered();
    let dead = outcomes
        .list
        .iter()
        .filter(|o| o.failure().is_some_and(|f| f.permanent))
        .count();
    (delivered, outcomes.list.len() - delivered - dead, dead)
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
        let request: Value = match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(_) => return invalid("the body must be a JSON object"),
            Err(e) => {
                return invalid(format!(
                    "the body is not valid JSON (line {} column {})",
                    e.line(),
                    e.column()
                ))
            }
        };
        let deadline = Instant::now() + ctx.remaining();
        if request.get("streamOCIDToRetry").is_some() {
            self.sample(deliverer, &request, deadline).await
        } else if request.get("stream").is_some() {
            self.group(deliverer, &request, deadline).await
        } else {
            invalid("streamOCIDToRetry (sample mode) or stream (group mode) is required")
        }
    }

    /// The streams retry may read from or route to: the configured error streams.
    fn configured(deliverer: &Deliverer, stream: &str) -> bool {
        let s = deliverer.settings();
        s.routes.iter().any(|(_, id)| id == stream)
            || s.unrecoverable_stream.as_deref() == Some(stream)
    }

    async fn sample(&self, deliverer: &Deliverer, req: &Value, deadline: Instant) -> Response {
        let Some(stream) = req["streamOCIDToRetry"].as_str().map(str::to_owned) else {
            return invalid("streamOCIDToRetry must be a string");
        };
        if !Self::configured(deliverer, &stream) {
            return invalid("streamOCIDToRetry: only the configured error streams may be retried");
        }
        let n = match req.get("noOfMessagesToProcess").map(int64) {
            Some(Some(n)) if (1..=i64::from(MAX_GET_LIMIT)).contains(&n) => n as u32,
            _ => {
                return invalid(format!(
                    "noOfMessagesToProcess must be a whole number from 1 to {MAX_GET_LIMIT}"
                ))
            }
        };
        let after = match req.get("readAfterOffset").map(int64) {
            Some(Some(o)) if o >= -1 => o,
            _ => {
                return invalid(
                    "readAfterOffset must be -1 (from the oldest message) or an offset (int64, 0 or more)",
                )
            }
        };
        let partition = match req.get("readPartition").map(text_or_number) {
            Some(Some(p)) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => p,
            None => "0".to_owned(),
            _ => return invalid("readPartition must be a partition number"),
        };
        let mut mapping = Mapping::default();
        if let Some(list) = req.get("errormapping") {
            let Some(list) = list.as_array() else {
                return invalid("errormapping must be an array of {responsecode, stream}");
            };
            for (i, m) in list.iter().enumerate() {
                let code = m.get("responsecode").and_then(text_or_number);
                let target = m.get("stream").and_then(Value::as_str);
                let (Some(code), Some(target)) = (code, target) else {
                    return invalid(format!(
                        "errormapping[{i}] needs a responsecode and a stream"
                    ));
                };
                if !Self::configured(deliverer, target) {
                    return invalid(format!(
                        "errormapping[{i}].stream: only the configured error streams may be routed to"
                    ));
                }
                let target = target.to_owned();
                let lower = code.to_ascii_lowercase();
                if lower == "unexpectederror" {
                    mapping.unexpected = Some(target);
                } else if let Ok(status) = code.parse::<u16>() {
                    if !(100..=599).contains(&status) {
                        return invalid(format!(
                            "errormapping[{i}].responsecode: not an HTTP status"
                        ));
                    }
                    mapping.exact.insert(status, target);
                } else if lower.len() == 3
                    && lower.ends_with("xx")
                    && matches!(lower.as_bytes()[0], b'1'..=b'5')
                {
                    mapping
                        .classes
                        .insert(u16::from(lower.as_bytes()[0] - b'0'), target);
                } else {
                    return invalid(format!(
                        "errormapping[{i}].responsecode must be a status (404), a class (5xx) or unexpectedError"
                    ));
                }
            }
        }
        let streams = deliverer.streams();
        let start = if after == -1 {
            CursorStart::TrimHorizon
        } else {
            CursorStart::AfterOffset(after)
        };
        let cursor = match streams.create_cursor(&stream, &partition, &start).await {
            Ok(c) => c,
            Err(e) if e.status() == Some(400) || e.status() == Some(404) => {
                return invalid(format!("readPartition/readAfterOffset: {e}"))
            }
            Err(e) => return oci_failure(&e),
        };
        let (messages, next) = match streams.get_messages(&stream, &cursor, Some(n)).await {
            Ok(got) => got,
            Err(e) => return oci_failure(&e),
        };
        let last_offset = messages.last().map(|m| m.offset);
        let items = items_from(&messages, &stream);
        let outcomes = deliverer.deliver(items, deadline).await;
        let (delivered, rerouted, dead) = counts(&outcomes);
        if let Err(e) = deliverer
            .route_with(&outcomes, &stream, |o| mapping.pick(o))
            .await
        {
            tracing::error!(error = %e, "re-routing failed; no progress reported");
            return Response::error(StatusCode::BAD_GATEWAY, "RoutingFailed", &e.to_string());
        }
        // Nothing follows the last message read when a one-message peek at the next cursor
        // finds nothing (GetMessages may return fewer than asked while more exist, so the
        // count alone proves nothing).
        let end = match streams.get_messages(&stream, &next, Some(1)).await {
            Ok((more, _)) => more.is_empty(),
            Err(e) => return oci_failure(&e),
        };
        let answer = json!({
            "lastReadOffset": last_offset.unwrap_or(after),
            "processedmessages": delivered,
            "failedMessages": rerouted + dead,
            "deadLettered": dead,
            "endOfStream": end,
        });
        Response::json(&answer).unwrap_or_else(|_| Response::new("{}"))
    }

    async fn group(&self, deliverer: &Deliverer, req: &Value, deadline: Instant) -> Response {
        let Some(stream) = req["stream"].as_str().map(str::to_owned) else {
            return invalid("stream must be a string");
        };
        if !Self::configured(deliverer, &stream) {
            return invalid("stream: only the configured error streams may be retried");
        }
        let group = match req.get("group") {
            None | Some(Value::Null) => deliverer.settings().retry_group.clone(),
            Some(Value::String(g)) if !g.is_empty() && g.len() <= 255 => g.clone(),
            _ => return invalid("group must be a consumer group name"),
        };
        let max = match req.get("max") {
            None | Some(Value::Null) => DEFAULT_GROUP_MAX,
            Some(v) => match int64(v) {
                Some(m) if (1..=i64::from(MAX_GET_LIMIT)).contains(&m) => m as u32,
                _ => {
                    return invalid(format!(
                        "max must be a whole number from 1 to {MAX_GET_LIMIT}"
                    ))
                }
            },
        };
        let dry_run = match req.get("dryRun") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            _ => return invalid("dryRun must be true or false"),
        };
        let streams = deliverer.streams();
        let details = CreateGroupCursorDetails {
            cursor_type: GroupCursorType::TrimHorizon,
            time: None,
            group_name: group.clone(),
            instance_name: Some("datasync-retry".into()),
            timeout_in_ms: Some(30_000),
            commit_on_get: Some(false),
        };
        let cursor = match streams.create_group_cursor(&stream, &details).await {
            Ok(c) => c,
            Err(e) if e.status() == Some(400) => return invalid(format!("group: {e}")),
            Err(e) => return oci_failure(&e),
        };
        let (messages, next) = match streams.get_messages(&stream, &cursor, Some(max)).await {
            Ok(got) => got,
            Err(e) => return oci_failure(&e),
        };
        let now = SystemTime::now();
        let mut items = items_from(&messages, &stream);
        // Stop at the first message not yet due: it and everything after wait for a later call.
        let due = items
            .iter()
            .position(|i| {
                i.envelope()
                    .and_then(|e| e.not_before())
                    .is_some_and(|t| t > now)
            })
            .unwrap_or(items.len());
        let next_due_at = items
            .get(due)
            .and_then(|i| i.envelope())
            .and_then(|e| e.not_before.clone());
        items.truncate(due);
        let fetched = messages.len();
        if dry_run {
            let answer = json!({
                "dryRun": true,
                "processed": 0,
                "due": due,
                "read": fetched,
                "nextDueAt": next_due_at,
                "endOfStream": Value::Null,
            });
            return Response::json(&answer).unwrap_or_else(|_| Response::new("{}"));
        }
        let outcomes = deliverer.deliver(items, deadline).await;
        let (delivered, rerouted, dead) = counts(&outcomes);
        if let Err(e) = deliverer.route(&outcomes, &stream).await {
            tracing::error!(error = %e, "re-routing failed; nothing committed");
            return Response::error(StatusCode::BAD_GATEWAY, "RoutingFailed", &e.to_string());
        }
        // Commit exactly the handled messages. A group commit records the positions of the
        // cursor it is given, i.e. after everything the GetMessages that made it returned. When
        // the batch stopped early, the same messages are read again from the first cursor with
        // limit = the number handled, and that cursor is committed.
        let commit_cursor = if due == fetched {
            Some(next.clone())
        } else if due > 0 {
            match streams
                .get_messages(&stream, &cursor, Some(due as u32))
                .await
            {
                Ok((again, c)) if again.len() == due => Some(c),
                Ok(_) => {
                    tracing::warn!(
                        "the re-read differs; nothing committed (messages will be re-delivered)"
                    );
                    None
                }
                Err(e) => return oci_failure(&e),
            }
        } else {
            None
        };
        if let Some(c) = commit_cursor {
            if let Err(e) = streams.consumer_commit(&stream, &c).await {
                return oci_failure(&e);
            }
        }
        let end = if due < fetched {
            false
        } else {
            match streams.get_messages(&stream, &next, Some(1)).await {
                Ok((more, _)) => more.is_empty(),
                Err(e) => return oci_failure(&e),
            }
        };
        let answer = json!({
            "dryRun": false,
            "processed": due,
            "delivered": delivered,
            "rerouted": rerouted,
            "deadLettered": dead,
            "nextDueAt": next_due_at,
            "endOfStream": end,
        });
        Response::json(&answer).unwrap_or_else(|_| Response::new("{}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn offsets_are_int64() {
        assert_eq!(
            int64(&json!(9_007_199_254_740_993_i64)),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(int64(&json!("4294967296")), Some(4_294_967_296));
        assert_eq!(int64(&json!(1.5)), None);
    }
}
