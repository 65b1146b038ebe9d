//! The message: what source applications send, what the stream holds, and the rules a message
//! must follow before it is accepted.
//!
//! - [`SyncRequest`]: the body of `POST /stream/sync`, compatible with Oracle's sample.
//! - [`StreamMessage`]: the sample's `streamMessage` (target, operation, payload, headers, secret).
//! - [`Payload`]: `targetRestApiPayload` kept as the JSON text the source sent, so the target gets
//!   the same keys in the same order and the same numbers.
//! - [`Envelope`]: what datasync writes to the streams: the `streamMessage` fields plus our
//!   metadata (`id`, `receivedAt`, `source`, `attempt`, `firstFailedAt`, `lastError`,
//!   `notBefore`, `traceparent`). A bare sample `streamMessage` decodes as an envelope without
//!   metadata, so error streams written by the Java sample can be replayed.
//! - [`validate`]: every rule populate enforces, and process re-checks.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};

use crate::classify::ErrorClass;

/// The most bytes one envelope may take on the stream (OCI's per-message limit).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most custom headers a message may carry.
pub const MAX_HEADERS: usize = 50;
/// The longest `vaultSecretName`.
pub const MAX_SECRET_NAME: usize = 100;
/// The longest `streamKey`, in bytes.
pub const MAX_STREAM_KEY: usize = 1024;
/// The longest `lastError.detail` kept.
pub const MAX_ERROR_DETAIL: usize = 512;

/// One custom header for the target call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderPair {
    /// The header name.
    pub key: String,
    /// The header value.
    pub value: String,
}

/// A `targetRestApiPayload`: the JSON the source sent, kept as compact text from populate to the
/// target's body. Parsed into a [`serde_json::Value`] it would reach the target with its keys
/// sorted, integers beyond 64 bits and decimals beyond 17 digits rounded (an id of
/// `123456789012345678901234567890` arriving as `1.2345678901234568e+29`), `1E2` as `100.0` and
/// duplicate keys merged. Oracle's sample re-serialises a Jackson tree, which keeps key order
/// and big integers.
///
/// Compact means without whitespace between tokens; strings, numbers and key order are the
/// source's, byte for byte. A JSON `null` payload is no payload (`Option::None`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    /// The payload of a JSON text, whitespace between tokens removed.
    ///
    /// # Errors
    /// When `json` is not one JSON value.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        Self::from_raw(serde_json::from_str(json)?)
    }

    /// The payload of a JSON value already read (one value, whatever it holds), whitespace
    /// between tokens removed.
    ///
    /// # Errors
    /// Never in practice: the compact text of one JSON value is one JSON value.
    pub fn from_raw(raw: &RawValue) -> Result<Self, serde_json::Error> {
        match compact_json(raw.get()) {
            None => Ok(Self(raw.to_owned())),
            Some(compact) => RawValue::from_string(compact).map(Self),
        }
    }

    /// The payload of a parsed value (its keys in the value's order).
    ///
    /// # Errors
    /// Never in practice: a [`serde_json::Value`] always encodes.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Self)
    }

    /// The compact JSON text: what the target's body holds.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Payload").field(&self.get()).finish()
    }
}

/// `json` (one valid JSON value: `1 2` would become `12`) without the whitespace between its
/// tokens (JSON's four whitespace bytes outside strings), or `None` when it has none, as
/// machine-written JSON mostly has not: the caller keeps the text it has. Strings are copied as
/// they are, escapes included, found a block at a time (`memchr`): most of a payload's bytes
/// are in its strings.
fn compact_json(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    // `bytes[..kept]` is in `out` already (or needs no copy while `out` is `None`).
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                loop {
                    let Some(at) = memchr::memchr2(b'"', b'\\', &bytes[i..]) else {
                        i = bytes.len();
                        break;
                    };
                    let quote = bytes[i + at] == b'"';
                    // Past the closing quote, or past a backslash and the byte it escapes.
                    i = (i + at + if quote { 1 } else { 2 }).min(bytes.len());
                    if quote {
                        break;
                    }
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[kept..i]);
                i += 1;
                kept = i;
            }
            _ => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[kept..]);
    // Only ASCII bytes between characters were left out: still UTF-8.
    String::from_utf8(out).ok()
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
    /// The target URL.
    pub target_rest_api: String,
    /// POST, PUT, PATCH or DELETE.
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
}

/// Why the last attempt failed. Never holds a secret, a payload or a response body beyond a
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
#[serde(rename_all = "camelCase", from = "EnvelopeFields")]
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
    target_rest_api: String,
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
}

