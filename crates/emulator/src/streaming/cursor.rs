//! Cursors: the state a cursor carries, sealed with the data key so it is opaque and cannot
//! be forged, and CreateCursor (partition cursors; group cursors are in `groups`).
//!
//! The sealed state's JSON keeps one-letter names (`s`, `e`, `p`, `g` and, in a group cursor,
//! `n`, `i`, `r`, `o`, `c`, `t`): a cursor travels in every GetMessages URL and answer, and
//! cursors issued before a restart stay valid after it.

use std::sync::Arc;

use datasync_core::oci::models;
use serde::{Deserialize, Serialize};

use super::limits::CURSOR_TTL_MS;
use super::offsets::{earliest_offset, next_offset, offset_at_time, parse_partition};
use super::streams::{stream, StreamRow};
use crate::clock::{now_ms, parse_time_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;

/// The state a cursor carries, sealed with the data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CursorState {
    /// The stream's internal id.
    #[serde(rename = "s")]
    pub stream: i64,
    /// When the cursor expires, ms since the epoch.
    #[serde(rename = "e")]
    pub expires_ms: i64,
    /// A partition cursor: the partition and its next offset.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<(i64, i64)>,
    /// A group cursor.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupCursor>,
}

/// What a group cursor carries besides the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct GroupCursor {
    /// The group's name.
    #[serde(rename = "n")]
    pub group: String,
    /// The instance's name.
    #[serde(rename = "i")]
    pub instance: String,
    /// The group's generation when issued (UpdateGroup bumps it).
    #[serde(rename = "r")]
    pub generation: i64,
    /// The next offset per held partition.
    #[serde(rename = "o")]
    pub offsets: Vec<(i64, i64)>,
    /// `commitOnGet`: GetMessages commits what the previous GetMessages returned.
    #[serde(rename = "c")]
    pub commit_on_get: bool,
    /// `timeoutInMs`: how long the instance's reservations last without a call.
    #[serde(rename = "t")]
    pub timeout_ms: i64,
}

impl CursorState {
    /// A fresh cursor on `stream` (valid for [`CURSOR_TTL_MS`]) at `partition`'s `offset`.
    pub fn at_partition(stream: i64, partition: i64, offset: i64) -> Self {
        Self {
            stream,
            expires_ms: now_ms() + CURSOR_TTL_MS,
            partition: Some((partition, offset)),
            group: None,
        }
    }

    /// A fresh cursor on `stream` (valid for [`CURSOR_TTL_MS`]) for `group`.
    pub fn for_group(stream: i64, group: GroupCursor) -> Self {
        Self {
            stream,
            expires_ms: now_ms() + CURSOR_TTL_MS,
            partition: None,
            group: Some(group),
        }
    }
}

/// Seals `state` into the opaque text clients carry.
pub(super) fn seal_cursor(inner: &Inner, state: &CursorState) -> String {
    inner
        .key
        .seal_text(&serde_json::to_vec(state).unwrap_or_default())
}

/// Opens a cursor of `stream`: 400 when it was altered, is not ours, belongs to another
/// stream or has expired.
pub(super) fn open_cursor(
    inner: &Inner,
    stream: &StreamRow,
    text: &str,
) -> Result<CursorState, ApiError> {
    let bad = || ApiError::invalid("the cursor is invalid; create a new one");
    let plain = inner.key.open_text(text).ok_or_else(bad)?;
    let state: CursorState = serde_json::from_slice(&plain).map_err(|_| bad())?;
    if state.stream != stream.id {
        return Err(ApiError::invalid("the cursor belongs to another stream"));
    }
    if state.expires_ms <= now_ms() {
        return Err(ApiError::invalid(
            "the cursor has expired; create a new one",
        ));
    }
    Ok(state)
}

