//! Positions in a partition: the next offset, the oldest retained one, the first at a time.

use rusqlite::{Connection, OptionalExtension as _};

use crate::error::ApiError;
use crate::store::{message_rowid, rowid_offset, MAX_OFFSET};

/// The next offset of a partition: where its next message goes.
pub(super) fn next_offset(conn: &Connection, sid: i64, part: i64) -> Result<i64, ApiError> {
    Ok(conn
        .prepare_cached("SELECT next_off FROM partitions WHERE stream=?1 AND part=?2")?
        .query_row([sid, part], |r| r.get(0))?)
}

/// The oldest retained offset of a partition (its next offset when empty).
pub(super) fn earliest_offset(conn: &Connection, sid: i64, part: i64) -> Result<i64, ApiError> {
    let first: Option<i64> = conn
        .prepare_cached("SELECT id FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT 1")?
        .query_row(
            [
                message_rowid(sid, part, 0),
                message_rowid(sid, part, MAX_OFFSET),
            ],
            |r| r.get(0),
        )
        .optional()?;
    match first {
        Some(id) => Ok(rowid_offset(id)),
        None => next_offset(conn, sid, part),
    }
}

/// The first offset stored at or after `time_ms` (the next offset when none is).
pub(super) fn offset_at_time(
    conn: &Connection,
    sid: i64,
    part: i64,
    time_ms: i64,
) -> Result<i64, ApiError> {
    let first: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM messages WHERE id >= ?1 AND id <= ?2 AND ts >= ?3 ORDER BY id LIMIT 1",
        )?
        .query_row(
            [
                message_rowid(sid, part, 0),
                message_rowid(sid, part, MAX_OFFSET),
                time_ms,
            ],
            |r| r.get(0),
        )
        .optional()?;
    match first {
        Some(id) => Ok(rowid_offset(id)),
        None => next_offset(conn, sid, part),
    }
}

/// Parses a partition name of a stream with `partitions` partitions.
pub(super) fn parse_partition(text: &str, partitions: i64) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(p) if (0..partitions).contains(&p) => Ok(p),
        _ => Err(ApiError::invalid(format!(
            "partition {text:?} does not exist; the stream has partitions 0 to {}",
            partitions - 1
        ))),
    }
}
