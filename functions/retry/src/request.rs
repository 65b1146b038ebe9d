//! The body of `POST /stream/retry`: one serde type for both modes ([`RetryRequest`]), then
//! checked field by field into a [`Mode`], every problem a message naming the field.

use std::collections::HashMap;

use datasync_core::deliver::{Failure, Outcome};
use datasync_core::oci::streaming::MAX_GET_LIMIT;
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// Messages a group-mode call handles when `max` is not given.
pub const DEFAULT_GROUP_MAX: u32 = 100;

/// The body of `POST /stream/retry`, as sent: the sample's fields (sample mode) and ours (group
/// mode). A field this type does not know is refused. Each field keeps whatever JSON it was
/// given ([`Field`]), so a value of the wrong type is answered with a message naming the field
/// rather than a parse error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Sample mode: the error stream to read (an OCID).
    #[serde(default, rename = "streamOCIDToRetry")]
    pub stream_ocid_to_retry: Field<String>,
    /// Sample mode: how many messages to read, 1 to [`MAX_GET_LIMIT`].
    #[serde(default, rename = "noOfMessagesToProcess")]
    pub no_of_messages_to_process: Field<Scalar>,
    /// Sample mode: read after this offset; -1 from the oldest message.
    #[serde(default, rename = "readAfterOffset")]
    pub read_after_offset: Field<Scalar>,
    /// Sample mode: the partition (default `0`).
    #[serde(default, rename = "readPartition")]
    pub read_partition: Field<Scalar>,
    /// Sample mode: where failures go, by status, class (`5xx`) or `unexpectedError`.
    #[serde(default)]
    pub errormapping: Field<Vec<Field<MappingEntry>>>,
    /// Group mode: the error stream to read (an OCID).
    #[serde(default)]
    pub stream: Field<String>,
    /// Group mode: the consumer group keeping the position (default: the function's).
    #[serde(default)]
    pub group: Field<String>,
    /// Group mode: the most messages to handle, 1 to [`MAX_GET_LIMIT`] (default
    /// [`DEFAULT_GROUP_MAX`]).
    #[serde(default)]
    pub max: Field<Scalar>,
    /// Group mode: report what is due without delivering anything.
    #[serde(default, rename = "dryRun")]
    pub dry_run: Field<bool>,
    /// Release mode: the key (as text) whose blocker is dropped from the parked keys.
    #[serde(default, rename = "releaseKey")]
    pub release_key: Field<String>,
}

/// One entry of `errormapping`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingEntry {
    /// A status (`404` or `"404"`), a class (`5xx`) or `unexpectedError`.
    #[serde(default)]
    pub responsecode: Field<Scalar>,
    /// The stream (OCID) failures of that kind go to.
    #[serde(default)]
    pub stream: Field<String>,
}

/// A request field as sent.
#[derive(Debug, Default)]
pub enum Field<T> {
    /// Not in the request.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value of the expected type.
    Given(T),
    /// A value of another type.
    Wrong,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// What a present field can hold: tried in order, the last one takes anything.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Sent<T> {
            Null,
            Given(T),
            Other(IgnoredAny),
        }
        Ok(match Sent::deserialize(deserializer)? {
            Sent::Null => Field::Null,
            Sent::Given(value) => Field::Given(value),
            Sent::Other(_) => Field::Wrong,
        })
    }
}

/// A number or a string, as the sample's fields are read (Jackson's `asInt`/`asText`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A JSON number.
    Number(serde_json::Number),
    /// A JSON string.
    Text(String),
}

impl Scalar {
    /// As text: a string trimmed, a number as JSON writes it.
    pub fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(s) => s.trim().to_owned(),
        }
    }

    /// As an int64: a whole number, or a string holding one.
    pub fn int64(&self) -> Option<i64> {
        match self {
            Scalar::Number(n) => n.as_i64(),
            Scalar::Text(s) => s.trim().parse().ok(),
        }
    }
}

/// A request refused with 400 `InvalidParameter`; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest(pub String);

impl std::fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidRequest {}

fn invalid<T>(message: impl Into<String>) -> Result<T, InvalidRequest> {
    Err(InvalidRequest(message.into()))
}

