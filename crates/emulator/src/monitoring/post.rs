//! PostMetricData: each metric object checked as OCI checks it, the valid ones stored in one
//! write (see the [module intro](super) for the rules).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use datasync_core::oci::monitoring::{
    FailedMetricRecord, MetricDataDetails, PostMetricDataDetails, PostMetricDataResponseDetails,
};

use crate::clock::{now_ms, parse_time_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::parse_json;
use crate::store::metrics::{self as table, StreamKey};

/// The most metric streams one call may carry.
pub(crate) const MAX_STREAMS: usize = 50;
/// The most dimensions a metric may have.
const MAX_DIMENSIONS: usize = 20;
/// How far in the past a datapoint may be.
const MAX_AGE_MS: i64 = 2 * 3600 * 1000;
/// How far in the future a datapoint may be.
const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// A metric object ready to store.
struct Valid {
    key: StreamKey,
    metadata: BTreeMap<String, String>,
    points: Vec<(i64, f64, u64)>,
}

/// PostMetricData.
pub(crate) async fn post(
    inner: &Arc<Inner>,
    body: &[u8],
) -> Result<PostMetricDataResponseDetails, ApiError> {
    if inner.monitoring_outage.load(Ordering::Relaxed) {
        return Err(super::outage());
    }
    let details: PostMetricDataDetails = parse_json(body)?;
    let atomic = match details.batch_atomicity.as_deref() {
        None | Some("NON_ATOMIC") => false,
        Some("ATOMIC") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "batchAtomicity must be ATOMIC or NON_ATOMIC, not {other:?}"
            )))
        }
    };
    if details.metric_data.is_empty() {
        return Err(ApiError::invalid(
            "metricData must hold at least one metric",
        ));
    }
    let streams: BTreeSet<_> = details
        .metric_data
        .iter()
        .map(|m| {
            (
                &m.compartment_id,
                &m.namespace,
                &m.name,
                &m.resource_group,
                &m.dimensions,
            )
        })
        .collect();
    if streams.len() > MAX_STREAMS {
        return Err(ApiError::invalid(format!(
            "a call may post at most {MAX_STREAMS} unique metric streams, not {}",
            streams.len()
        )));
    }
    let now = now_ms();
    let mut valid = Vec::new();
    let mut failed = Vec::new();
    for m in details.metric_data {
        match check(&m, now) {
            Ok(v) => valid.push(v),
            Err(message) => failed.push(FailedMetricRecord {
                message,
                metric_data: m,
            }),
        }
    }
    if valid.is_empty() || (atomic && !failed.is_empty()) {
        let first = failed.first().map_or("", |f| f.message.as_str());
        return Err(ApiError::invalid(format!(
            "{} of the metric objects failed validation; the first: {first}",
            failed.len()
        )));
    }
    inner
        .store
        .write(move |conn, _| {
            for v in &valid {
                table::insert(conn, &v.key, &v.metadata, &v.points)?;
            }
            Ok(())
        })
        .await?;
    Ok(PostMetricDataResponseDetails {
        failed_metrics_count: failed.len() as u64,
        failed_metrics: failed,
    })
}

/// A letter, then letters, digits and `extra`.
fn identifier(s: &str, extra: &[char]) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
}

