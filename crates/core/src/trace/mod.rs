//! A message's story as log lines: one `tracing` event with target [`TARGET`] per acceptance,
//! attempt, re-route, park, release, outcome, replay and callback (`docs/trace.md`).
//!
//! Every stage builds a [`TraceEvent`] and calls [`emit`]; nothing else logs with this
//! target, so the line format is fixed here. On OCI the functions' JSON log lines on stdout
//! become their invoke log (`data.message`), which `datasync trace --oci` searches; locally
//! the stack captures the same events into the emulator's Logging Search store.
//!
//! A line never holds a payload, a token or a custom header value: the fields are ids, the
//! key, the target's host (never its path or query), statuses, classes, stream names and
//! short explanations written by datasync itself, each cleaned by [`snippet`].

pub mod search;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::message::rfc3339;

/// The `tracing` target of every trace line.
pub const TARGET: &str = "datasync_trace";

/// The most characters a text field (`detail`, `error`, `key`, ...) keeps.
pub const MAX_FIELD_CHARS: usize = 200;

/// What happened to a message at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// Populate wrote it to the data stream.
    #[default]
    Accepted,
    /// A call to its target that did not deliver it.
    Attempt,
    /// Written to an error stream, to be tried again.
    Rerouted,
    /// Its key was parked behind it, or it waits behind its key's blocker.
    Parked,
    /// It left its key's queue (delivered, dead-lettered or released by an operator).
    Released,
    /// The target accepted it: the delivering call's line (attempt, host, status, class `ok`,
    /// duration).
    Delivered,
    /// Written to the dead-letter stream.
    DeadLettered,
    /// Retry read it from an error stream to deliver it again.
    Replayed,
    /// A delivery callback to its source.
    Callback,
}

impl TraceKind {
    /// The name in a line's `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::Accepted => "accepted",
            TraceKind::Attempt => "attempt",
            TraceKind::Rerouted => "rerouted",
            TraceKind::Parked => "parked",
            TraceKind::Released => "released",
            TraceKind::Delivered => "delivered",
            TraceKind::DeadLettered => "dead_lettered",
            TraceKind::Replayed => "replayed",
            TraceKind::Callback => "callback",
        }
    }
}

/// One step of a message's story: the fields of one trace line (those that do not apply are
/// `None` and left out). Serialized in camelCase (the `GET /trace` entries); read from a log
/// line's snake_case fields too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceEvent {
    /// What happened.
    pub event: TraceKind,
    /// The message id.
    pub id: String,
    /// The stream key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The route's name (operator-defined routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The target's host.
    #[serde(
        default,
        alias = "target_host",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_host: Option<String>,
    /// The attempt's number (1 for the first call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The HTTP status the target (or a callback endpoint) answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The transport error, when there was no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error class (`classify.rs`), or `ok` for the call that delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// How long the call took.
    #[serde(
        default,
        alias = "duration_ms",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_ms: Option<u64>,
    /// The stream it was written to (or read from, for a replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The earliest next attempt (RFC 3339).
    #[serde(default, alias = "not_before", skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// The partition it was written to (acceptance) or read from (replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Its offset there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// The authenticated caller that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// A short explanation written by datasync (never a payload or header value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For an attempt answered with other than 2xx, the start of the target's answer
    /// (`crate::target::body_snippet`: at most 256 bytes, control characters replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl TraceEvent {
    /// An event of `kind` about message `id`, with no other field.
    pub fn new(kind: TraceKind, id: &str) -> Self {
        Self {
            event: kind,
            id: snippet(id),
            ..Self::default()
        }
    }

    /// With the stream key (bytes as the stream holds them; not UTF-8 is shown lossily).
    pub fn key(mut self, key: Option<&[u8]>) -> Self {
        self.key = key.map(|k| snippet(&String::from_utf8_lossy(k)));
        self
    }

    /// With a short explanation, cleaned by [`snippet`].
    pub fn detail(mut self, detail: Option<&str>) -> Self {
        self.detail = detail.map(snippet);
        self
    }

    /// With the earliest next attempt.
    pub fn not_before(mut self, at: Option<SystemTime>) -> Self {
        self.not_before = at.map(rfc3339);
        self
    }

    /// With a call's duration.
    pub fn duration(mut self, took: Duration) -> Self {
        self.duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        self
    }
}

