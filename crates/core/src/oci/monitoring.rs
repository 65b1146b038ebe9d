//! Monitoring (API 20180401): PostMetricData on the telemetry-ingestion endpoint
//! (contracts/oci-round2.md section A), and the request and answer types the emulator shares.
//!
//! PostMetricData is the one Monitoring operation served by `telemetry-ingestion.<region>`;
//! every other one (ListMetrics, SummarizeMetricsData) is on `telemetry.<region>`, which the
//! functions never call.

use std::collections::BTreeMap;

use http::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{Endpoints, Service};
use super::service_url;

/// The API version every Monitoring path starts with.
pub const API: &str = "20180401";

/// The body of PostMetricData.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostMetricDataDetails {
    /// The metric streams, each with its datapoints.
    pub metric_data: Vec<MetricDataDetails>,
    /// `NON_ATOMIC` (the default: valid objects are kept, the others listed in the answer) or
    /// `ATOMIC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_atomicity: Option<String>,
}

/// One metric stream: a name, a namespace and dimensions, with its datapoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricDataDetails {
    /// The metric namespace (`datasync` by default).
    pub namespace: String,
    /// An optional resource group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    /// The compartment the metric belongs to.
    pub compartment_id: String,
    /// The metric's name (`MessagesDelivered`, ...).
    pub name: String,
    /// The dimensions (at least one).
    pub dimensions: BTreeMap<String, String>,
    /// Metadata that is not part of the stream's identity (`unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The datapoints.
    pub datapoints: Vec<Datapoint>,
}

/// One value at one time, observed `count` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datapoint {
    /// RFC 3339; less than 2 hours in the past and 10 minutes in the future.
    pub timestamp: String,
    /// The value.
    pub value: f64,
    /// How many times `value` was observed (1 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// The answer to PostMetricData.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostMetricDataResponseDetails {
    /// How many metric objects were refused.
    pub failed_metrics_count: u64,
    /// Those refused, with why.
    #[serde(default)]
    pub failed_metrics: Vec<FailedMetricRecord>,
}

/// A refused metric object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedMetricRecord {
    /// Why it was refused.
    pub message: String,
    /// The object as posted.
    pub metric_data: MetricDataDetails,
}

/// The Monitoring ingestion client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MonitoringClient {
    client: OciClient,
    base: Url,
}

impl MonitoringClient {
    /// A client for the telemetry-ingestion endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::TelemetryIngestion)?,
        })
    }

    /// PostMetricData: `POST /20180401/metrics`.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn post_metric_data(
        &self,
        details: &PostMetricDataDetails,
    ) -> Result<PostMetricDataResponseDetails, OciError> {
        let url = service_url(&self.base, &[API, "metrics"], &[])?;
        let request = OciRequest::new("PostMetricData", Method::POST, url).json(details)?;
        self.client.send_json(&request).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_body_has_the_sdk_field_names() {
        let details = PostMetricDataDetails {
            metric_data: vec![MetricDataDetails {
                namespace: "datasync".into(),
                resource_group: None,
                compartment_id: "ocid1.compartment.oc1..x".into(),
                name: "MessagesDelivered".into(),
                dimensions: BTreeMap::from([("function".into(), "process".into())]),
                metadata: None,
                datapoints: vec![Datapoint {
                    timestamp: "2026-01-01T00:00:00Z".into(),
                    value: 3.0,
                    count: Some(1),
                }],
            }],
            batch_atomicity: None,
        };
        let json = serde_json::to_value(&details).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"metricData": [{"namespace": "datasync",
                "compartmentId": "ocid1.compartment.oc1..x", "name": "MessagesDelivered",
                "dimensions": {"function": "process"},
                "datapoints": [{"timestamp": "2026-01-01T00:00:00Z", "value": 3.0, "count": 1}]}]})
        );
        let answer: PostMetricDataResponseDetails =
            serde_json::from_str(r#"{"failedMetricsCount":0,"failedMetrics":[]}"#).unwrap();
        assert_eq!(answer.failed_metrics_count, 0);
    }
}