/// `m` as OCI would take it, or why not.
fn check(m: &MetricDataDetails, now: i64) -> Result<Valid, String> {
    let lower = m.namespace.to_ascii_lowercase();
    if !identifier(&m.namespace, &['_'])
        || lower.starts_with("oci_")
        || lower.starts_with("oracle_")
    {
        return Err(format!(
            "namespace {:?} must start with a letter and hold only letters, digits and _ (oci_ and oracle_ are reserved)",
            m.namespace
        ));
    }
    if !identifier(&m.name, &['.', '_', '-', '$']) {
        return Err(format!(
            "name {:?} must start with a letter and hold only letters, digits and . _ - $",
            m.name
        ));
    }
    if let Some(group) = &m.resource_group {
        if !identifier(group, &['.', '_', '-', '$']) {
            return Err(format!("resourceGroup {group:?} is not valid"));
        }
    }
    if m.compartment_id.is_empty() {
        return Err("compartmentId is required".into());
    }
    if m.dimensions.is_empty() || m.dimensions.len() > MAX_DIMENSIONS {
        return Err(format!("a metric needs 1 to {MAX_DIMENSIONS} dimensions"));
    }
    for (k, v) in &m.dimensions {
        let key_ok = !k.is_empty() && k.len() <= 256 && k.chars().all(|c| c.is_ascii_graphic());
        if !key_ok {
            return Err(format!(
                "dimension key {k:?} must be 1 to 256 printable ASCII characters without spaces"
            ));
        }
        if v.is_empty() || v.chars().count() > 512 {
            return Err(format!(
                "dimension {k:?}: its value must be 1 to 512 characters"
            ));
        }
    }
    let metadata = m.metadata.clone().unwrap_or_default();
    if metadata
        .iter()
        .any(|(k, v)| k.is_empty() || k.chars().count() > 256 || v.chars().count() > 256)
    {
        return Err("metadata keys and values must be at most 256 characters".into());
    }
    if m.datapoints.is_empty() {
        return Err("a metric needs at least one datapoint".into());
    }
    let mut points = Vec::with_capacity(m.datapoints.len());
    for d in &m.datapoints {
        let ts = parse_time_ms(&d.timestamp).map_err(|e| e.message)?;
        if ts <= now - MAX_AGE_MS || ts >= now + MAX_AHEAD_MS {
            return Err(format!(
                "timestamp {} must be less than 2 hours in the past and less than 10 minutes in the future",
                d.timestamp
            ));
        }
        if !d.value.is_finite() {
            return Err("a datapoint's value must be a number".into());
        }
        let count = d.count.unwrap_or(1);
        if count == 0 {
            return Err("a datapoint's count must be greater than zero".into());
        }
        points.push((ts, d.value, count));
    }
    Ok(Valid {
        key: StreamKey {
            compartment: m.compartment_id.clone(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            resource_group: m.resource_group.clone(),
            dimensions: m.dimensions.clone(),
        },
        metadata,
        points,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use datasync_core::oci::monitoring::Datapoint;

    fn metric(now: i64) -> MetricDataDetails {
        MetricDataDetails {
            namespace: "datasync".into(),
            resource_group: None,
            compartment_id: "ocid1.compartment.oc1..c".into(),
            name: "MessagesDelivered".into(),
            dimensions: BTreeMap::from([("function".into(), "process".into())]),
            metadata: None,
            datapoints: vec![Datapoint {
                timestamp: crate::clock::rfc3339_ms(now),
                value: 1.0,
                count: None,
            }],
        }
    }

    #[test]
    fn objects_are_checked_as_oci_checks_them() {
        let now = now_ms();
        assert!(check(&metric(now), now).is_ok());
        type Change = Box<dyn Fn(&mut MetricDataDetails)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|m| m.namespace = "oci_x".into()), "reserved"),
            (Box::new(|m| m.namespace = "1x".into()), "namespace"),
            (Box::new(|m| m.name = "a b".into()), "name"),
            (Box::new(|m| m.dimensions.clear()), "dimensions"),
            (
                Box::new(|m| {
                    m.dimensions.insert("a b".into(), "v".into());
                }),
                "dimension key",
            ),
            (
                Box::new(|m| {
                    m.dimensions.insert("k".into(), "v".repeat(513));
                }),
                "1 to 512",
            ),
            (Box::new(|m| m.datapoints.clear()), "datapoint"),
            (Box::new(|m| m.datapoints[0].count = Some(0)), "count"),
            (
                Box::new(move |m| {
                    m.datapoints[0].timestamp = crate::clock::rfc3339_ms(now - MAX_AGE_MS - 1)
                }),
                "2 hours",
            ),
            (
                Box::new(move |m| {
                    m.datapoints[0].timestamp = crate::clock::rfc3339_ms(now + MAX_AHEAD_MS)
                }),
                "10 minutes",
            ),
        ];
        for (change, part) in cases {
            let mut m = metric(now);
            change(&mut m);
            let err = check(&m, now).err().unwrap();
            assert!(err.contains(part), "{part}: {err}");
        }
    }
}