impl From<EnvelopeFields> for Envelope {
    fn from(f: EnvelopeFields) -> Self {
        Self {
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
        }
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
        if let Some(id) = &self.id {
            return id.clone();
        }
        let digest = Sha256::digest(format!("{stream}/{partition}/{offset}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .to_string()
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

/// Formats a time as RFC 3339 UTC with milliseconds, e.g. `2026-11-27T18:05:53.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = since.as_secs() as i64;
    let millis = since.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses RFC 3339 (`Z` or a numeric offset, any fraction). None when malformed.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac[..digits].bytes().take(9).enumerate() {
            nanos += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && (rest.starts_with('+') || rest.starts_with('-'))
            && &rest[3..4] == ":" =>
        {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 3600
                + rest.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos))
}

// Howard Hinnant's civil-date algorithms (public domain), for proleptic Gregorian dates.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
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

/// A fresh W3C `traceparent` (version 00, sampled).
pub fn new_traceparent() -> String {
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    format!("00-{trace:032x}-{span:016x}-01")
}

/// Whether `value` is a valid W3C `traceparent` (version 00).
pub fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2)
}

/// The Vault secret name for `caller`'s `vaultSecretName`: `ds-<16 hex of SHA-256(caller)>-<name>`.
/// Scoping by caller means no caller can read or overwrite another's token, whatever name it
/// picks (the sample's confused-deputy bug).
pub fn scoped_secret_name(caller: &str, vault_secret_name: &str) -> String {
    let digest = Sha256::digest(caller.as_bytes());
    let mut out = String::with_capacity(20 + vault_secret_name.len());
    out.push_str("ds-");
    for byte in &digest[..8] {
        out.push_str(&format!("{byte:02x}"));
    }
    out.push('-');
    out.push_str(vault_secret_name);
    out
}

/// The target hosts messages may be delivered to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AllowList {
    entries: Vec<AllowEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    /// Lower-case host, without a leading `*.`.
    host: String,
    /// True for `*.host`: any subdomain (not the host itself).
    subdomains: bool,
    port: Option<u16>,
}

impl AllowList {
    /// Parses a comma-separated list of `host`, `host:port` and `*.domain` entries.
    ///
    /// # Errors
    /// A message naming the first entry that is not a host name or IP with an optional port.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for raw in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (pattern, port) = match raw.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || raw.starts_with('[') => {
                    let port = p.parse::<u16>().map_err(|_| format!("{raw:?}: bad port"))?;
                    (h, Some(port))
                }
                _ => (raw, None),
            };
            let (host, subdomains) = match pattern.strip_prefix("*.") {
                Some(rest) => (rest, true),
                None => (pattern, false),
            };
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            let legal = !host.is_empty()
                && host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'));
            if !legal {
                return Err(format!("{raw:?} is not a host, host:port or *.domain"));
            }
            entries.push(AllowEntry {
                host,
                subdomains,
                port,
            });
        }
        Ok(Self { entries })
    }

    /// Adds `host[:port]` entries (the local stack adds its demo target).
    ///
    /// # Errors
    /// As [`parse`](Self::parse).
    pub fn extend(&mut self, list: &str) -> Result<(), String> {
        self.entries.extend(Self::parse(list)?.entries);
        Ok(())
    }

    /// Whether the list is empty (then nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `url`'s host (and port) is allowed.
    pub fn allows(&self, url: &url::Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default();
        self.entries.iter().any(|e| {
            let host_ok = if e.subdomains {
                host.len() > e.host.len()
                    && host.ends_with(&e.host)
                    && host[..host.len() - e.host.len()].ends_with('.')
            } else {
                host == e.host
            };
            host_ok && e.port.is_none_or(|p| Some(p) == port)
        })
    }
}

/// The rules a message must follow, from the function configuration.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Allowed target hosts.
    pub allow_list: AllowList,
    /// Whether plain-http targets are allowed.
    pub allow_http: bool,
}

/// Why a message was refused. The message names the field and the rule, never a value that
/// could be a secret (a target's host and port may be named; its path and query may not).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct Invalid {
    /// The offending field, e.g. `streamMessage.targetRestApi`.
    pub field: String,
    /// The rule it breaks.
    pub rule: String,
    class: ErrorClass,
}

impl Invalid {
    fn new(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            class: ErrorClass::Invalid,
        }
    }

    /// The class a delivery failure of this kind is recorded under: `NotAllowed` for a target
    /// off the allow-list, `Invalid` for every other rule.
    pub fn class(&self) -> ErrorClass {
        self.class
    }
}

