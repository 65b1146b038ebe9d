//! Streaming (API 20180418): the control plane (streams) and the data plane (messages,
//! cursors, consumer groups), on the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use datasync_core::oci::models;
use rusqlite::{Connection, OptionalExtension as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::store::{message_rowid, rowid_offset, MAX_OFFSET, MAX_PARTITIONS, MAX_STREAM_ID};
use super::{new_ocid, now_ms, parse_json, parse_time_ms, rfc3339_ms, Inner};

/// The most a message may hold (key plus value, after base64 decoding).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The most a PutMessages request may hold (sum of keys and values, after decoding).
pub const MAX_PUT_BYTES: usize = 1024 * 1024;
/// The largest `limit` GetMessages accepts.
pub const MAX_GET_LIMIT: i64 = 10_000;
/// How long a cursor stays valid.
pub const CURSOR_TTL_MS: i64 = 5 * 60 * 1000;
/// Default `timeoutInMs` of a group cursor.
pub const DEFAULT_GROUP_TIMEOUT_MS: i64 = 30_000;
/// Rows deleted per retention job, so trimming never stalls writers for long.
const TRIM_CHUNK: i64 = 5_000;

/// A stream as the store holds it.
#[derive(Debug, Clone)]
pub struct StreamRow {
    /// Internal id (part of every message rowid).
    pub id: i64,
    /// The OCID.
    pub ocid: String,
    /// The name.
    pub name: String,
    /// The compartment.
    pub compartment: String,
    /// The stream pool, when given.
    pub pool: Option<String>,
    /// Partition count.
    pub partitions: i64,
    /// Retention in hours.
    pub retention_hours: i64,
    /// Lifecycle state.
    pub state: String,
    /// Creation time, RFC 3339.
    pub created: String,
}

impl StreamRow {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            ocid: r.get(1)?,
            name: r.get(2)?,
            compartment: r.get(3)?,
            pool: r.get(4)?,
            partitions: r.get(5)?,
            retention_hours: r.get(6)?,
            state: r.get(7)?,
            created: r.get(8)?,
        })
    }

    /// The API model, with `messagesEndpoint` set to `endpoint`.
    pub fn model(&self, endpoint: &str) -> models::Stream {
        models::Stream {
            id: self.ocid.clone(),
            name: self.name.clone(),
            partitions: self.partitions as i32,
            retention_in_hours: self.retention_hours as i32,
            compartment_id: self.compartment.clone(),
            stream_pool_id: self.pool.clone(),
            lifecycle_state: self.state.clone(),
            messages_endpoint: endpoint.to_owned(),
            time_created: self.created.clone(),
        }
    }
}

const STREAM_COLUMNS: &str =
    "id, ocid, name, compartment, pool, partitions, retention_hours, state, created";

/// The state a cursor carries, sealed with the data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CursorState {
    /// Stream id.
    s: i64,
    /// Expiry, ms since the epoch.
    e: i64,
    /// Partition cursor: partition and next offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<(i64, i64)>,
    /// Group cursor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    g: Option<GroupCursor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct GroupCursor {
    /// Group name.
    n: String,
    /// Instance name.
    i: String,
    /// The group's generation when issued (UpdateGroup bumps it).
    r: i64,
    /// Next offset per held partition.
    o: Vec<(i64, i64)>,
    /// commitOnGet.
    c: bool,
    /// timeoutInMs.
    t: i64,
}

fn seal_cursor(inner: &Inner, state: &CursorState) -> String {
    inner
        .key
        .seal_text(&serde_json::to_vec(state).unwrap_or_default())
}

fn open_cursor(inner: &Inner, stream: &StreamRow, text: &str) -> Result<CursorState, ApiError> {
    let bad = || ApiError::invalid("the cursor is invalid; create a new one");
    let plain = inner.key.open_text(text).ok_or_else(bad)?;
    let state: CursorState = serde_json::from_slice(&plain).map_err(|_| bad())?;
    if state.s != stream.id {
        return Err(ApiError::invalid("the cursor belongs to another stream"));
    }
    if state.e <= now_ms() {
        return Err(ApiError::invalid(
            "the cursor has expired; create a new one",
        ));
    }
    Ok(state)
}