/// Writes `event` as one `tracing` event with target [`TARGET`] at INFO, its fields in
/// snake_case, those that do not apply left out.
pub fn emit(e: &TraceEvent) {
    tracing::info!(
        target: "datasync_trace",
        event = e.event.as_str(),
        id = e.id.as_str(),
        key = e.key.as_deref(),
        route = e.route.as_deref(),
        target_host = e.target_host.as_deref(),
        attempt = e.attempt,
        status = e.status,
        error = e.error.as_deref(),
        class = e.class.as_deref(),
        duration_ms = e.duration_ms,
        stream = e.stream.as_deref(),
        not_before = e.not_before.as_deref(),
        partition = e.partition.as_deref(),
        offset = e.offset,
        caller = e.caller.as_deref(),
        detail = e.detail.as_deref(),
        body = e.body.as_deref(),
    );
}

/// `text` fit for a log line: control characters become spaces and it is cut to
/// [`MAX_FIELD_CHARS`] characters (with `…` when cut).
pub fn snippet(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_FIELD_CHARS + 3));
    for (i, c) in text.chars().enumerate() {
        if i == MAX_FIELD_CHARS {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// A trace line as the JSON log formats write it (`tracing-subscriber`'s JSON layer, and the
/// local stack's capture): `{"timestamp","level","fields":{...},"target"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct TraceLine {
    /// When it was written (RFC 3339).
    pub timestamp: String,
    /// The `tracing` target ([`TARGET`] for a trace line).
    #[serde(default)]
    pub target: String,
    /// The event's fields.
    pub fields: TraceEvent,
}

impl TraceLine {
    /// The trace line in `line`, when it is one (other log lines and junk are `None`).
    pub fn parse(line: &str) -> Option<Self> {
        let parsed: Self = serde_json::from_str(line).ok()?;
        (parsed.target == TARGET).then_some(parsed)
    }
}

/// One entry of a timeline: when, and what (the `GET /trace` shape:
/// `{"time", "event", ...the fields in camelCase}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEntry {
    /// When it was written (RFC 3339).
    pub time: String,
    /// What happened.
    #[serde(flatten)]
    pub event: TraceEvent,
}

/// A timeline: the answer of `GET /trace`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// The entries, oldest first.
    pub entries: Vec<TraceEntry>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn snippets_are_short_and_free_of_control_characters() {
        assert_eq!(snippet("a\nb\u{1b}[31m"), "a b [31m");
        let long = "x".repeat(500);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), MAX_FIELD_CHARS + 1);
        assert!(s.ends_with('…'));
    }

    #[test]
    fn a_json_log_line_reads_back_as_its_event() {
        let line = r#"{"timestamp":"2026-01-01T00:00:00.000000Z","level":"INFO","fields":{"event":"attempt","id":"m1","key":"k","target_host":"t.example","attempt":2,"status":503,"class":"serviceUnavailable","duration_ms":12,"not_before":"2026-01-01T00:00:01Z"},"target":"datasync_trace"}"#;
        let l = TraceLine::parse(line).unwrap();
        assert_eq!(l.fields.event, TraceKind::Attempt);
        assert_eq!(l.fields.target_host.as_deref(), Some("t.example"));
        assert_eq!(l.fields.duration_ms, Some(12));
        assert_eq!(l.fields.attempt, Some(2));
        let entry = TraceEntry {
            time: l.timestamp,
            event: l.fields,
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["targetHost"], "t.example");
        assert_eq!(json["notBefore"], "2026-01-01T00:00:01Z");
        assert_eq!(json["event"], "attempt");
        assert!(json.get("route").is_none());
        let other = line.replace("datasync_trace", "datasync_core");
        assert!(TraceLine::parse(&other).is_none());
    }
}
