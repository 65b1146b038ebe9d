//! A message's or a key's timeline from a log searched through Logging Search: the same code
//! for OCI Logging (`datasync trace --oci`) and for the local emulator.
//!
//! The query is `search "<scope>" | where data.message = '*"id":"<ID>"*' | sort by datetime
//! asc` (or `"key":"<KEY>"`): a function's output line is an invoke log entry's
//! `data.message`, and a trace line written by the JSON log format holds its fields as
//! `"name":"value"`. Each line found is read back as a [`TraceLine`] and kept only when its
//! id (or key) is exactly the one asked for.

use std::time::{Duration, SystemTime};

use crate::message::rfc3339;
use crate::oci::client::OciError;
use crate::oci::logging::{LogSearchClient, SearchLogsDetails};

use super::{Timeline, TraceEntry, TraceLine};

/// The longest span one SearchLogs call may cover (OCI's limit).
pub const MAX_WINDOW: Duration = Duration::from_secs(14 * 86_400);
/// Entries per page asked for.
const PAGE: u32 = 1000;
/// The most entries a timeline holds (a key with more shows its first ones).
pub const MAX_ENTRIES: usize = 10_000;

/// What a timeline is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One message, by id.
    Id(String),
    /// Every message of a stream key.
    Key(String),
}

/// Why a timeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceSearchError {
    /// The id or key holds characters a search cannot name exactly.
    #[error("{0}")]
    Unsearchable(String),
    /// SearchLogs failed.
    #[error("searching the logs: {0}")]
    Search(#[from] OciError),
}

/// A search: where, what, and over which time.
#[derive(Debug, Clone)]
pub struct TraceSearch {
    /// The log scopes (`<compartment>/<log group>/<log>` or log OCIDs).
    pub scopes: Vec<String>,
    /// The message or key.
    pub subject: Subject,
    /// From.
    pub since: SystemTime,
    /// To.
    pub until: SystemTime,
}

/// The query for `subject` in `scopes`.
///
/// # Errors
/// [`TraceSearchError::Unsearchable`] when the id or key is empty or holds a character that
/// JSON escapes (`"`, `\`, control characters) or a `*`.
pub fn query(scopes: &[String], subject: &Subject) -> Result<String, TraceSearchError> {
    let (name, value) = match subject {
        Subject::Id(v) => ("id", v),
        Subject::Key(v) => ("key", v),
    };
    let bad = |c: char| c == '"' || c == '\\' || c == '*' || c.is_control();
    if value.is_empty() || value.chars().any(bad) || value.chars().count() > super::MAX_FIELD_CHARS
    {
        return Err(TraceSearchError::Unsearchable(format!(
            "the {name} must be 1 to {} characters without quotes, backslashes, `*` or control characters",
            super::MAX_FIELD_CHARS
        )));
    }
    let scopes = scopes
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let value = value.replace('\'', "''");
    Ok(format!(
        "search {scopes} | where data.message = '*\"{name}\":\"{value}\"*' | sort by datetime asc"
    ))
}

/// A duration written `<n>s`, `<n>m`, `<n>h` or `<n>d` (`30m`, `2h`, `7d`).
///
/// # Errors
/// A message naming the form expected.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30s, 15m, 2h or 7d");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(bad)?;
    let n: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| bad())?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60).ok_or_else(bad)?,
        'h' => n.checked_mul(3600).ok_or_else(bad)?,
        'd' => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 || secs > 366 * 86_400 {
        return Err(format!("{text:?}: give a duration from 1s to 366d"));
    }
    Ok(Duration::from_secs(secs))
}

/// The windows of at most [`MAX_WINDOW`] covering `since..until`, oldest first.
pub fn windows(since: SystemTime, until: SystemTime) -> Vec<(SystemTime, SystemTime)> {
    let mut out = Vec::new();
    let mut from = since;
    while from < until {
        let to = (from + MAX_WINDOW).min(until);
        out.push((from, to));
        from = to;
    }
    out
}

/// Whether `entry` is about `subject` exactly.
fn is_about(entry: &TraceEntry, subject: &Subject) -> bool {
    match subject {
        Subject::Id(id) => entry.event.id == *id,
        Subject::Key(key) => entry.event.key.as_deref() == Some(key),
    }
}

/// The timeline of `search`, oldest first, read page by page.
///
/// # Errors
/// [`TraceSearchError`] when the subject cannot be searched or a search fails.
pub async fn timeline(
    client: &LogSearchClient,
    search: &TraceSearch,
) -> Result<Timeline, TraceSearchError> {
    let search_query = query(&search.scopes, &search.subject)?;
    let mut entries = Vec::new();
    for (from, to) in windows(search.since, search.until) {
        let details = SearchLogsDetails {
            time_start: rfc3339(from),
            time_end: rfc3339(to),
            search_query: search_query.clone(),
            is_return_field_info: false,
        };
        let mut page: Option<String> = None;
        loop {
            let found = client
                .search_logs(&details, Some(PAGE), page.as_deref())
                .await?;
            for result in found.results {
                let Some(line) = result
                    .data
                    .log_content
                    .data
                    .message
                    .as_deref()
                    .and_then(TraceLine::parse)
                else {
                    continue;
                };
                let entry = TraceEntry {
                    time: line.timestamp,
                    event: line.fields,
                };
                if is_about(&entry, &search.subject) {
                    entries.push(entry);
                }
            }
            if entries.len() >= MAX_ENTRIES {
                entries.truncate(MAX_ENTRIES);
                return Ok(Timeline { entries });
            }
            match found.next_page {
                Some(next) => page = Some(next),
                None => break,
            }
        }
    }
    // Lines of one millisecond may come back in any order: keep the order they were written.
    entries.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(Timeline { entries })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn queries_name_the_field_exactly_and_refuse_what_they_cannot() {
        let scopes = vec!["c/g/l".to_owned()];
        assert_eq!(
            query(&scopes, &Subject::Id("m1".into())).unwrap(),
            r#"search "c/g/l" | where data.message = '*"id":"m1"*' | sort by datetime asc"#
        );
        assert_eq!(
            query(&scopes, &Subject::Key("o'k".into())).unwrap(),
            r#"search "c/g/l" | where data.message = '*"key":"o''k"*' | sort by datetime asc"#
        );
        for bad in ["", "a\"b", "a*", "a\\b", "a\nb"] {
            assert!(
                query(&scopes, &Subject::Key(bad.into())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_since("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_since("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_since("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_since("7d").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "h", "2", "2w", "0s", "-1h", "999d", "1é"] {
            assert!(parse_since(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn long_spans_are_cut_into_fourteen_day_windows() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let w = windows(t0, t0 + Duration::from_secs(30 * 86_400));
        assert_eq!(w.len(), 3);
        assert_eq!(w[0], (t0, t0 + MAX_WINDOW));
        assert_eq!(w[2].1, t0 + Duration::from_secs(30 * 86_400));
        assert!(windows(t0, t0).is_empty());
    }
}
