//! Monitoring (20180401): PostMetricData, ListMetrics and SummarizeMetricsData with the MQL
//! subset of [`mql`] (contracts/oci-round2.md section A).
//!
//! OCI serves PostMetricData on `telemetry-ingestion.<region>` and the rest on
//! `telemetry.<region>`; the emulator serves both on its one port, routed by path as every
//! service is, so an SDK client pointed at the emulator works for either.
//!
//! What OCI checks is checked here: a namespace starts with a letter and holds letters,
//! digits and `_` (not `oci_` or `oracle_`); names start with a letter; 1 to 20 dimensions,
//! keys printable ASCII without spaces (≤ 256), values 1 to 512 characters; metadata ≤ 256
//! per key and value; at least one datapoint, each less than 2 hours old and less than 10
//! minutes ahead, `count` > 0; at most 50 streams per call. Under `NON_ATOMIC` (the default)
//! the valid objects are stored and the others listed in `failedMetrics`; under `ATOMIC`, or
//! when none is valid, the call is refused with 400 `InvalidParameter`.
//!
//! Datapoints are kept for [`EmulatorOptions::metrics_retention`] (24 hours by default; OCI
//! keeps 90 days) and pruned by the retention sweeper. A fault switch
//! ([`Emulator::set_monitoring_outage`]) makes PostMetricData answer 503, as an outage would.
//!
//! [`EmulatorOptions::metrics_retention`]: crate::EmulatorOptions::metrics_retention
//! [`Emulator::set_monitoring_outage`]: crate::Emulator::set_monitoring_outage

pub(crate) mod eval;
pub mod mql;
mod post;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::clock::{now_ms, parse_time_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{parse_json, parse_limit, Call};
use crate::response::{ok, set_header};
use crate::store::metrics::{self as table, Selection};

/// The API's first path segment.
pub(crate) const API: &str = "20180401";

/// The body of SummarizeMetricsData.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SummarizeDetails {
    namespace: String,
    #[serde(default)]
    resource_group: Option<String>,
    query: String,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    #[serde(default)]
    resolution: Option<String>,
}

/// One answered stream of SummarizeMetricsData.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricData {
    namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_group: Option<String>,
    compartment_id: String,
    name: String,
    dimensions: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    resolution: String,
    aggregated_datapoints: Vec<AggregatedDatapoint>,
}

#[derive(Debug, Serialize)]
struct AggregatedDatapoint {
    timestamp: String,
    value: f64,
}

/// The body of ListMetrics.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListDetails {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    resource_group: Option<String>,
    #[serde(default)]
    dimension_filters: Option<BTreeMap<String, String>>,
    #[serde(default)]
    group_by: Option<Vec<String>>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
}

/// One item of ListMetrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metric {
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_group: Option<String>,
    compartment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<BTreeMap<String, String>>,
}

/// Routes a Monitoring call.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    match (&call.method, call.segments().as_slice()) {
        (&Method::POST, [API, "metrics"]) => ok(&post::post(inner, &call.body).await?),
        (&Method::POST, [API, "metrics", "actions", "summarizeMetricsData"]) => {
            ok(&summarize(inner, call).await?)
        }
        (&Method::POST, [API, "metrics", "actions", "listMetrics"]) => list(inner, call).await,
        _ => Err(call.not_found()),
    }
}

/// The compartment of a read: `None` (all) when `compartmentIdInSubtree` is true.
fn compartment(call: &Call) -> Result<Option<String>, ApiError> {
    let id = call
        .query("compartmentId")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::missing("compartmentId"))?;
    Ok(match call.query("compartmentIdInSubtree") {
        Some("true") => None,
        Some("false") | None => Some(id.to_owned()),
        Some(_) => {
            return Err(ApiError::invalid(
                "compartmentIdInSubtree must be true or false",
            ))
        }
    })
}