/// The time an `AT_TIME` cursor starts at (in ms), which then must be given; None for the other
/// cursor types.
pub(super) fn cursor_time(at_time: bool, time: Option<&str>) -> Result<Option<i64>, ApiError> {
    if !at_time {
        return Ok(None);
    }
    let time = time.ok_or_else(|| ApiError::missing("time"))?;
    parse_time_ms(time).map(Some)
}

/// CreateCursor.
pub async fn create_cursor(
    inner: &Arc<Inner>,
    ocid: &str,
    body: &[u8],
) -> Result<models::Cursor, ApiError> {
    let details: models::CreateCursorDetails = parse_json(body)?;
    let row = stream(inner, ocid).await?;
    let part = parse_partition(&details.partition, row.partitions)?;
    let sid = row.id;
    let time = cursor_time(
        details.cursor_type == models::CursorType::AtTime,
        details.time.as_deref(),
    )?;
    let offset = match details.cursor_type {
        models::CursorType::AtOffset | models::CursorType::AfterOffset => {
            let o = details.offset.ok_or_else(|| ApiError::missing("offset"))?;
            if o < 0 {
                return Err(ApiError::invalid("offset must not be negative"));
            }
            Some(if details.cursor_type == models::CursorType::AfterOffset {
                o + 1
            } else {
                o
            })
        }
        _ => None,
    };
    let kind = details.cursor_type;
    let position = inner
        .store
        .read(move |conn| {
            let next = next_offset(conn, sid, part)?;
            match kind {
                models::CursorType::Latest => Ok(next),
                models::CursorType::TrimHorizon => earliest_offset(conn, sid, part),
                models::CursorType::AtTime => offset_at_time(conn, sid, part, time.unwrap_or(0)),
                models::CursorType::AtOffset | models::CursorType::AfterOffset => {
                    let o = offset.unwrap_or(0);
                    if o > next {
                        return Err(ApiError::invalid(format!(
                            "offset {o} is beyond the end of partition {part} (next offset {next})"
                        )));
                    }
                    Ok(o.max(earliest_offset(conn, sid, part)?))
                }
            }
        })
        .await?;
    Ok(models::Cursor {
        value: seal_cursor(inner, &CursorState::at_partition(sid, part, position)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn group() -> GroupCursor {
        GroupCursor {
            group: "g1".into(),
            instance: "i1".into(),
            generation: 3,
            offsets: vec![(0, 10), (2, 7)],
            commit_on_get: true,
            timeout_ms: 30_000,
        }
    }

    /// The sealed JSON keeps its one-letter names, so cursors issued before a restart (or by
    /// an earlier version) open, and new ones stay short.
    #[test]
    fn the_sealed_form_keeps_its_short_names() {
        let partition = CursorState {
            stream: 5,
            expires_ms: 1_700_000_000_000,
            partition: Some((1, 42)),
            group: None,
        };
        let text = serde_json::to_string(&partition).unwrap();
        assert_eq!(text, r#"{"s":5,"e":1700000000000,"p":[1,42]}"#);
        assert_eq!(
            serde_json::from_str::<CursorState>(&text).unwrap(),
            partition
        );

        let grouped = CursorState {
            stream: 5,
            expires_ms: 1_700_000_000_000,
            partition: None,
            group: Some(group()),
        };
        let text = serde_json::to_string(&grouped).unwrap();
        assert_eq!(
            text,
            r#"{"s":5,"e":1700000000000,"g":{"n":"g1","i":"i1","r":3,"o":[[0,10],[2,7]],"c":true,"t":30000}}"#
        );
        assert_eq!(serde_json::from_str::<CursorState>(&text).unwrap(), grouped);
    }

    #[test]
    fn fresh_cursors_expire_after_the_ttl() {
        let before = now_ms();
        let state = CursorState::for_group(1, group());
        assert!(state.expires_ms >= before + CURSOR_TTL_MS);
        assert!(state.expires_ms <= now_ms() + CURSOR_TTL_MS);
        assert_eq!(state.group, Some(group()));
        assert_eq!(CursorState::at_partition(1, 2, 3).partition, Some((2, 3)));
    }
}