fn stream_by_ocid(conn: &Connection, ocid: &str) -> Result<StreamRow, ApiError> {
    conn.prepare_cached(&format!(
        "SELECT {STREAM_COLUMNS} FROM streams WHERE ocid=?1 AND state='ACTIVE'"
    ))?
    .query_row([ocid], StreamRow::from_row)
    .optional()?
    .ok_or_else(|| ApiError::not_found(format!("stream {ocid}")))
}

/// The active stream with this OCID, from the in-memory cache or the store.
pub async fn stream(inner: &Arc<Inner>, ocid: &str) -> Result<Arc<StreamRow>, ApiError> {
    if let Some(row) = inner.streams.read().ok().and_then(|m| m.get(ocid).cloned()) {
        return Ok(row);
    }
    let key = ocid.to_owned();
    let row = Arc::new(inner.store.read(move |c| stream_by_ocid(c, &key)).await?);
    if let Ok(mut cache) = inner.streams.write() {
        cache.insert(ocid.to_owned(), Arc::clone(&row));
    }
    Ok(row)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// CreateStream.
pub async fn create_stream(inner: &Arc<Inner>, body: &[u8]) -> Result<models::Stream, ApiError> {
    let details: models::CreateStreamDetails = parse_json(body)?;
    if !valid_name(&details.name) {
        return Err(ApiError::invalid(
            "name must be 1 to 255 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    if details.partitions < 1 || i64::from(details.partitions) > MAX_PARTITIONS {
        return Err(ApiError::invalid(format!(
            "partitions must be between 1 and {MAX_PARTITIONS}"
        )));
    }
    let retention = details.retention_in_hours.unwrap_or(24);
    if !(24..=168).contains(&retention) {
        return Err(ApiError::invalid(
            "retentionInHours must be between 24 and 168",
        ));
    }
    let compartment = match (&details.compartment_id, &details.stream_pool_id) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => inner.profile.compartment.clone(),
        (None, None) => return Err(ApiError::missing("compartmentId or streamPoolId")),
    };
    let ocid = new_ocid("stream");
    let created = rfc3339_ms(now_ms());
    let row = inner
        .store
        .write(move |conn, _| {
            conn.execute(
                "INSERT INTO streams(ocid, name, compartment, pool, partitions, retention_hours, state, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'ACTIVE', ?7)",
                rusqlite::params![
                    ocid,
                    details.name,
                    compartment,
                    details.stream_pool_id,
                    details.partitions,
                    retention,
                    created
                ],
            )?;
            let id = conn.last_insert_rowid();
            if id > MAX_STREAM_ID {
                return Err(ApiError::limit_exceeded("the emulator cannot create more streams"));
            }
            for part in 0..i64::from(details.partitions) {
                conn.execute(
                    "INSERT INTO partitions(stream, part, next_off, last_ts) VALUES (?1, ?2, 0, 0)",
                    [id, part],
                )?;
            }
            stream_by_ocid(conn, &ocid)
        })
        .await?;
    Ok(row.model(&inner.base_url()))
}

/// GetStream.
pub async fn get_stream(inner: &Arc<Inner>, ocid: &str) -> Result<models::Stream, ApiError> {
    Ok(stream(inner, ocid).await?.model(&inner.base_url()))
}

/// ListStreams: by compartment (or pool), optionally by name and lifecycle state.
pub async fn list_streams(
    inner: &Arc<Inner>,
    query: &HashMap<String, String>,
) -> Result<Vec<models::Stream>, ApiError> {
    let compartment = query.get("compartmentId").cloned();
    let pool = query.get("streamPoolId").cloned();
    if compartment.is_none() && pool.is_none() {
        return Err(ApiError::missing("compartmentId or streamPoolId"));
    }
    let name = query.get("name").cloned();
    let state = query.get("lifecycleState").cloned();
    let limit = parse_limit(query.get("limit").map(String::as_str), 1000, 1000)?;
    let endpoint = inner.base_url();
    inner
        .store
        .read(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE state != 'DELETED'
                 AND (?1 IS NULL OR compartment = ?1) AND (?2 IS NULL OR pool = ?2)
                 AND (?3 IS NULL OR name = ?3) AND (?4 IS NULL OR state = ?4) ORDER BY id LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                rusqlite::params![compartment, pool, name, state, limit],
                StreamRow::from_row,
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row?.model(&endpoint));
            }
            Ok(out)
        })
        .await
}