/// SummarizeMetricsData.
async fn summarize(inner: &Arc<Inner>, call: &Call) -> Result<Vec<MetricData>, ApiError> {
    let compartment = compartment(call)?;
    let details: SummarizeDetails = parse_json(&call.body)?;
    let expr = mql::parse(&details.query).map_err(|e| ApiError::invalid(format!("query: {e}")))?;
    let now = now_ms();
    let end = match &details.end_time {
        Some(t) => parse_time_ms(t)?,
        None => now,
    };
    let start = match &details.start_time {
        Some(t) => parse_time_ms(t)?,
        None => end - 3 * 3600 * 1000,
    };
    if start >= end {
        return Err(ApiError::invalid("startTime must be before endTime"));
    }
    let interval = expr.first.interval.as_millis() as i64;
    let resolution = match &details.resolution {
        Some(r) => mql::duration(r)
            .map(|d| d.as_millis() as i64)
            .filter(|r| (60_000..=86_400_000).contains(r))
            .ok_or_else(|| ApiError::invalid("resolution must be 1m-60m, 1h-24h or 1d"))?,
        None => interval,
    };
    if resolution > interval {
        return Err(ApiError::invalid(
            "resolution must not be larger than the query's interval",
        ));
    }
    if (end - start) / resolution > 100_000 {
        return Err(ApiError::invalid(
            "the time range holds more than 100,000 datapoints at this resolution",
        ));
    }
    let window = eval::Window {
        start,
        end,
        resolution,
    };
    let sel = Selection {
        compartment: compartment.clone(),
        namespace: details.namespace.clone(),
        name: None,
        resource_group: details.resource_group.clone(),
    };
    let expr2 = expr.clone();
    let series = inner
        .store
        .read(move |conn| {
            let mut failure = None;
            let series = eval::evaluate(&expr2, window, |q| {
                let sel = Selection {
                    name: Some(q.metric.clone()),
                    ..sel.clone()
                };
                let from = start - eval::lookback_ms(q);
                let to = end + q.interval.as_millis() as i64;
                table::load(conn, &sel, from, to).unwrap_or_else(|e| {
                    failure = Some(e);
                    Vec::new()
                })
            });
            match failure {
                Some(e) => Err(e),
                None => Ok(series),
            }
        })
        .await?;
    let resolution_text = format!("{}m", resolution / 60_000);
    Ok(series
        .into_iter()
        .take(2_000)
        .map(|s| MetricData {
            namespace: details.namespace.clone(),
            resource_group: details.resource_group.clone(),
            compartment_id: compartment
                .clone()
                .or_else(|| call.query("compartmentId").map(str::to_owned))
                .unwrap_or_default(),
            name: expr.first.metric.clone(),
            dimensions: s.dimensions,
            metadata: s.metadata,
            resolution: resolution_text.clone(),
            aggregated_datapoints: s
                .points
                .into_iter()
                .map(|(t, value)| AggregatedDatapoint {
                    timestamp: rfc3339_ms(t),
                    value,
                })
                .collect(),
        })
        .collect())
}

/// ListMetrics: the streams matching, or their distinct groups; `limit`/`page` paging with
/// `opc-next-page`.
async fn list(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    let compartment = compartment(call)?;
    let limit = parse_limit(call.query("limit"), 1000, 1000)? as usize;
    let offset: usize = match call.query("page") {
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::invalid("page is not a page token this service gave"))?,
        None => 0,
    };
    let details: ListDetails = if call.body.is_empty() {
        ListDetails::default()
    } else {
        parse_json(&call.body)?
    };
    let group_by = details.group_by.clone().unwrap_or_default();
    if let Some(bad) = group_by
        .iter()
        .find(|g| !matches!(g.as_str(), "namespace" | "name" | "resourceGroup"))
    {
        return Err(ApiError::invalid(format!(
            "groupBy takes namespace, name and resourceGroup, not {bad:?}"
        )));
    }
    let sel = Selection {
        compartment: compartment.clone(),
        namespace: details.namespace.clone().unwrap_or_else(|| "*".to_owned()),
        name: details.name.clone(),
        resource_group: details.resource_group.clone(),
    };
    let keys = inner
        .store
        .read(move |conn| table::streams(conn, &sel))
        .await?;
    let filters = details.dimension_filters.clone().unwrap_or_default();
    let mut items: Vec<Metric> = keys
        .into_iter()
        .filter(|k| {
            !group_by.is_empty() || filters.iter().all(|(d, v)| k.dimensions.get(d) == Some(v))
        })
        .map(|k| {
            let keep = |field: &str| group_by.is_empty() || group_by.iter().any(|g| g == field);
            Metric {
                namespace: keep("namespace").then_some(k.namespace),
                name: keep("name").then_some(k.name),
                resource_group: if keep("resourceGroup") {
                    k.resource_group
                } else {
                    None
                },
                compartment_id: k.compartment,
                dimensions: group_by.is_empty().then_some(k.dimensions),
            }
        })
        .collect();
    items.sort_by(|a, b| match details.sort_by.as_deref() {
        Some("NAMESPACE") => a.namespace.cmp(&b.namespace),
        Some("RESOURCEGROUP") => a.resource_group.cmp(&b.resource_group),
        _ => a.name.cmp(&b.name).then_with(|| a.cmp(b)),
    });
    items.dedup();
    if details.sort_order.as_deref() == Some("DESC") {
        items.reverse();
    }
    let total = items.len();
    let page: Vec<Metric> = items.into_iter().skip(offset).take(limit).collect();
    let mut response = ok(&page)?;
    if offset + page.len() < total {
        set_header(
            response.headers_mut(),
            "opc-next-page",
            &(offset + page.len()).to_string(),
        );
    }
    Ok(response)
}

/// Deletes datapoints older than the retention, before `now_ms`.
pub(crate) async fn prune(inner: &Arc<Inner>, now_ms: i64) -> Result<usize, ApiError> {
    let before = now_ms - inner.options.metrics_retention.as_millis() as i64;
    inner
        .store
        .write(move |conn, _| table::prune(conn, before))
        .await
}

/// The 503 an outage answers PostMetricData with.
fn outage() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        "Monitoring is unavailable (the emulator's monitoring outage switch is on)",
    )
}
