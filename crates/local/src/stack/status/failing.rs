//! What is failing now and the dead letters, read from the error streams for the status page:
//! the messages the retry group has not consumed yet (or every retained one of a stream no
//! group reads) and the newest dead letters, each with the archive object that holds it.
//!
//! Only what an operator needs to find a message is shown: its id, key, target host (never the
//! URL's path or query, which may carry a token), class, HTTP status, attempts and next
//! attempt; never the payload, header values or the error's detail text (a target's answer may
//! quote what it was sent).

use datasync_core::oci::models::{ListObjects, ObjectSummary};
use serde::{Deserialize, Serialize};

use super::Sources;
use crate::emulator::{StoredMessage, StreamStats, NAMESPACE};
use crate::stack::streams::{StreamRole, DEAD_LETTER, ROLES};

/// The most rows of each table (the document stays small however much fails).
pub const MAX_ROWS: usize = 50;

/// The messages waiting in the error streams now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailingNow {
    /// Messages pending now in every error stream but the dead-letter one (all of them, not
    /// only the rows below).
    pub pending: i64,
    /// The oldest of them, at most [`MAX_ROWS`].
    pub rows: Vec<FailingRow>,
}

/// What both tables show of a failed message (flattened into each row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shown {
    /// The message id (`Idempotency-Key`); `None` for a value that is not a datasync message.
    pub id: Option<String>,
    /// Its stream key.
    pub key: Option<String>,
    /// `host[:port]` of its target.
    pub target_host: Option<String>,
    /// The class of its last failure.
    pub class: Option<String>,
    /// The HTTP status of its last failure, when the target answered.
    pub status: Option<u16>,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// One message waiting in an error stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailingRow {
    /// The message.
    #[serde(flatten)]
    pub message: Shown,
    /// Its earliest next attempt, RFC 3339.
    pub next_attempt: Option<String>,
    /// The error stream it waits in.
    pub stream: String,
    /// Its partition and offset there.
    pub partition: i64,
    /// Its offset.
    pub offset: i64,
    /// When it was appended there, RFC 3339.
    pub appended_at: String,
}

/// The dead-letter stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// Dead letters the stream retains (all of them, not only the rows below).
    pub retained: i64,
    /// The newest, newest first, at most [`MAX_ROWS`].
    pub rows: Vec<DeadLetterRow>,
}

/// One dead letter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRow {
    /// The message.
    #[serde(flatten)]
    pub message: Shown,
    /// When it was dead-lettered, RFC 3339.
    pub dead_lettered_at: String,
    /// Its partition in the dead-letter stream.
    pub partition: i64,
    /// Its offset there.
    pub offset: i64,
    /// The archive object holding it; `None` until the archive connector has written it.
    pub archive_object: Option<String>,
}

/// The fields of an envelope the tables show (the payload and headers are skipped unread).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    target_rest_api: Option<String>,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    last_error: Option<ErrorSummary>,
    #[serde(default)]
    not_before: Option<String>,
}

/// A last error without its detail text.
#[derive(Deserialize)]
struct ErrorSummary {
    class: String,
    #[serde(default)]
    status: Option<u16>,
}

/// What a stored message shows, and its earliest next attempt.
fn shown(m: &StoredMessage) -> (Shown, Option<String>) {
    let key = m
        .key
        .as_ref()
        .map(|k| String::from_utf8_lossy(k).into_owned());
    let Ok(s) = serde_json::from_slice::<Summary>(&m.value) else {
        let unknown = Shown {
            key,
            ..Shown::default()
        };
        return (unknown, None);
    };
    let shown = Shown {
        id: s.id,
        key,
        target_host: s.target_rest_api.as_deref().and_then(target_host),
        class: s.last_error.as_ref().map(|e| e.class.clone()),
        status: s.last_error.and_then(|e| e.status),
        attempts: s.attempt,
    };
    (shown, s.not_before)
}

/// `host[:port]` of a target URL, as the delivery's per-host limits key it.
pub fn target_host(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// The role of the stream named `name`.
fn role_of(s: &Sources, name: &str) -> Option<&'static StreamRole> {
    ROLES.iter().find(|r| r.stream_name(&s.name_prefix) == name)
}

/// Per partition, the first offset no consumer group has consumed (the oldest retained one
/// when no group reads the stream): where the pending messages start.
fn pending_from(st: &StreamStats) -> Vec<(i64, i64, i64)> {
    st.partitions
        .iter()
        .map(|&(p, lo, hi)| {
            let from = st
                .groups
                .iter()
                .map(|(_, parts)| {
                    parts
                        .iter()
                        .find(|(gp, _, _)| *gp == p)
                        .map_or(0, |(_, _, c)| c.map_or(0, |c| c + 1))
                })
                .min()
                .unwrap_or(lo);
            (p, from.max(lo), hi)
        })
        .collect()
}

