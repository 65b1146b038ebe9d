//! Monitoring's tables: one row per metric stream (compartment, namespace, name, resource
//! group and dimensions, its identity), one per datapoint; pruned by age
//! ([`EmulatorOptions::metrics_retention`](crate::EmulatorOptions::metrics_retention)).

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension as _};

use crate::error::ApiError;

/// A stream's identity and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamKey {
    /// The compartment.
    pub compartment: String,
    /// The namespace.
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// The resource group (`None`: none).
    pub resource_group: Option<String>,
    /// The dimensions.
    pub dimensions: BTreeMap<String, String>,
}

/// A stream with the datapoints of a window: `(ms, value, count)`, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredStream {
    /// Its identity.
    pub key: StreamKey,
    /// Its latest metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its datapoints.
    pub points: Vec<(i64, f64, u64)>,
}

/// Which streams to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection {
    /// Only this compartment (`None`: all, for `compartmentIdInSubtree`).
    pub compartment: Option<String>,
    /// The namespace (`*` wildcards allowed in listings; exact when reading points).
    pub namespace: String,
    /// The metric's name (`None`: any).
    pub name: Option<String>,
    /// The resource group (`None`: streams without one).
    pub resource_group: Option<String>,
}

fn json_map(text: &str) -> BTreeMap<String, String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Stores `points` of the stream `key`, creating the stream when new and keeping `metadata`.
pub(crate) fn insert(
    conn: &Connection,
    key: &StreamKey,
    metadata: &BTreeMap<String, String>,
    points: &[(i64, f64, u64)],
) -> Result<(), ApiError> {
    let dims =
        serde_json::to_string(&key.dimensions).map_err(|e| ApiError::internal(e.to_string()))?;
    let meta = serde_json::to_string(metadata).map_err(|e| ApiError::internal(e.to_string()))?;
    let group = key.resource_group.clone().unwrap_or_default();
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM metric_streams WHERE compartment=?1 AND namespace=?2 AND name=?3
             AND resource_group=?4 AND dimensions=?5",
            params![key.compartment, key.namespace, key.name, group, dims],
            |r| r.get(0),
        )
        .optional()?;
    let id = match id {
        Some(id) => {
            conn.execute(
                "UPDATE metric_streams SET metadata=?2 WHERE id=?1",
                params![id, meta],
            )?;
            id
        }
        None => {
            conn.execute(
                "INSERT INTO metric_streams(compartment, namespace, name, resource_group, dimensions, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key.compartment, key.namespace, key.name, group, dims, meta],
            )?;
            conn.last_insert_rowid()
        }
    };
    let mut insert = conn.prepare_cached(
        "INSERT INTO metric_points(stream, ts, value, count) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (ts, value, count) in points {
        insert.execute(params![id, ts, value, *count as i64])?;
    }
    Ok(())
}

/// The streams `sel` names (exact namespace and name) with their datapoints in
/// `[from_ms, to_ms)`; streams without datapoints there are included, empty.
pub(crate) fn load(
    conn: &Connection,
    sel: &Selection,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<StoredStream>, ApiError> {
    let mut streams = Vec::new();
    let mut points = conn.prepare_cached(
        "SELECT ts, value, count FROM metric_points WHERE stream=?1 AND ts>=?2 AND ts<?3 ORDER BY ts",
    )?;
    for (id, key, metadata) in stream_rows(conn, sel)? {
        let pts = points
            .query_map(params![id, from_ms, to_ms], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, i64>(2)?.max(1) as u64,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        streams.push(StoredStream {
            key,
            metadata,
            points: pts,
        });
    }
    Ok(streams)
}

/// Every stream `sel` selects (namespace and name may hold `*` wildcards), without points.
pub(crate) fn streams(conn: &Connection, sel: &Selection) -> Result<Vec<StreamKey>, ApiError> {
    Ok(stream_rows(conn, sel)?
        .into_iter()
        .map(|(_, k, _)| k)
        .collect())
}

type Row = (i64, StreamKey, BTreeMap<String, String>);

fn stream_rows(conn: &Connection, sel: &Selection) -> Result<Vec<Row>, ApiError> {
    // LIKE with `*` as `%`: the patterns come from the request, so `%`, `_` and the escape
    // character are escaped first.
    let like = |p: &str| {
        p.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
            .replace('*', "%")
    };
    let name = sel
        .name
        .as_deref()
        .map(like)
        .unwrap_or_else(|| "%".to_owned());
    let group = sel.resource_group.clone().unwrap_or_default();
    let mut stmt = conn.prepare_cached(
        "SELECT id, compartment, namespace, name, resource_group, dimensions, metadata
         FROM metric_streams
         WHERE (?1 IS NULL OR compartment=?1) AND namespace LIKE ?2 ESCAPE '\\'
           AND name LIKE ?3 ESCAPE '\\' AND resource_group=?4
         ORDER BY namespace, name, dimensions",
    )?;
    let rows = stmt
        .query_map(
            params![sel.compartment, like(&sel.namespace), name, group],
            |r| {
                let group: String = r.get(4)?;
                let dims: String = r.get(5)?;
                let meta: Option<String> = r.get(6)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    StreamKey {
                        compartment: r.get(1)?,
                        namespace: r.get(2)?,
                        name: r.get(3)?,
                        resource_group: (!group.is_empty()).then_some(group),
                        dimensions: json_map(&dims),
                    },
                    meta.as_deref().map(json_map).unwrap_or_default(),
                ))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Deletes datapoints older than `before_ms` and streams left without any; how many
/// datapoints went.
pub(crate) fn prune(conn: &Connection, before_ms: i64) -> Result<usize, ApiError> {
    let gone = conn.execute("DELETE FROM metric_points WHERE ts<?1", [before_ms])?;
    if gone > 0 {
        conn.execute(
            "DELETE FROM metric_streams WHERE NOT EXISTS
             (SELECT 1 FROM metric_points WHERE metric_points.stream=metric_streams.id)",
            [],
        )?;
    }
    Ok(gone)
}
