//! Retention: messages older than their stream's retention, and the messages of deleted
//! streams, are deleted in chunks by the sweeper.

use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::OptionalExtension as _;

use crate::emulator::Inner;
use crate::error::ApiError;
use crate::store::{message_rowid, MAX_OFFSET};

/// Rows deleted per retention job, so trimming never stalls writers for long.
const TRIM_CHUNK: i64 = 5_000;

/// Deletes messages older than each stream's retention, and the messages of deleted streams,
/// in chunks. Returns how many messages were deleted.
pub async fn trim(inner: &Arc<Inner>, now: SystemTime) -> Result<u64, ApiError> {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let streams: Vec<(i64, i64, i64, String)> = inner
        .store
        .read(|conn| {
            Ok(conn
                .prepare("SELECT id, partitions, retention_hours, state FROM streams WHERE state IN ('ACTIVE','DELETED')")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    let mut total = 0u64;
    for (sid, parts, hours, state) in streams {
        let deleted_stream = state == "DELETED";
        let cutoff = if deleted_stream {
            i64::MAX
        } else {
            now_ms - hours * 3_600_000
        };
        for part in 0..parts {
            loop {
                let n = inner
                    .store
                    .write(move |conn, _| {
                        let first: Option<i64> = conn
                            .prepare_cached("SELECT id FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT 1")?
                            .query_row([message_rowid(sid, part, 0), message_rowid(sid, part, MAX_OFFSET)], |r| r.get(0))
                            .optional()?;
                        let Some(first) = first else { return Ok(0) };
                        let upper = (first + TRIM_CHUNK).min(message_rowid(sid, part, MAX_OFFSET));
                        Ok(conn
                            .prepare_cached("DELETE FROM messages WHERE id >= ?1 AND id <= ?2 AND ts < ?3")?
                            .execute([first, upper, cutoff])?)
                    })
                    .await?;
                total += n as u64;
                if n == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        if deleted_stream {
            inner
                .store
                .write(move |conn, _| {
                    conn.execute("DELETE FROM partitions WHERE stream=?1", [sid])?;
                    conn.execute("DELETE FROM group_parts WHERE stream=?1", [sid])?;
                    conn.execute("DELETE FROM groups WHERE stream=?1", [sid])?;
                    conn.execute("DELETE FROM group_members WHERE stream=?1", [sid])?;
                    conn.execute("UPDATE streams SET state='PURGED' WHERE id=?1", [sid])?;
                    Ok(())
                })
                .await?;
        }
    }
    Ok(total)
}