/// What waits in one error stream (not the dead-letter one).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ErrorBacklog {
    /// The stream's name.
    pub stream: String,
    /// Whether the retry schedule replays it.
    pub retried: bool,
    /// Messages pending now.
    pub pending: i64,
    /// The oldest one's age in seconds (one decimal).
    pub oldest_age: Option<f64>,
}

/// The error streams but the dead-letter one, with their roles.
fn error_streams<'a>(
    s: &'a Sources,
    stats: &'a [StreamStats],
) -> impl Iterator<Item = (&'a StreamStats, &'static StreamRole)> + 'a {
    stats.iter().filter_map(|st| {
        let role = role_of(s, &st.name)?;
        (role.error_stream && role.suffix != DEAD_LETTER.suffix).then_some((st, role))
    })
}

/// What waits in each error stream but the dead-letter one: how many, and how old the oldest.
pub(super) async fn error_backlogs(
    s: &Sources,
    stats: &[StreamStats],
    now_ms: i64,
) -> Vec<ErrorBacklog> {
    let mut out = Vec::new();
    for (st, role) in error_streams(s, stats) {
        let ranges = pending_from(st);
        let pending = ranges.iter().map(|(_, from, hi)| (hi - from).max(0)).sum();
        let firsts: Vec<(i64, i64)> = ranges
            .iter()
            .filter(|(_, from, hi)| from < hi)
            .map(|&(p, from, _)| (p, from))
            .collect();
        let oldest = if firsts.is_empty() {
            None
        } else {
            let times = s.emulator.append_times(&st.id, firsts).await;
            times.unwrap_or_default().into_iter().flatten().min()
        };
        out.push(ErrorBacklog {
            stream: st.name.clone(),
            retried: role.scheduled_retry,
            pending,
            oldest_age: oldest.map(|ts| ((now_ms - ts).max(0) as f64 / 100.0).round() / 10.0),
        });
    }
    out
}

/// The messages pending in every error stream but the dead-letter one, oldest first per
/// stream.
pub(super) async fn failing_now(s: &Sources, stats: &[StreamStats]) -> FailingNow {
    let mut out = FailingNow::default();
    for (st, _) in error_streams(s, stats) {
        for (p, from, hi) in pending_from(st) {
            out.pending += (hi - from).max(0);
            let room = MAX_ROWS.saturating_sub(out.rows.len());
            if room == 0 || from >= hi {
                continue;
            }
            let read = s.emulator.read_messages(&st.id, p, from, room, false).await;
            for m in read.unwrap_or_default() {
                let (message, next_attempt) = shown(&m);
                out.rows.push(FailingRow {
                    message,
                    next_attempt,
                    stream: st.name.clone(),
                    partition: m.partition,
                    offset: m.offset,
                    appended_at: rfc3339_ms(m.appended_ms),
                });
            }
        }
    }
    out
}

/// The newest dead letters, each with its archive object.
pub(super) async fn dead_letters(s: &Sources, stats: &[StreamStats]) -> DeadLetters {
    let name = DEAD_LETTER.stream_name(&s.name_prefix);
    let Some(st) = stats.iter().find(|st| st.name == name) else {
        return DeadLetters::default();
    };
    let mut out = DeadLetters::default();
    let mut messages = Vec::new();
    for &(p, lo, hi) in &st.partitions {
        out.retained += hi - lo;
        if hi > lo {
            let read = s
                .emulator
                .read_messages(&st.id, p, lo, MAX_ROWS, true)
                .await;
            messages.extend(read.unwrap_or_default());
        }
    }
    messages.sort_by_key(|m| std::cmp::Reverse(m.appended_ms));
    messages.truncate(MAX_ROWS);
    let objects = archive_objects(s, &messages).await;
    for m in messages {
        out.rows.push(DeadLetterRow {
            message: shown(&m).0,
            dead_lettered_at: rfc3339_ms(m.appended_ms),
            partition: m.partition,
            offset: m.offset,
            archive_object: holding(&objects, m.partition, m.offset),
        });
    }
    out
}

/// The dead-letter archive prefix (`terraform/connectors.tf`'s).
fn archive_prefix() -> &'static str {
    DEAD_LETTER.archive.map_or("dead-letter", |a| a.prefix)
}

