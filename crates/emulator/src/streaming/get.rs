//! GetMessages: reads planned by size (pass 1), then streamed from the store in chunks
//! (pass 2), in one read transaction, a bounded number at once.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use rusqlite::Connection;

use super::cursor::{open_cursor, seal_cursor, CursorState};
use super::groups::group_acquire;
use super::limits::{CURSOR_TTL_MS, MAX_GET_LIMIT};
use super::streams::stream;
use crate::clock::{now_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_limit;
use crate::store::{message_rowid, rowid_offset, MAX_OFFSET};

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

/// What one GetMessages reads: where, how much, and the stream's name for the answer.
struct ReadRequest {
    /// The stream's internal id.
    sid: i64,
    /// The stream's name as a JSON string.
    stream_json: String,
    /// Per partition to read: (partition, first offset).
    positions: Vec<(i64, i64)>,
    /// The most messages.
    limit: i64,
    /// The most key and value bytes (at least one message is always returned).
    budget: usize,
}

/// Runs both passes of a read on the blocking pool, holding `permit` until done: returns the
/// plan (once pass 1 is done) and the answer body pass 2 streams into.
fn spawn_read(
    inner: &Inner,
    read: ReadRequest,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> (
    tokio::sync::oneshot::Receiver<Result<ReadPlan, ApiError>>,
    axum::body::Body,
) {
    let (planned, plan_answer) = tokio::sync::oneshot::channel::<Result<ReadPlan, ApiError>>();
    let (mut sender, body) =
        http_body_util::channel::Channel::<bytes::Bytes, std::io::Error>::new(CHUNKS_QUEUED);
    let store = Arc::clone(&inner.store);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut planned = Some(planned);
        let ReadRequest {
            sid,
            stream_json,
            positions,
            limit,
            budget,
        } = read;
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
    (plan_answer, axum::body::Body::new(body))
}

/// Moves `state` past what `plan` returns, renewed for another [`CURSOR_TTL_MS`]; a group
/// cursor also takes the group's generation `group_gen`.
fn advance(state: &mut CursorState, plan: &ReadPlan, group_gen: Option<i64>) {
    let next_positions: Vec<(i64, i64)> = plan.iter().map(|p| (p.0, p.3)).collect();
    state.expires_ms = now_ms() + CURSOR_TTL_MS;
    match (&mut state.partition, &mut state.group) {
        (Some(p), _) => {
            if let Some((_, next)) = next_positions.first() {
                p.1 = *next;
            }
        }
        (None, Some(group)) => {
            group.offsets = next_positions;
            if let Some(gen) = group_gen {
                group.generation = gen;
            }
        }
        (None, None) => {}
    }
}

/// GetMessages: the answer body, streamed from the store in chunks, and the next cursor.
///
/// Memory stays bounded whatever the stream size and answer size: pass 1 reads only message
/// sizes to fix what the answer holds (so the next cursor can go in the headers), pass 2
/// reads the same rows in the same read transaction and sends the JSON in chunks of about
/// [`CHUNK_BYTES`]; at most
/// [`EmulatorOptions::concurrent_reads`](crate::EmulatorOptions::concurrent_reads) answers are
/// produced at once.
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

    let mut group_gen = None;
    let positions: Vec<(i64, i64)> = match (&state.partition, &state.group) {
        (Some((part, off)), _) => vec![(*part, *off)],
        (None, Some(group)) => {
            let probe = group.clone();
            let commit = group.commit_on_get;
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
    let read = ReadRequest {
        sid,
        stream_json: serde_json::to_string(&row.name).unwrap_or_else(|_| "\"\"".into()),
        positions,
        limit,
        budget: inner.options.get_messages_max_bytes,
    };
    let (plan_answer, body) = spawn_read(inner, read, permit);
    let plan = plan_answer
        .await
        .map_err(|_| ApiError::internal("the read failed"))??;
    advance(&mut state, &plan, group_gen);
    Ok((body, seal_cursor(inner, &state)))
}