/// DeleteStream: the stream disappears at once; its messages are purged in the background.
pub async fn delete_stream(inner: &Arc<Inner>, ocid: &str) -> Result<(), ApiError> {
    let row = stream(inner, ocid).await?;
    if let Ok(mut cache) = inner.streams.write() {
        cache.remove(ocid);
    }
    let id = row.id;
    inner
        .store
        .write(move |conn, _| {
            conn.execute("UPDATE streams SET state='DELETED' WHERE id=?1", [id])?;
            Ok(())
        })
        .await
}

/// Parses a `limit` query parameter.
pub fn parse_limit(value: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(format!(
                "limit must be an integer from 1 to {max}"
            ))),
        },
    }
}

fn decode_b64(i: usize, what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::invalid(format!("messages[{i}].{what} is not valid base64")))
}

/// A decoded message: key (when given) and value.
pub type DecodedMessage = (Option<Vec<u8>>, Vec<u8>);

/// Per consumer group: its name and, per partition, (partition, next offset, committed).
pub type GroupPositions = (String, Vec<(i64, i64, Option<i64>)>);

/// A PutMessages body, validated and decoded.
pub fn decode_put(body: &[u8]) -> Result<Vec<DecodedMessage>, ApiError> {
    let details: models::PutMessagesDetails = parse_json(body)?;
    if details.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty"));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(details.messages.len());
    for (i, m) in details.messages.iter().enumerate() {
        let key = match &m.key {
            Some(k) => Some(decode_b64(i, "key", k)?),
            None => None,
        };
        let value = decode_b64(i, "value", &m.value)?;
        let size = value.len() + key.as_ref().map_or(0, Vec::len);
        if size > MAX_MESSAGE_BYTES {
            return Err(ApiError::too_large(format!(
                "messages[{i}] holds {size} bytes; a message may hold at most {MAX_MESSAGE_BYTES}"
            )));
        }
        total += size;
        if total > MAX_PUT_BYTES {
            return Err(ApiError::too_large(format!(
                "the request holds more than {MAX_PUT_BYTES} bytes of keys and values"
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// The partition of a key: a stable hash, the same across restarts.
pub fn partition_for_key(key: &[u8], partitions: i64) -> i64 {
    let digest = Sha256::digest(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % partitions.max(1) as u64) as i64
}

/// PutMessages.
pub async fn put_messages(
    inner: &Arc<Inner>,
    ocid: &str,
    body: &[u8],
) -> Result<models::PutMessagesResult, ApiError> {
    let messages = decode_put(body)?;
    let value_bytes: usize = messages.iter().map(|(_, value)| value.len()).sum();
    let row = stream(inner, ocid).await?;
    let (sid, parts) = (row.id, row.partitions);
    let placed = inner
        .store
        .write(move |conn, state| {
            let mut touched: Vec<i64> = Vec::new();
            let mut placed = Vec::with_capacity(messages.len());
            let now = now_ms();
            let mut insert = conn.prepare_cached(
                "INSERT INTO messages(id, ts, key, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (key, value) in &messages {
                let part = match key {
                    Some(k) => partition_for_key(k, parts),
                    None => {
                        state.round_robin = state.round_robin.wrapping_add(1);
                        (state.round_robin % parts as u64) as i64
                    }
                };
                let slot = state.partition(conn, sid, part)?;
                let (offset, ts) = (slot.0, slot.1.max(now));
                if offset > MAX_OFFSET {
                    return Err(ApiError::limit_exceeded("the partition is full"));
                }
                *slot = (offset + 1, ts);
                insert.execute(rusqlite::params![
                    message_rowid(sid, part, offset),
                    ts,
                    key,
                    value
                ])?;
                if !touched.contains(&part) {
                    touched.push(part);
                }
                placed.push((part, offset, ts));
            }
            let mut update = conn.prepare_cached(
                "UPDATE partitions SET next_off=?3, last_ts=?4 WHERE stream=?1 AND part=?2",
            )?;
            for part in touched {
                let (next, ts) = *state.partition(conn, sid, part)?;
                update.execute([sid, part, next, ts])?;
            }
            Ok(placed)
        })
        .await?;
    inner.note_appended(ocid, placed.len(), value_bytes);
    // A group's messages mostly share one timestamp: format it once.
    let mut last = (i64::MIN, String::new());
    Ok(models::PutMessagesResult {
        failures: 0,
        entries: placed
            .into_iter()
            .map(|(part, offset, ts)| {
                if ts != last.0 {
                    last = (ts, rfc3339_ms(ts));
                }
                models::PutMessagesResultEntry {
                    partition: Some(part.to_string()),
                    offset: Some(offset),
                    timestamp: Some(last.1.clone()),
                    error: None,
                    error_message: None,
                }
            })
            .collect(),
    })
}

fn next_offset(conn: &Connection, sid: i64, part: i64) -> Result<i64, ApiError> {
    Ok(conn
        .prepare_cached("SELECT next_off FROM partitions WHERE stream=?1 AND part=?2")?
        .query_row([sid, part], |r| r.get(0))?)
}

/// The oldest retained offset of a partition (its next offset when empty).
fn earliest_offset(conn: &Connection, sid: i64, part: i64) -> Result<i64, ApiError> {
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
fn offset_at_time(conn: &Connection, sid: i64, part: i64, time_ms: i64) -> Result<i64, ApiError> {
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

fn parse_partition(text: &str, partitions: i64) -> Result<i64, ApiError> {
    match text.parse::<i64>() {
        Ok(p) if (0..partitions).contains(&p) => Ok(p),
        _ => Err(ApiError::invalid(format!(
            "partition {text:?} does not exist; the stream has partitions 0 to {}",
            partitions - 1
        ))),
    }
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
    let time = match details.cursor_type {
        models::CursorType::AtTime => Some(parse_time_ms(
            details
                .time
                .as_deref()
                .ok_or_else(|| ApiError::missing("time"))?,
        )?),
        _ => None,
    };
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
        value: seal_cursor(
            inner,
            &CursorState {
                s: sid,
                e: now_ms() + CURSOR_TTL_MS,
                p: Some((part, position)),
                g: None,
            },
        ),
    })
}

/// The start position of every partition for a new group, or a reset one.
fn group_start(
    conn: &Connection,
    sid: i64,
    parts: i64,
    kind: models::GroupCursorType,
    time: Option<i64>,
) -> Result<Vec<i64>, ApiError> {
    (0..parts)
        .map(|p| match kind {
            models::GroupCursorType::Latest => next_offset(conn, sid, p),
            models::GroupCursorType::TrimHorizon => earliest_offset(conn, sid, p),
            models::GroupCursorType::AtTime => offset_at_time(conn, sid, p, time.unwrap_or(0)),
        })
        .collect()
}

/// Commits `positions` (optional), then renews this instance's reservations and rebalances:
/// takes free or lapsed partitions up to its fair share, releases any beyond it. Returns the
/// group generation and the held partitions with their read positions.
fn group_acquire(
    conn: &Connection,
    sid: i64,
    cursor: &GroupCursor,
    commit: bool,
    now: i64,
) -> Result<(i64, Vec<(i64, i64)>), ApiError> {
    let gen: i64 = conn
        .prepare_cached("SELECT gen FROM groups WHERE stream=?1 AND name=?2")?
        .query_row(rusqlite::params![sid, cursor.n], |r| r.get(0))
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("group {}", cursor.n)))?;
    let same_gen = gen == cursor.r;
    if commit && same_gen {
        let mut stmt = conn.prepare_cached(
            "UPDATE group_parts SET next_off=?4, committed=?4 - 1 WHERE stream=?1 AND name=?2 AND part=?3 AND instance=?5",
        )?;
        for (part, pos) in &cursor.o {
            stmt.execute(rusqlite::params![sid, cursor.n, part, pos, cursor.i])?;
        }
    }
    let rows: Vec<(i64, i64, Option<String>, Option<i64>)> = conn
        .prepare_cached("SELECT part, next_off, instance, reserved_until FROM group_parts WHERE stream=?1 AND name=?2 ORDER BY part")?
        .query_map(rusqlite::params![sid, cursor.n], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let active =
        |inst: &Option<String>, until: &Option<i64>| inst.is_some() && until.unwrap_or(0) > now;
    // Membership: every instance that called within its timeout counts, holding partitions or not.
    conn.prepare_cached(
        "INSERT INTO group_members(stream, name, instance, alive_until) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(stream, name, instance) DO UPDATE SET alive_until=excluded.alive_until",
    )?
    .execute(rusqlite::params![sid, cursor.n, cursor.i, now + cursor.t])?;
    conn.prepare_cached(
        "DELETE FROM group_members WHERE stream=?1 AND name=?2 AND alive_until <= ?3",
    )?
    .execute(rusqlite::params![sid, cursor.n, now])?;
    let members: i64 = conn
        .prepare_cached("SELECT count(*) FROM group_members WHERE stream=?1 AND name=?2")?
        .query_row(rusqlite::params![sid, cursor.n], |r| r.get(0))?;
    let instances = members.max(1);
    let fair = (rows.len() as i64 + instances - 1) / instances;
    let mut mine: Vec<(i64, i64)> = rows
        .iter()
        .filter(|(_, _, inst, _)| inst.as_deref() == Some(cursor.i.as_str()))
        .map(|(p, n, _, _)| (*p, *n))
        .collect();
    let mut release: Vec<i64> = Vec::new();
    while mine.len() as i64 > fair {
        if let Some((p, _)) = mine.pop() {
            release.push(p);
        }
    }
    for (p, n, inst, until) in &rows {
        if mine.len() as i64 >= fair {
            break;
        }
        if !active(inst, until) && inst.as_deref() != Some(cursor.i.as_str()) {
            mine.push((*p, *n));
        }
    }
    mine.sort_unstable();
    let until = now + cursor.t;
    let mut reserve = conn.prepare_cached(
        "UPDATE group_parts SET instance=?4, reserved_until=?5 WHERE stream=?1 AND name=?2 AND part=?3",
    )?;
    for (p, _) in &mine {
        reserve.execute(rusqlite::params![sid, cursor.n, p, cursor.i, until])?;
    }
    for p in release {
        reserve.execute(rusqlite::params![
            sid,
            cursor.n,
            p,
            Option::<String>::None,
            Option::<i64>::None
        ])?;
    }
    let positions = mine
        .into_iter()
        .map(|(p, group_pos)| {
            let pos = if same_gen {
                cursor
                    .o
                    .iter()
                    .find(|(cp, _)| *cp == p)
                    .map_or(group_pos, |(_, o)| *o)
            } else {
                group_pos
            };
            (p, pos)
        })
        .collect();
    Ok((gen, positions))
}

/// CreateGroupCursor.
pub async fn create_group_cursor(
    inner: &Arc<Inner>,
    ocid: &str,
    body: &[u8],
) -> Result<models::Cursor, ApiError> {
    let details: models::CreateGroupCursorDetails = parse_json(body)?;
    if !valid_name(&details.group_name) {
        return Err(ApiError::invalid(
            "groupName must be 1 to 255 characters of letters, digits, '-', '_' and '.'",
        ));
    }
    let timeout = details.timeout_in_ms.unwrap_or(DEFAULT_GROUP_TIMEOUT_MS);
    if !(1_000..=6 * 3_600_000).contains(&timeout) {
        return Err(ApiError::invalid(
            "timeoutInMs must be between 1000 and 21600000",
        ));
    }
    let time = match details.cursor_type {
        models::GroupCursorType::AtTime => Some(parse_time_ms(
            details
                .time
                .as_deref()
                .ok_or_else(|| ApiError::missing("time"))?,
        )?),
        _ => None,
    };
    let row = stream(inner, ocid).await?;
    let (sid, parts) = (row.id, row.partitions);
    let mut cursor = GroupCursor {
        n: details.group_name.clone(),
        i: details
            .instance_name
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        r: -1,
        o: Vec::new(),
        c: details.commit_on_get.unwrap_or(true),
        t: timeout,
    };
    let kind = details.cursor_type;
    let probe = cursor.clone();
    let (gen, positions) = inner
        .store
        .write(move |conn, _| {
            let exists = conn
                .prepare_cached("SELECT 1 FROM groups WHERE stream=?1 AND name=?2")?
                .query_row(rusqlite::params![sid, probe.n], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                conn.execute("INSERT INTO groups(stream, name, gen) VALUES (?1, ?2, 0)", rusqlite::params![sid, probe.n])?;
                for (p, start) in group_start(conn, sid, parts, kind, time)?.into_iter().enumerate() {
                    conn.execute(
                        "INSERT INTO group_parts(stream, name, part, next_off) VALUES (?1, ?2, ?3, ?4)",
                        rusqlite::params![sid, probe.n, p as i64, start],
                    )?;
                }
            }
            group_acquire(conn, sid, &probe, false, now_ms())
        })
        .await?;
    cursor.r = gen;
    cursor.o = positions;
    Ok(models::Cursor {
        value: seal_cursor(
            inner,
            &CursorState {
                s: sid,
                e: now_ms() + CURSOR_TTL_MS,
                p: None,
                g: Some(cursor),
            },
        ),
    })
}

/// ConsumerCommit (`commit = true`) and ConsumerHeartbeat (`commit = false`).
pub async fn commit_or_heartbeat(
    inner: &Arc<Inner>,
    ocid: &str,
    cursor_text: Option<&str>,
    commit: bool,
) -> Result<models::Cursor, ApiError> {
    let row = stream(inner, ocid).await?;
    let mut state = open_cursor(
        inner,
        &row,
        cursor_text.ok_or_else(|| ApiError::missing("cursor"))?,
    )?;
    let mut group = state
        .g
        .take()
        .ok_or_else(|| ApiError::invalid("the cursor is not a group cursor"))?;
    let sid = row.id;
    let probe = group.clone();
    let (gen, positions) = inner
        .store
        .write(move |conn, _| group_acquire(conn, sid, &probe, commit, now_ms()))
        .await?;
    group.r = gen;
    group.o = positions;
    state.g = Some(group);
    state.e = now_ms() + CURSOR_TTL_MS;
    Ok(models::Cursor {
        value: seal_cursor(inner, &state),
    })
}

/// Per partition of a GetMessages answer: (partition, first offset, messages to return,
/// next offset).
type ReadPlan = Vec<(i64, i64, i64, i64)>;

/// Pass 1 of GetMessages: how many messages each partition contributes, within `limit` and the
/// byte `budget` (at least one message is always returned), reading only the sizes.
fn plan_read(
    conn: &Connection,
    sid: i64,
    positions: &[(i64, i64)],
    limit: i64,
    budget: usize,
) -> Result<ReadPlan, ApiError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, length(key), length(value) FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
    )?;
    let (mut remaining, mut budget, mut first) = (limit, budget, true);
    let mut plan = Vec::with_capacity(positions.len());
    for &(part, from) in positions {
        let (mut count, mut next) = (0i64, from);
        if remaining > 0 && (budget > 0 || first) {
            let mut rows = stmt.query([
                message_rowid(sid, part, from),
                message_rowid(sid, part, MAX_OFFSET),
                remaining,
            ])?;
            while let Some(r) = rows.next()? {
                let key: Option<i64> = r.get(1)?;
                let value: i64 = r.get(2)?;
                let size = (value + key.unwrap_or(0)).max(0) as usize;
                if !first && size > budget {
                    break;
                }
                first = false;
                budget = budget.saturating_sub(size);
                count += 1;
                next = rowid_offset(r.get(0)?) + 1;
            }
            remaining -= count;
        }
        plan.push((part, from, count, next));
    }
    Ok(plan)
}

/// The most JSON bytes gathered before a chunk of a GetMessages answer is sent (a chunk and
/// its slack stay under glibc's 128 KiB mmap threshold, so chunks are recycled, not mapped).
const CHUNK_BYTES: usize = 112 * 1024;
/// Chunks of one answer that may wait for the client: with two answers at once, at most
/// about 2 MiB of JSON is buffered.
const CHUNKS_QUEUED: usize = 8;
/// The longest a GetMessages answer waits for its client to take the next chunk.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends one chunk of an answer; false when the client is gone or too slow.
fn send_chunk(
    runtime: &tokio::runtime::Handle,
    sender: &mut http_body_util::channel::Sender<bytes::Bytes, std::io::Error>,
    chunk: &mut String,
) -> bool {
    let data = bytes::Bytes::from(std::mem::replace(
        chunk,
        String::with_capacity(CHUNK_BYTES + 8 * 1024),
    ));
    runtime
        .block_on(tokio::time::timeout(SEND_TIMEOUT, sender.send_data(data)))
        .is_ok_and(|sent| sent.is_ok())
}

/// Pass 2 of GetMessages: streams the JSON array of the planned messages to `sender` in
/// chunks of about [`CHUNK_BYTES`], in the read transaction pass 1 ran in. Returns false when
/// the client went away.
fn stream_messages(
    conn: &Connection,
    runtime: &tokio::runtime::Handle,
    sender: &mut http_body_util::channel::Sender<bytes::Bytes, std::io::Error>,
    stream_json: &str,
    sid: i64,
    plan: &ReadPlan,
) -> Result<bool, ApiError> {
    use std::fmt::Write as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut stmt = conn.prepare_cached(
        "SELECT id, ts, key, value FROM messages WHERE id >= ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
    )?;
    let mut out = String::with_capacity(CHUNK_BYTES + 8 * 1024);
    out.push('[');
    let mut first = true;
    let mut last_ts = (i64::MIN, String::new());
    for &(part, from, count, _) in plan {
        if count == 0 {
            continue;
        }
        let mut rows = stmt.query([
            message_rowid(sid, part, from),
            message_rowid(sid, part, MAX_OFFSET),
            count,
        ])?;
        while let Some(r) = rows.next()? {
            let key = r
                .get_ref(2)?
                .as_blob_or_null()
                .map_err(rusqlite::Error::from)?;
            let value = r.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
            let offset = rowid_offset(r.get(0)?);
            let ts: i64 = r.get(1)?;
            if ts != last_ts.0 {
                last_ts = (ts, rfc3339_ms(ts));
            }
            out.push_str(if first { "{" } else { ",{" });
            first = false;
            let _ = write!(
                out,
                "\"stream\":{stream_json},\"partition\":\"{part}\",\"key\":"
            );
            match key {
                Some(k) => {
                    out.push('"');
                    engine.encode_string(k, &mut out);
                    out.push('"');
                }
                None => out.push_str("null"),
            }
            out.push_str(",\"value\":\"");
            engine.encode_string(value, &mut out);
            let _ = write!(
                out,
                "\",\"offset\":{offset},\"timestamp\":\"{}\"}}",
                last_ts.1
            );
            if out.len() >= CHUNK_BYTES && !send_chunk(runtime, sender, &mut out) {
                return Ok(false);
            }
        }
    }
    out.push(']');
    Ok(send_chunk(runtime, sender, &mut out))
}

/// GetMessages: the answer body, streamed from the store in chunks, and the next cursor.
///
/// Memory stays bounded whatever the stream size and answer size: pass 1 reads only message
/// sizes to fix what the answer holds (so the next cursor can go in the headers), pass 2
/// reads the same rows in the same read transaction and sends the JSON in chunks of about
/// [`CHUNK_BYTES`]; at most [`EmulatorOptions::concurrent_reads`](super::EmulatorOptions)
/// answers are produced at once.
pub async fn get_messages(
    inner: &Arc<Inner>,
    ocid: &str,
    query: &HashMap<String, String>,
) -> Result<(axum::body::Body, String), ApiError> {
    let row = stream(inner, ocid).await?;
    let limit = parse_limit(
        query.get("limit").map(String::as_str),
        MAX_GET_LIMIT,
        MAX_GET_LIMIT,
    )?;
    let cursor_text = query
        .get("cursor")
        .ok_or_else(|| ApiError::missing("cursor"))?;
    let mut state = open_cursor(inner, &row, cursor_text)?;
    let sid = row.id;
    let stream_json = serde_json::to_string(&row.name).unwrap_or_else(|_| "\"\"".into());
    let budget = inner.options.get_messages_max_bytes;

    let mut group_gen = None;
    let positions: Vec<(i64, i64)> = match (&state.p, &state.g) {
        (Some((part, off)), _) => vec![(*part, *off)],
        (None, Some(group)) => {
            let probe = group.clone();
            let commit = group.c;
            let (gen, positions) = inner
                .store
                .write(move |conn, _| group_acquire(conn, sid, &probe, commit, now_ms()))
                .await?;
            group_gen = Some(gen);
            positions
        }
        (None, None) => return Err(ApiError::invalid("the cursor is invalid; create a new one")),
    };
    let permit = Arc::clone(&inner.reads)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable())?;
    let (planned, plan_answer) = tokio::sync::oneshot::channel::<Result<ReadPlan, ApiError>>();
    let (mut sender, body) =
        http_body_util::channel::Channel::<bytes::Bytes, std::io::Error>::new(CHUNKS_QUEUED);
    let store = Arc::clone(&inner.store);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut planned = Some(planned);
        let result = store.read_blocking(|conn| {
            conn.execute_batch("BEGIN")?;
            let plan = match plan_read(conn, sid, &positions, limit, budget) {
                Ok(plan) => plan,
                Err(err) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    return Err(err);
                }
            };
            let sent = planned.take().map(|p| p.send(Ok(plan.clone())));
            if !matches!(sent, Some(Ok(()))) {
                let _ = conn.execute_batch("ROLLBACK");
                return Ok(());
            }
            let streamed = stream_messages(conn, &runtime, &mut sender, &stream_json, sid, &plan);
            let _ = conn.execute_batch("ROLLBACK");
            if let Err(err) = streamed {
                // The status is sent already: cut the answer short so the client sees an error.
                tracing::warn!(%err.message, "emulator: GetMessages failed while streaming");
                sender.abort(std::io::Error::other(err.message));
            }
            Ok(())
        });
        if let Err(err) = result {
            // Only before the plan was sent (opening the connection, BEGIN or pass 1).
            if let Some(planned) = planned.take() {
                let _ = planned.send(Err(err));
            }
        }
    });
    let plan = plan_answer
        .await
        .map_err(|_| ApiError::internal("the read failed"))??;
    let next_positions: Vec<(i64, i64)> = plan.iter().map(|p| (p.0, p.3)).collect();
    state.e = now_ms() + CURSOR_TTL_MS;
    match (&mut state.p, &mut state.g) {
        (Some(p), _) => {
            if let Some((_, next)) = next_positions.first() {
                p.1 = *next;
            }
        }
        (None, Some(group)) => {
            group.o = next_positions;
            if let Some(gen) = group_gen {
                group.r = gen;
            }
        }
        (None, None) => {}
    }
    Ok((axum::body::Body::new(body), seal_cursor(inner, &state)))
}

