//! UpdateStream (`PUT /streams/{id}`): OCI lets a stream move to another stream pool and change
//! its tags, nothing else. Partitions and retention are fixed when the stream is created
//! (Streaming limits, contracts D), so a request that tries to change them is refused with 400
//! naming the field, and nothing changes. Tags are accepted and not kept: the emulator does not
//! model them.

use std::sync::Arc;

use datasync_core::oci::models;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::streams::{stream, stream_by_ocid};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;

/// The body of UpdateStream: the SDKs' `UpdateStreamDetails`, plus the two fields OCI fixes at
/// creation, read only to refuse them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateStreamDetails {
    /// Move the stream to this pool.
    #[serde(default)]
    stream_pool_id: Option<String>,
    /// Present only to be refused: partitions are fixed at creation.
    #[serde(default)]
    partitions: Option<IgnoredAny>,
    /// Present only to be refused: retention is fixed at creation.
    #[serde(default)]
    retention_in_hours: Option<IgnoredAny>,
}

/// UpdateStream.
pub async fn update_stream(
    inner: &Arc<Inner>,
    ocid: &str,
    body: &[u8],
) -> Result<models::Stream, ApiError> {
    let details: UpdateStreamDetails = parse_json(body)?;
    for (field, given) in [
        ("partitions", details.partitions.is_some()),
        ("retentionInHours", details.retention_in_hours.is_some()),
    ] {
        if given {
            return Err(ApiError::invalid(format!(
                "{field} cannot be changed: it is fixed when the stream is created"
            )));
        }
    }
    let row = stream(inner, ocid).await?;
    let Some(pool) = details.stream_pool_id else {
        return Ok(row.model(&inner.base_url()));
    };
    let id = row.id;
    let key = ocid.to_owned();
    let updated = inner
        .store
        .write(move |conn, _| {
            conn.execute(
                "UPDATE streams SET pool=?1 WHERE id=?2",
                rusqlite::params![pool, id],
            )?;
            stream_by_ocid(conn, &key)
        })
        .await?;
    if let Ok(mut cache) = inner.streams.write() {
        cache.insert(ocid.to_owned(), Arc::new(updated.clone()));
    }
    Ok(updated.model(&inner.base_url()))
}
