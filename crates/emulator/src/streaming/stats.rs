//! What the status page reads: depth and consumer positions per stream, and when messages
//! were appended.

use rusqlite::{Connection, OptionalExtension as _};

use super::offsets::{earliest_offset, next_offset};
use super::streams::{stream_by_ocid, StreamRow, STREAM_COLUMNS};
use crate::error::ApiError;
use crate::store::{message_rowid, rowid_offset, MAX_OFFSET};

/// Per consumer group: its name and, per partition, (partition, next offset, committed).
pub type GroupPositions = (String, Vec<(i64, i64, Option<i64>)>);

/// Depth and consumer positions of one stream, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStats {
    /// The stream's OCID.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Per partition: (partition, oldest retained offset, next offset). Depth is the difference.
    pub partitions: Vec<(i64, i64, i64)>,
    /// Per consumer group: (group, per partition: (partition, next offset to read, committed)).
    pub groups: Vec<GroupPositions>,
}

/// Stats of every active stream.
pub fn stats(conn: &Connection) -> Result<Vec<StreamStats>, ApiError> {
    let streams: Vec<StreamRow> = conn
        .prepare(&format!(
            "SELECT {STREAM_COLUMNS} FROM streams WHERE state='ACTIVE' ORDER BY id"
        ))?
        .query_map([], StreamRow::from_row)?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(streams.len());
    for s in streams {
        let mut partitions = Vec::new();
        for p in 0..s.partitions {
            partitions.push((
                p,
                earliest_offset(conn, s.id, p)?,
                next_offset(conn, s.id, p)?,
            ));
        }
        let mut groups: Vec<GroupPositions> = Vec::new();
        let mut stmt = conn.prepare("SELECT name, part, next_off, committed FROM group_parts WHERE stream=?1 ORDER BY name, part")?;
        let rows = stmt.query_map([s.id], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        for row in rows {
            let (name, part, next, committed) = row?;
            match groups.last_mut() {
                Some((g, v)) if *g == name => v.push((part, next, committed)),
                _ => groups.push((name, vec![(part, next, committed)])),
            }
        }
        out.push(StreamStats {
            id: s.ocid,
            name: s.name,
            partitions,
            groups,
        });
    }
    Ok(out)
}

/// A stored message as the status page reads it: where it is, when it was appended, its key
/// and value as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its partition.
    pub partition: i64,
    /// Its offset.
    pub offset: i64,
    /// When it was appended, milliseconds since the epoch.
    pub appended_ms: i64,
    /// Its key, when it has one.
    pub key: Option<Vec<u8>>,
    /// Its value.
    pub value: Vec<u8>,
}

/// Up to `limit` messages of partition `part` of the active stream `ocid`, from offset `from`
/// on, oldest first (`newest_first`: the last `limit` at or after `from`, newest first).
pub fn read_messages(
    conn: &Connection,
    ocid: &str,
    part: i64,
    from: i64,
    limit: usize,
    newest_first: bool,
) -> Result<Vec<StoredMessage>, ApiError> {
    let stream = stream_by_ocid(conn, ocid)?;
    if !(0..stream.partitions).contains(&part) {
        return Ok(Vec::new());
    }
    let order = if newest_first { "DESC" } else { "ASC" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT id, ts, key, value FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id {order} LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        [
            message_rowid(stream.id, part, from.clamp(0, MAX_OFFSET)),
            message_rowid(stream.id, part, MAX_OFFSET),
            i64::try_from(limit).unwrap_or(i64::MAX),
        ],
        |r| {
            Ok(StoredMessage {
                partition: part,
                offset: rowid_offset(r.get(0)?),
                appended_ms: r.get(1)?,
                key: r.get(2)?,
                value: r.get(3)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When each `(partition, offset)` of the active stream `ocid` was appended, in milliseconds
/// since the epoch; `None` where no message is stored (not yet written, or trimmed).
pub fn append_times(
    conn: &Connection,
    ocid: &str,
    positions: &[(i64, i64)],
) -> Result<Vec<Option<i64>>, ApiError> {
    let stream = stream_by_ocid(conn, ocid)?;
    let mut stmt = conn.prepare_cached("SELECT ts FROM messages WHERE id=?1")?;
    positions
        .iter()
        .map(|&(part, offset)| {
            if !(0..stream.partitions).contains(&part) || !(0..=MAX_OFFSET).contains(&offset) {
                return Ok(None);
            }
            Ok(stmt
                .query_row([message_rowid(stream.id, part, offset)], |r| r.get(0))
                .optional()?)
        })
        .collect()
}