/// GetGroup.
pub async fn get_group(
    inner: &Arc<Inner>,
    ocid: &str,
    group: &str,
) -> Result<models::Group, ApiError> {
    let row = stream(inner, ocid).await?;
    let (sid, name, stream_id) = (row.id, group.to_owned(), row.ocid.clone());
    inner
        .store
        .read(move |conn| {
            let exists = conn
                .query_row("SELECT 1 FROM groups WHERE stream=?1 AND name=?2", rusqlite::params![sid, name], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(ApiError::not_found(format!("group {name}")));
            }
            let now = now_ms();
            let mut stmt = conn.prepare("SELECT part, committed, instance, reserved_until FROM group_parts WHERE stream=?1 AND name=?2 ORDER BY part")?;
            let reservations = stmt
                .query_map(rusqlite::params![sid, name], |r| {
                    let until: Option<i64> = r.get(3)?;
                    let live = until.is_some_and(|u| u > now);
                    Ok(models::PartitionReservation {
                        partition: r.get::<_, i64>(0)?.to_string(),
                        committed_offset: r.get(1)?,
                        time_reserved_until: if live { until.map(rfc3339_ms) } else { None },
                        reserved_instance: if live { r.get(2)? } else { None },
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(models::Group { stream_id, group_name: name, reservations })
        })
        .await
}

/// UpdateGroup: moves the group's position and drops reservations and outstanding cursors.
pub async fn update_group(
    inner: &Arc<Inner>,
    ocid: &str,
    group: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let details: models::UpdateGroupDetails = parse_json(body)?;
    let row = stream(inner, ocid).await?;
    let Some(kind) = details.cursor_type else {
        return Ok(());
    };
    let time = match kind {
        models::GroupCursorType::AtTime => Some(parse_time_ms(
            details
                .time
                .as_deref()
                .ok_or_else(|| ApiError::missing("time"))?,
        )?),
        _ => None,
    };
    let (sid, parts, name) = (row.id, row.partitions, group.to_owned());
    inner
        .store
        .write(move |conn, _| {
            let changed = conn.execute("UPDATE groups SET gen = gen + 1 WHERE stream=?1 AND name=?2", rusqlite::params![sid, name])?;
            conn.execute("DELETE FROM group_members WHERE stream=?1 AND name=?2", rusqlite::params![sid, name])?;
            if changed == 0 {
                return Err(ApiError::not_found(format!("group {name}")));
            }
            for (p, start) in group_start(conn, sid, parts, kind, time)?.into_iter().enumerate() {
                conn.execute(
                    "UPDATE group_parts SET next_off=?4, committed=NULL, instance=NULL, reserved_until=NULL
                     WHERE stream=?1 AND name=?2 AND part=?3",
                    rusqlite::params![sid, name, p as i64, start],
                )?;
            }
            Ok(())
        })
        .await
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_a_stable_partition() {
        let p = partition_for_key(b"k1", 7);
        for _ in 0..10 {
            assert_eq!(partition_for_key(b"k1", 7), p);
        }
        let spread: std::collections::HashSet<i64> = (0..200)
            .map(|i| partition_for_key(format!("k{i}").as_bytes(), 7))
            .collect();
        assert_eq!(spread.len(), 7);
    }
}