/// The archive objects that may hold `messages`: per partition, listed from a little before
/// the oldest offset shown (object names sort by their first offset).
async fn archive_objects(s: &Sources, messages: &[StoredMessage]) -> Vec<ObjectSummary> {
    let mut partitions: Vec<(i64, i64)> = Vec::new();
    for m in messages {
        match partitions.iter_mut().find(|(p, _)| *p == m.partition) {
            Some((_, min)) => *min = (*min).min(m.offset),
            None => partitions.push((m.partition, m.offset)),
        }
    }
    let prefix = archive_prefix();
    let mut out = Vec::new();
    for (p, min) in partitions {
        // An object holds a connector batch (at most 500 messages by default): starting the
        // listing 10,000 offsets early finds the object that holds `min`.
        let start = format!("{prefix}/{p}/{:020}", (min - 10_000).max(0));
        let path = format!(
            "/n/{NAMESPACE}/b/{}/o?prefix={prefix}/{p}/&start={start}&limit=1000",
            s.bucket
        );
        if let Ok(a) = s.signed.get(&path).await {
            if a.status.is_success() {
                if let Ok(list) = a.json::<ListObjects>() {
                    out.extend(list.objects);
                }
            }
        }
    }
    out
}

/// The object among `objects` (`PREFIX/P/FIRST-LAST.jsonl`) that holds `offset` of
/// `partition`.
fn holding(objects: &[ObjectSummary], partition: i64, offset: i64) -> Option<String> {
    let dir = format!("{}/{partition}/", archive_prefix());
    objects
        .iter()
        .find(|o| {
            let Some(range) = o
                .name
                .strip_prefix(&dir)
                .and_then(|r| r.strip_suffix(".jsonl"))
            else {
                return false;
            };
            let Some((first, last)) = range.split_once('-') else {
                return false;
            };
            matches!(
                (first.parse::<i64>(), last.parse::<i64>()),
                (Ok(f), Ok(l)) if (f..=l).contains(&offset)
            )
        })
        .map(|o| o.name.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn stored(value: &str) -> StoredMessage {
        StoredMessage {
            partition: 0,
            offset: 3,
            appended_ms: 1_764_900_000_123,
            key: Some(b"k1".to_vec()),
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_row_names_the_message_never_its_payload_path_or_detail() {
        let (v, not_before) = shown(&stored(
            r#"{"targetRestApi":"https://API.example.com:8443/orders?token=t0k3n","targetRestApiOperation":"POST",
                "targetRestApiPayload":{"card":"4111"},"targetRestApiHeaders":[{"key":"x","value":"s3cr3t"}],
                "id":"01a","attempt":2,"lastError":{"class":"serviceUnavailable","status":503,"detail":"said s3cr3t"},
                "notBefore":"2026-12-05T10:00:00Z"}"#,
        ));
        assert_eq!(v.id.as_deref(), Some("01a"));
        assert_eq!(v.key.as_deref(), Some("k1"));
        assert_eq!(v.target_host.as_deref(), Some("api.example.com:8443"));
        assert_eq!(v.class.as_deref(), Some("serviceUnavailable"));
        assert_eq!(v.status, Some(503));
        assert_eq!(v.attempts, 2);
        assert_eq!(not_before.as_deref(), Some("2026-12-05T10:00:00Z"));
        // The row as the page reads it: flat, and nothing of the payload, path or detail.
        let row = serde_json::to_string(&FailingRow {
            message: v,
            next_attempt: not_before,
            ..FailingRow::default()
        })
        .unwrap();
        assert!(
            row.contains(r#""id":"01a","key":"k1","target_host":"api.example.com:8443""#),
            "{row}"
        );
        for secret in ["t0k3n", "4111", "s3cr3t", "/orders"] {
            assert!(!row.contains(secret), "{row}");
        }
        // A value that is not a datasync message still shows its key.
        let (v, _) = shown(&stored("not json"));
        assert_eq!((v.id, v.key.as_deref()), (None, Some("k1")));
        assert_eq!(rfc3339_ms(1_764_900_000_123), "2025-12-05T02:00:00.123Z");
    }

    #[test]
    fn pending_starts_after_the_group_and_the_archive_object_is_found_by_range() {
        let st = StreamStats {
            id: "s".into(),
            name: "datasync-errors-default".into(),
            partitions: vec![(0, 2, 10), (1, 0, 4)],
            groups: vec![("g".into(), vec![(0, 6, Some(5))])],
        };
        // Partition 0 consumed up to 5; partition 1 never committed by the group.
        assert_eq!(pending_from(&st), vec![(0, 6, 10), (1, 0, 4)]);
        let no_group = StreamStats {
            groups: vec![],
            ..st
        };
        assert_eq!(pending_from(&no_group), vec![(0, 2, 10), (1, 0, 4)]);
        let o = |name: &str| ObjectSummary {
            name: name.into(),
            size: None,
            etag: None,
            time_created: None,
        };
        let objects = [
            o("dead-letter/0/00000000000000000000-00000000000000000004.jsonl"),
            o("dead-letter/0/00000000000000000005-00000000000000000009.jsonl"),
            o("dead-letter/1/00000000000000000000-00000000000000000009.jsonl"),
        ];
        assert_eq!(
            holding(&objects, 0, 7).as_deref(),
            Some("dead-letter/0/00000000000000000005-00000000000000000009.jsonl")
        );
        assert_eq!(holding(&objects, 0, 10), None);
    }
}