/// Whether the call's body is declared JSON (`application/json`, any parameters), as populate
/// requires: a client's call through the gateway must say so; a plain invoke (the retry
/// schedule, a direct `fn invoke`) may leave the type out but may not name another.
pub fn declared_json(ctx: &fdk::Context) -> bool {
    let content_type = match &ctx.http {
        Some(http) => http.headers.get(http::header::CONTENT_TYPE),
        None => match ctx.headers.get(http::header::CONTENT_TYPE) {
            Some(v) => Some(v),
            None => return true,
        },
    };
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the body: JSON, an object, and only known fields.
///
/// # Errors
/// An [`InvalidRequest`] saying which.
pub fn parse(body: &[u8]) -> Result<RetryRequest, InvalidRequest> {
    let raw: Box<serde_json::value::RawValue> = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) => {
            return invalid(format!(
                "the body is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            ))
        }
    };
    // A raw value starts at its value's first byte.
    if !raw.get().starts_with('{') {
        return invalid("the body must be a JSON object");
    }
    serde_json::from_str(raw.get()).or_else(|e| invalid(format!("the body: {e}")))
}

/// What a checked request asks for.
#[derive(Debug)]
pub enum Mode {
    /// The sample's request.
    Sample(SampleRequest),
    /// A group-mode request.
    Group(GroupRequest),
    /// A release-mode request: the key to release.
    Release(String),
}

/// A checked sample-mode request.
#[derive(Debug)]
pub struct SampleRequest {
    /// The error stream to read.
    pub stream: String,
    /// How many messages to read.
    pub count: u32,
    /// Read after this offset; -1 from the oldest message.
    pub after: i64,
    /// The partition.
    pub partition: String,
    /// Where failures go.
    pub mapping: ErrorMapping,
}

/// A checked group-mode request.
#[derive(Debug)]
pub struct GroupRequest {
    /// The error stream to read.
    pub stream: String,
    /// The consumer group; `None` for the function's.
    pub group: Option<String>,
    /// The most messages to handle.
    pub max: u32,
    /// Whether to report what is due without delivering anything.
    pub dry_run: bool,
}

/// `errormapping`: where a failure goes, by exact status, status class, or `unexpectedError`.
#[derive(Debug, Default)]
pub struct ErrorMapping {
    exact: HashMap<u16, String>,
    classes: HashMap<u16, String>,
    unexpected: Option<String>,
}

impl ErrorMapping {
    /// The stream `outcome`'s failure is mapped to, if any (else it goes to its class's
    /// stream).
    pub fn pick(&self, outcome: &Outcome) -> Option<String> {
        let f = outcome.failure()?;
        // Exhausted messages always go to the dead-letter stream: a mapping must not keep
        // them circling (the sample's bug 6).
        if matches!(f, Failure::Exhausted { .. }) {
            return None;
        }
        let cause = f.cause()?;
        if cause.is_unexpected() {
            return self.unexpected.clone();
        }
        let status = cause.status()?;
        self.exact
            .get(&status)
            .or_else(|| self.classes.get(&(status / 100)))
            .cloned()
    }

    /// Adds entry `i`, `code` → `target`.
    fn add(&mut self, i: usize, code: &str, target: String) -> Result<(), InvalidRequest> {
        let lower = code.to_ascii_lowercase();
        if lower == "unexpectederror" {
            self.unexpected = Some(target);
        } else if let Ok(status) = code.parse::<u16>() {
            if !(100..=599).contains(&status) {
                return invalid(format!(
                    "errormapping[{i}].responsecode: not an HTTP status"
                ));
            }
            self.exact.insert(status, target);
        } else if lower.len() == 3
            && lower.ends_with("xx")
            && matches!(lower.as_bytes()[0], b'1'..=b'5')
        {
            self.classes
                .insert(u16::from(lower.as_bytes()[0] - b'0'), target);
        } else {
            return invalid(format!(
                "errormapping[{i}].responsecode must be a status (404), a class (5xx) or unexpectedError"
            ));
        }
        Ok(())
    }
}

impl RetryRequest {
    /// Whether this is a group-mode request reading `stream` (the callback stream is read
    /// in group mode only).
    pub fn reads_in_group_mode(&self, stream: &str) -> bool {
        matches!(&self.stream, Field::Given(s) if s == stream)
            && matches!(self.stream_ocid_to_retry, Field::Absent)
            && matches!(self.release_key, Field::Absent)
            && matches!(self.errormapping, Field::Absent)
    }

    /// The mode the request asks for, checked. `configured` tells the streams that may be read
    /// or mapped to (the configured error streams).
    ///
    /// # Errors
    /// An [`InvalidRequest`] naming the first field at fault.
    pub fn check(self, configured: impl Fn(&str) -> bool) -> Result<Mode, InvalidRequest> {
        if !matches!(self.release_key, Field::Absent) {
            self.release().map(Mode::Release)
        } else if !matches!(self.stream_ocid_to_retry, Field::Absent) {
            self.sample(configured).map(Mode::Sample)
        } else if !matches!(self.stream, Field::Absent) {
            self.group(configured).map(Mode::Group)
        } else {
            invalid("streamOCIDToRetry (sample mode) or stream (group mode) is required")
        }
    }

    fn sample(self, configured: impl Fn(&str) -> bool) -> Result<SampleRequest, InvalidRequest> {
        let Field::Given(stream) = self.stream_ocid_to_retry else {
            return invalid("streamOCIDToRetry must be a string");
        };
        if !configured(&stream) {
            return invalid("streamOCIDToRetry: only the configured error streams may be retried");
        }
        let count = match &self.no_of_messages_to_process {
            Field::Given(n) => n
                .int64()
                .filter(|n| (1..=i64::from(MAX_GET_LIMIT)).contains(n)),
            _ => None,
        };
        let Some(count) = count.and_then(|n| u32::try_from(n).ok()) else {
            return invalid(format!(
                "noOfMessagesToProcess must be a whole number from 1 to {MAX_GET_LIMIT}"
            ));
        };
        let after = match &self.read_after_offset {
            Field::Given(o) => o.int64().filter(|o| *o >= -1),
            _ => None,
        };
        let Some(after) = after else {
            return invalid(
                "readAfterOffset must be -1 (from the oldest message) or an offset (int64, 0 or more)",
            );
        };
        let partition = match &self.read_partition {
            Field::Absent => Some("0".to_owned()),
            Field::Given(p) => {
                Some(p.text()).filter(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            }
            Field::Null | Field::Wrong => None,
        };
        let Some(partition) = partition else {
            return invalid("readPartition must be a partition number");
        };
        let mapping = mapping_of(self.errormapping, configured)?;
        Ok(SampleRequest {
            stream,
            count,
            after,
            partition,
            mapping,
        })
    }

    fn release(self) -> Result<String, InvalidRequest> {
        let others = [
            matches!(self.stream_ocid_to_retry, Field::Absent),
            matches!(self.stream, Field::Absent),
            matches!(self.max, Field::Absent),
            matches!(self.group, Field::Absent),
            matches!(self.dry_run, Field::Absent),
        ];
        if others.contains(&false) {
            return invalid("releaseKey is a request of its own: send it without other fields");
        }
        match self.release_key {
            Field::Given(key) if !key.is_empty() && key.len() <= 1024 => Ok(key),
            _ => invalid("releaseKey must be a message key of 1 to 1024 characters"),
        }
    }

    fn group(self, configured: impl Fn(&str) -> bool) -> Result<GroupRequest, InvalidRequest> {
        let Field::Given(stream) = self.stream else {
            return invalid("stream must be a string");
        };
        if !configured(&stream) {
            return invalid("stream: only the configured error streams may be retried");
        }
        let group = match self.group {
            Field::Absent | Field::Null => None,
            Field::Given(g) if !g.is_empty() && g.len() <= 255 => Some(g),
            Field::Given(_) | Field::Wrong => {
                return invalid("group must be a consumer group name")
            }
        };
        let max = match &self.max {
            Field::Absent | Field::Null => Some(DEFAULT_GROUP_MAX),
            Field::Given(m) => m
                .int64()
                .filter(|m| (1..=i64::from(MAX_GET_LIMIT)).contains(m))
                .and_then(|m| u32::try_from(m).ok()),
            Field::Wrong => None,
        };
        let Some(max) = max else {
            return invalid(format!(
                "max must be a whole number from 1 to {MAX_GET_LIMIT}"
            ));
        };
        let dry_run = match self.dry_run {
            Field::Absent | Field::Null => false,
            Field::Given(b) => b,
            Field::Wrong => return invalid("dryRun must be true or false"),
        };
        Ok(GroupRequest {
            stream,
            group,
            max,
            dry_run,
        })
    }
}

/// `errormapping`, checked: every entry a code and a configured stream.
fn mapping_of(
    list: Field<Vec<Field<MappingEntry>>>,
    configured: impl Fn(&str) -> bool,
) -> Result<ErrorMapping, InvalidRequest> {
    let list = match list {
        Field::Absent => Vec::new(),
        Field::Given(list) => list,
        Field::Null | Field::Wrong => {
            return invalid("errormapping must be an array of {responsecode, stream}")
        }
    };
    let mut mapping = ErrorMapping::default();
    for (i, entry) in list.into_iter().enumerate() {
        let entry = match entry {
            Field::Given(entry) => entry,
            Field::Wrong => {
                return invalid(format!(
                    "errormapping[{i}] must be {{responsecode, stream}} and nothing else"
                ))
            }
            Field::Absent | Field::Null => MappingEntry::default(),
        };
        let (Field::Given(code), Field::Given(target)) = (entry.responsecode, entry.stream) else {
            return invalid(format!(
                "errormapping[{i}] needs a responsecode and a stream"
            ));
        };
        if !configured(&target) {
            return invalid(format!(
                "errormapping[{i}].stream: only the configured error streams may be routed to"
            ));
        }
        mapping.add(i, &code.text(), target)?;
    }
    Ok(mapping)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn scalar(json: &str) -> Scalar {
        serde_json::from_str(json).unwrap()
    }

    fn check(body: &str) -> Result<Mode, InvalidRequest> {
        parse(body.as_bytes()).and_then(|r| r.check(|s| s.starts_with("ocid1.stream.error")))
    }

    fn refused(body: &str) -> String {
        check(body).unwrap_err().0
    }

    #[test]
    fn offsets_are_int64() {
        assert_eq!(
            scalar("9007199254740993").int64(),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(scalar(r#""4294967296""#).int64(), Some(4_294_967_296));
        assert_eq!(scalar("1.5").int64(), None);
    }

    #[test]
    fn the_sample_request_reads_numbers_or_strings() {
        let Mode::Sample(s) = check(
            r#"{"streamOCIDToRetry":"ocid1.stream.error.a","noOfMessagesToProcess":"5",
                "readAfterOffset":4294967296,"readPartition":0,
                "errormapping":[{"responsecode":404,"stream":"ocid1.stream.error.b"},
                                {"responsecode":" 5XX ","stream":"ocid1.stream.error.c"},
                                {"responsecode":"unexpectedError","stream":"ocid1.stream.error.d"}]}"#,
        )
        .unwrap() else {
            panic!("not sample mode")
        };
        assert_eq!(
            (s.count, s.after, s.partition.as_str()),
            (5, 4_294_967_296, "0")
        );
        assert_eq!(
            s.mapping.exact.get(&404).map(String::as_str),
            Some("ocid1.stream.error.b")
        );
        assert_eq!(
            s.mapping.classes.get(&5).map(String::as_str),
            Some("ocid1.stream.error.c")
        );
        assert_eq!(
            s.mapping.unexpected.as_deref(),
            Some("ocid1.stream.error.d")
        );
        let Mode::Sample(s) = check(
            r#"{"streamOCIDToRetry":"ocid1.stream.error.a","noOfMessagesToProcess":1,"readAfterOffset":-1}"#,
        )
        .unwrap() else {
            panic!("not sample mode")
        };
        assert_eq!(s.partition, "0");
    }

    #[test]
    fn group_mode_has_defaults_and_null_means_default() {
        let Mode::Group(g) =
            check(r#"{"stream":"ocid1.stream.error.a","group":null,"max":null,"dryRun":null}"#)
                .unwrap()
        else {
            panic!("not group mode")
        };
        assert_eq!(
            (g.group, g.max, g.dry_run),
            (None, DEFAULT_GROUP_MAX, false)
        );
    }

    #[test]
    fn the_body_must_be_declared_json() {
        let through_gateway = |ct: Option<&str>| {
            let mut headers = http::HeaderMap::new();
            if let Some(ct) = ct {
                headers.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            }
            let mut ctx = fdk::Context::for_test("c");
            ctx.http = Some(fdk::HttpRequest::new(
                http::Method::POST,
                "/stream/retry",
                headers,
            ));
            declared_json(&ctx)
        };
        assert!(through_gateway(Some("application/json")));
        assert!(through_gateway(Some("Application/JSON; charset=utf-8")));
        assert!(!through_gateway(Some("text/plain")));
        assert!(!through_gateway(Some("application/jsonx")));
        assert!(!through_gateway(None));
        let mut plain = fdk::Context::for_test("c");
        assert!(
            declared_json(&plain),
            "a plain invoke may leave the type out"
        );
        plain
            .headers
            .insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!declared_json(&plain));
    }

    #[test]
    fn each_problem_names_its_field() {
        let sample_with = |count: &str, after: &str, extra: &str| {
            format!(
                r#"{{"streamOCIDToRetry":"ocid1.stream.error.a","noOfMessagesToProcess":{count},"readAfterOffset":{after}{extra}}}"#
            )
        };
        let sample = |extra: &str| sample_with("5", "-1", extra);
        for (body, message) in [
            (
                r#"{"streamOCIDToRetry":5}"#.to_owned(),
                "streamOCIDToRetry must be a string",
            ),
            (
                r#"{"streamOCIDToRetry":null}"#.to_owned(),
                "streamOCIDToRetry must be a string",
            ),
            (
                r#"{"streamOCIDToRetry":"ocid1.stream.data"}"#.to_owned(),
                "streamOCIDToRetry: only",
            ),
            (
                sample_with("true", "-1", ""),
                "noOfMessagesToProcess must be",
            ),
            (sample_with("5", r#""x""#, ""), "readAfterOffset must be"),
            (sample(r#","readPartition":null"#), "readPartition must be"),
            (sample(r#","readPartition":"-1""#), "readPartition must be"),
            (
                sample(r#","errormapping":{}"#),
                "errormapping must be an array",
            ),
            (
                sample(r#","errormapping":[{"stream":"ocid1.stream.error.b"}]"#),
                "errormapping[0] needs",
            ),
            (sample(r#","errormapping":[5]"#), "errormapping[0] must be"),
            (
                sample(r#","errormapping":[{"responsecode":600,"stream":"ocid1.stream.error.b"}]"#),
                "errormapping[0].responsecode: not an HTTP status",
            ),
            (r#"{"stream":["a"]}"#.to_owned(), "stream must be a string"),
            (
                r#"{"stream":"ocid1.stream.error.a","group":""}"#.to_owned(),
                "group must be",
            ),
            (
                r#"{"stream":"ocid1.stream.error.a","max":10001}"#.to_owned(),
                "max must be",
            ),
            (
                r#"{"stream":"ocid1.stream.error.a","dryRun":"yes"}"#.to_owned(),
                "dryRun must be",
            ),
            (
                r#"{"nothing":1}"#.to_owned(),
                "unknown field `nothing`, expected one of `streamOCIDToRetry`",
            ),
            (
                sample(r#","readAfterOffset":0"#),
                "duplicate field `readAfterOffset`",
            ),
            (
                r#"{}"#.to_owned(),
                "streamOCIDToRetry (sample mode) or stream (group mode)",
            ),
            ("[1]".to_owned(), "the body must be a JSON object"),
            ("{not json".to_owned(), "the body is not valid JSON"),
        ] {
            let got = refused(&body);
            assert!(got.contains(message), "{body}: {got}");
        }
    }

    #[test]
    fn the_mapping_picks_by_status_then_class_and_never_keeps_the_exhausted() {
        use datasync_core::classify::ErrorClass;
        use datasync_core::deliver::{Cause, Fate, Item};
        let Mode::Sample(s) = check(
            r#"{"streamOCIDToRetry":"ocid1.stream.error.a","noOfMessagesToProcess":1,"readAfterOffset":-1,
                "errormapping":[{"responsecode":"404","stream":"ocid1.stream.error.404"},
                                {"responsecode":"4xx","stream":"ocid1.stream.error.4xx"}]}"#,
        )
        .unwrap() else {
            panic!("not sample mode")
        };
        let failed = |failure: Failure| Outcome {
            item: Item::decode("s", "0", 0, None, bytes::Bytes::from_static(b"{}")),
            fate: Fate::Failed(failure),
        };
        let answered = |status: u16| Cause::Answered {
            status,
            detail: String::new(),
        };
        let pick = |failure: Failure| s.mapping.pick(&failed(failure));
        assert_eq!(
            pick(Failure::permanent(ErrorClass::ClientError, answered(404))).as_deref(),
            Some("ocid1.stream.error.404")
        );
        assert_eq!(
            pick(Failure::permanent(ErrorClass::ClientError, answered(409))).as_deref(),
            Some("ocid1.stream.error.4xx")
        );
        assert_eq!(
            pick(Failure::permanent(ErrorClass::ClientError, answered(500))),
            None
        );
        assert_eq!(
            pick(Failure::exhausted(
                ErrorClass::RequestTimeout,
                answered(408)
            )),
            None
        );
        // No unexpectedError mapping: a transport failure goes to its class's stream.
        let unreachable = Cause::Unreachable {
            detail: String::new(),
        };
        assert_eq!(
            pick(Failure::permanent(ErrorClass::NotAllowed, unreachable)),
            None
        );
        assert_eq!(pick(Failure::held(0)), None);
    }
}
