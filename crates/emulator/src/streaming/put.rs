//! PutMessages: decoding and checking a request, choosing each message's partition, and
//! appending in the writer's group commit.

use std::sync::Arc;

use base64::Engine as _;
use datasync_core::oci::models;
use sha2::{Digest as _, Sha256};

use super::limits::{MAX_MESSAGE_BYTES, MAX_PUT_BYTES};
use super::streams::stream;
use crate::clock::{now_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;
use crate::store::{message_rowid, MAX_OFFSET};

fn decode_b64(i: usize, what: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::invalid(format!("messages[{i}].{what} is not valid base64")))
}

/// A decoded message: key (when given) and value.
pub type DecodedMessage = (Option<Vec<u8>>, Vec<u8>);

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
