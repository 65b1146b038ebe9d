//! The control plane: streams (CreateStream, GetStream, ListStreams, DeleteStream), their
//! rows in the store and the in-memory cache of active streams.

use std::collections::HashMap;
use std::sync::Arc;

use datasync_core::oci::models;
use rusqlite::{Connection, OptionalExtension as _};

use super::limits::valid_name;
use crate::clock::{now_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{new_ocid, parse_json, parse_limit};
use crate::store::{MAX_PARTITIONS, MAX_STREAM_ID};

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
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
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

pub(super) const STREAM_COLUMNS: &str =
    "id, ocid, name, compartment, pool, partitions, retention_hours, state, created";

pub(super) fn stream_by_ocid(conn: &Connection, ocid: &str) -> Result<StreamRow, ApiError> {
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