/// Header names the caller may not set: hop-by-hop headers, and those datasync owns.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "host",
    "idempotency-key",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header names that carry credentials by convention. A custom header is stored in the stream
/// with its message and, for a message that fails permanently, reaches the dead-letter stream,
/// its notification and its archive: populate refuses these and points the caller to Vault
/// (`vaultSecretName` with `vaultSecretHeader`). Delivery does not check them, so messages
/// accepted before this rule still go out.
const CREDENTIAL_HEADERS: &[&str] = &[
    "api-key",
    "apikey",
    "cookie",
    "x-access-token",
    "x-api-key",
    "x-api-token",
    "x-auth-token",
    "x-amz-security-token",
    "x-functions-key",
];

/// Refuses a message whose custom headers carry a credential by name ([`CREDENTIAL_HEADERS`]),
/// saying how to send it through Vault instead. For new messages only (populate): delivery
/// keeps sending those already stored.
///
/// # Errors
/// The first such header, naming its field.
pub fn refuse_credential_headers(message: &StreamMessage) -> Result<(), Invalid> {
    for (i, h) in message.target_rest_api_headers.iter().enumerate() {
        if let Some(name) = CREDENTIAL_HEADERS
            .iter()
            .find(|c| c.eq_ignore_ascii_case(&h.key))
        {
            return Err(Invalid::new(
                format!("streamMessage.targetRestApiHeaders[{i}]"),
                format!(
                    "{name} carries a credential, which would be stored in the stream and shown \
                     in dead-letter notifications; send its value as this request's \
                     Authorization header with vaultSecretName and \
                     \"vaultSecretHeader\": \"{name}\" (it is kept in Vault and sent as {name})"
                ),
            ));
        }
    }
    Ok(())
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Checks `message` against every rule, normalises the operation to upper case, and returns
/// the parsed target URL.
///
/// # Errors
/// The first rule broken, naming the field.
pub fn validate(message: &mut StreamMessage, policy: &Policy) -> Result<url::Url, Invalid> {
    const URL: &str = "streamMessage.targetRestApi";
    let url = url::Url::parse(&message.target_rest_api)
        .map_err(|_| Invalid::new(URL, "must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(Invalid::new(
                URL,
                "must use https (plain http is not allowed by this deployment)",
            ))
        }
        _ => return Err(Invalid::new(URL, "must be an https URL")),
    }
    if url.host_str().is_none() {
        return Err(Invalid::new(URL, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            URL,
            "must not carry credentials; use the Authorization header",
        ));
    }
    if !policy.allow_list.allows(&url) {
        // Host and port as the allow-list compares them, so a port that differs shows.
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or_default();
        return Err(Invalid {
            class: ErrorClass::NotAllowed,
            ..Invalid::new(
                URL,
                format!(
                    "host {host}:{port} is not on the target allow-list (the functions' \
                     target_allow_list)"
                ),
            )
        });
    }

    let op = message.target_rest_api_operation.to_ascii_uppercase();
    if !matches!(op.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
        return Err(Invalid::new(
            "streamMessage.targetRestApiOperation",
            "must be one of POST, PUT, PATCH, DELETE",
        ));
    }
    message.target_rest_api_operation = op;

    if message.target_rest_api_headers.len() > MAX_HEADERS {
        return Err(Invalid::new(
            "streamMessage.targetRestApiHeaders",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    for (i, h) in message.target_rest_api_headers.iter().enumerate() {
        let field = format!("streamMessage.targetRestApiHeaders[{i}]");
        if !is_token(&h.key) {
            return Err(Invalid::new(field, "key must be a legal header name"));
        }
        if FORBIDDEN_HEADERS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&h.key))
        {
            return Err(Invalid::new(
                field,
                format!(
                    "{} may not be set by the caller",
                    h.key.to_ascii_lowercase()
                ),
            ));
        }
        if h.value.bytes().any(|c| matches!(c, b'\r' | b'\n' | 0)) {
            return Err(Invalid::new(field, "value must not contain CR, LF or NUL"));
        }
    }

    if let Some(header) = &message.vault_secret_header {
        const FIELD: &str = "streamMessage.vaultSecretHeader";
        if message.vault_secret_name.is_none() {
            return Err(Invalid::new(FIELD, "needs vaultSecretName"));
        }
        if !is_token(header) {
            return Err(Invalid::new(FIELD, "must be a legal header name"));
        }
        let owned = FORBIDDEN_HEADERS
            .iter()
            .any(|f| *f != "authorization" && f.eq_ignore_ascii_case(header));
        if owned {
            return Err(Invalid::new(
                FIELD,
                format!(
                    "{} may not be set by the caller",
                    header.to_ascii_lowercase()
                ),
            ));
        }
        if message
            .target_rest_api_headers
            .iter()
            .any(|h| h.key.eq_ignore_ascii_case(header))
        {
            return Err(Invalid::new(
                FIELD,
                "names a header that targetRestApiHeaders also sets",
            ));
        }
    }

    if let Some(name) = &message.vault_secret_name {
        let legal = !name.is_empty()
            && name.len() <= MAX_SECRET_NAME
            && name
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'));
        if !legal {
            return Err(Invalid::new(
                "streamMessage.vaultSecretName",
                format!("must be 1 to {MAX_SECRET_NAME} of A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn policy(list: &str) -> Policy {
        Policy {
            allow_list: AllowList::parse(list).unwrap(),
            allow_http: false,
        }
    }

    fn message() -> StreamMessage {
        serde_json::from_str(
            &serde_json::json!({
                "vaultSecretName": "789",
                "targetRestApi": "https://api.example.com/orders",
                "targetRestApiOperation": "post",
                "targetRestApiPayload": {"orderid": "18jan"},
                "targetRestApiHeaders": [{"key": "Content-Type", "value": "application/json"}]
            })
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn a_sample_message_is_valid_and_its_operation_upper_cased() {
        let mut m = message();
        let url = validate(&mut m, &policy("api.example.com")).unwrap();
        assert_eq!(url.host_str(), Some("api.example.com"));
        assert_eq!(m.target_rest_api_operation, "POST");
    }

    #[test]
    fn the_vault_secret_may_go_in_another_header() {
        let mut m = message();
        m.vault_secret_header = Some("X-Api-Key".into());
        validate(&mut m, &policy("api.example.com")).unwrap();
        m.vault_secret_header = Some("Authorization".into());
        validate(&mut m, &policy("api.example.com")).unwrap();
    }

    #[test]
    fn credential_headers_are_refused_for_new_messages_only() {
        for name in ["x-api-key", "Cookie", "X-Auth-Token", "apikey"] {
            let mut m = message();
            m.target_rest_api_headers.push(HeaderPair {
                key: name.into(),
                value: "s3cret".into(),
            });
            let err = refuse_credential_headers(&m).unwrap_err();
            assert_eq!(err.field, "streamMessage.targetRestApiHeaders[1]");
            assert!(err.rule.contains("vaultSecretHeader"), "{}", err.rule);
            assert!(!err.rule.contains("s3cret"));
            // Stored before the rule: still delivered.
            validate(&mut m, &policy("api.example.com")).unwrap();
        }
        refuse_credential_headers(&message()).unwrap();
    }

    #[test]
    fn every_rule_names_its_field() {
        let p = policy("api.example.com");
        type Case = (fn(&mut StreamMessage), &'static str);
        let cases: Vec<Case> = vec![
            (
                |m| m.target_rest_api = "/relative".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "ftp://api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "http://api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "https://evil.example.net/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api = "https://u:p@api.example.com/x".into(),
                "streamMessage.targetRestApi",
            ),
            (
                |m| m.target_rest_api_operation = "GET".into(),
                "streamMessage.targetRestApiOperation",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Bad Name".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Authorization".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "transfer-encoding".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].key = "Host".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].value = "a\r\nX-Injected: 1".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| m.target_rest_api_headers[0].value = "a\0".into(),
                "streamMessage.targetRestApiHeaders[0]",
            ),
            (
                |m| {
                    m.target_rest_api_headers = vec![
                        HeaderPair {
                            key: "X-A".into(),
                            value: "1".into()
                        };
                        51
                    ]
                },
                "streamMessage.targetRestApiHeaders",
            ),
            (
                |m| m.vault_secret_name = Some("../other".into()),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_name = Some("x".repeat(101)),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_name = Some(String::new()),
                "streamMessage.vaultSecretName",
            ),
            (
                |m| m.vault_secret_header = Some("x api key".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("Host".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("idempotency-key".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| m.vault_secret_header = Some("content-type".into()),
                "streamMessage.vaultSecretHeader",
            ),
            (
                |m| {
                    m.vault_secret_name = None;
                    m.vault_secret_header = Some("x-api-key".into());
                },
                "streamMessage.vaultSecretHeader",
            ),
        ];
        for (i, (mutate, field)) in cases.into_iter().enumerate() {
            let mut m = message();
            mutate(&mut m);
            let err = validate(&mut m, &p).unwrap_err();
            assert_eq!(err.field, field, "case {i}: {err}");
        }
    }

    #[test]
    fn http_only_where_allowed() {
        let mut p = policy("localhost:8081");
        p.allow_http = true;
        let mut m = message();
        m.target_rest_api = "http://localhost:8081/x".into();
        assert!(validate(&mut m, &p).is_ok());
        m.target_rest_api = "http://localhost:9999/x?token=t".into();
        let refused = validate(&mut m, &p).unwrap_err();
        assert_eq!(refused.class(), ErrorClass::NotAllowed);
        // It names the host and port it compared, so the port that differs shows; never the
        // path or query.
        assert!(
            refused
                .rule
                .starts_with("host localhost:9999 is not on the target allow-list"),
            "{refused}"
        );
        assert!(!refused.rule.contains("token"), "{refused}");
        m.target_rest_api = "http://localhost:8081/x".into();
        m.target_rest_api_operation = "GET".into();
        assert_eq!(
            validate(&mut m, &p).unwrap_err().class(),
            ErrorClass::Invalid
        );
    }

    #[test]
    fn allow_list_entries() {
        let list = AllowList::parse("api.example.com, *.corp.example.org, 10.0.0.5:8443").unwrap();
        let allows = |u: &str| list.allows(&url::Url::parse(u).unwrap());
        assert!(allows("https://API.example.com/x"));
        assert!(allows("https://a.b.corp.example.org/x"));
        assert!(!allows("https://corp.example.org/x"));
        assert!(!allows("https://evilcorp.example.org/x"));
        assert!(allows("https://10.0.0.5:8443/x"));
        assert!(!allows("https://10.0.0.5/x"));
        assert!(!allows("https://api.example.com.evil.net/x"));
        assert!(AllowList::parse("bad host").is_err());
        assert!(AllowList::parse("h:99999").is_err());
        assert!(AllowList::parse("").unwrap().is_empty());
    }

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
    fn payloads_lose_only_the_whitespace_between_tokens() {
        for (json, compact) in [
            (
                " { \"a\" : [ 1 , 2 ] ,\n\t\"b\":{ } }\r\n",
                r#"{"a":[1,2],"b":{}}"#,
            ),
            (
                r#"{"s": " keep  this \" { , } \\" , "t" : "\\"}"#,
                r#"{"s":" keep  this \" { , } \\","t":"\\"}"#,
            ),
            (" 42 ", "42"),
            (r#""a string""#, r#""a string""#),
            (r#"{"s":"a b\t","n":[1,2]}"#, r#"{"s":"a b\t","n":[1,2]}"#),
        ] {
            assert_eq!(Payload::from_json(json).unwrap().get(), compact, "{json}");
        }
        assert!(Payload::from_json("{").is_err());
        assert!(Payload::from_json("1 2").is_err());
        let value = serde_json::json!({"b": 1, "a": 2});
        assert_eq!(
            Payload::from_value(&value).unwrap().get(),
            value.to_string()
        );
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

    #[test]
    fn rfc3339_round_trips_and_rejects_junk() {
        for ms in [
            0u64,
            1,
            951_782_400_000,
            1_795_000_000_123,
            4_102_444_799_999,
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t), "{ms}");
        }
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_000)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            parse_rfc3339("2018-04-26T01:03:06.051+02:00"),
            parse_rfc3339("2018-04-25T23:03:06.051Z")
        );
        for junk in [
            "",
            "2018-04-26",
            "2018-13-26T01:03:06Z",
            "2018-04-26T01:03:06",
            "2018-04-26T01:03:06.Z",
            "x018-04-26T01:03:06Z",
        ] {
            assert_eq!(parse_rfc3339(junk), None, "{junk}");
        }
    }

    #[test]
    fn secret_names_are_scoped_by_caller() {
        let a = scoped_secret_name("caller-a", "789");
        let b = scoped_secret_name("caller-b", "789");
        assert_ne!(a, b);
        assert!(a.starts_with("ds-") && a.ends_with("-789") && a.len() == 3 + 16 + 1 + 3);
    }

    #[test]
    fn traceparents() {
        let t = new_traceparent();
        assert!(is_valid_traceparent(&t), "{t}");
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid_traceparent("garbage"));
    }
}
