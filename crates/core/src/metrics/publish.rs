//! Posting the metrics: one PostMetricData call, after an invocation's answer is decided,
//! bounded by a short timeout, and at most one per interval per instance (invocations in
//! between leave their datapoints to a post at the interval's end), so calls stay far below
//! the tenancy's 50 per second whatever the number of instances; a failure is logged (status
//! and OCI code, never a header or a token) and counted, never returned.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::pending::{Stream, Values};
use super::{dimension, Metrics};
use crate::function_config::Function;
use crate::message::rfc3339;
use crate::oci::auth::AuthProvider;
use crate::oci::client::{OciClient, RetryPolicy, Timeouts};
use crate::oci::monitoring::{
    Datapoint, MetricDataDetails, MonitoringClient, PostMetricDataDetails,
};
use crate::settings::{ConfigError, Settings};

/// Where and how the metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// The compartment the metrics belong to (`metrics_compartment_ocid`).
    pub compartment: String,
    /// The namespace (`metrics_namespace`, default `datasync`).
    pub namespace: String,
    /// The most one post may add to an invocation (`metrics_post_timeout_ms`).
    pub timeout: Duration,
    /// The least time between two posts of one instance (`metrics_post_interval_ms`):
    /// invocations in between leave their datapoints to a post at the interval's end.
    pub interval: Duration,
}

/// The default namespace.
pub const DEFAULT_NAMESPACE: &str = "datasync";
/// The default bound on one post.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1_500);
/// The default least time between two posts of a process or retry instance.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The default for a populate instance: populate runs many instances (the local stack 32),
/// each posting only its acceptance counts.
pub const DEFAULT_POPULATE_INTERVAL: Duration = Duration::from_secs(30);

/// PostMetricData calls this process made (every publisher), for the bench.
static POSTS: AtomicU64 = AtomicU64::new(0);

/// PostMetricData calls made by this process so far.
pub fn post_metric_data_calls() -> u64 {
    POSTS.load(Ordering::Relaxed)
}

/// What one [`Publisher::publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Nothing was recorded, or posting is not configured: no call.
    Skipped,
    /// The last post was less than the interval ago: a post at the interval's end will carry
    /// the datapoints.
    Deferred,
    /// Posted; `refused` metric objects were refused by the service.
    Posted {
        /// Streams posted.
        streams: usize,
        /// Streams the service refused (NON_ATOMIC partial failure).
        refused: u64,
    },
    /// The call failed or timed out; the datapoints are dropped.
    Failed,
}

/// This instance's posts so far, for a function's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishCounts {
    /// PostMetricData calls made.
    pub posts: u64,
    /// Calls that failed or timed out.
    pub post_failures: u64,
}

/// Posts what a [`Metrics`] recorded: one PostMetricData call at a time, at most one per
/// interval. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Publisher {
    target: Option<Arc<(MonitoringClient, MetricsSettings)>>,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    posts: AtomicU64,
    failures: AtomicU64,
    /// A deferred post is waiting.
    scheduled: AtomicBool,
    /// When the last post started.
    last: Mutex<Option<Instant>>,
}

impl Publisher {
    /// A publisher posting with `client` to `settings`' compartment and namespace.
    pub fn new(client: MonitoringClient, settings: MetricsSettings) -> Self {
        Self {
            target: Some(Arc::new((client, settings))),
            state: Arc::default(),
        }
    }

    /// The publisher `settings` call for: disabled without `metrics_compartment_ocid`, else
    /// one posting through its own client (no retries, the post timeout as its total
    /// timeout: a post never waits longer, and never holds the delivery clients' pool).
    ///
    /// # Errors
    /// A [`ConfigError`] when the ingestion endpoint is unknown or the client cannot be built.
    pub fn from_settings(
        settings: &Settings,
        auth: Arc<dyn AuthProvider>,
    ) -> Result<Self, ConfigError> {
        let Some(metrics) = &settings.metrics else {
            return Ok(Self::disabled());
        };
        let timeouts = Timeouts {
            connect: metrics.timeout,
            total: metrics.timeout,
        };
        let client = OciClient::with_settings(auth, timeouts, RetryPolicy::NONE)
            .and_then(|c| c.via_unix_socket(settings.oci_unix_socket.as_deref()))
            .and_then(|c| MonitoringClient::new(c, &settings.endpoints))
            .map_err(|e| ConfigError::client("telemetry-ingestion endpoint", e))?;
        Ok(Self::new(client, metrics.clone()))
    }

    /// A publisher that posts nothing (metrics still reach the facade).
    pub fn disabled() -> Self {
        Self {
            target: None,
            state: Arc::default(),
        }
    }

    /// Whether it posts.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Calls made and failed so far.
    pub fn counts(&self) -> PublishCounts {
        PublishCounts {
            posts: self.state.posts.load(Ordering::Relaxed),
            post_failures: self.state.failures.load(Ordering::Relaxed),
        }
    }

    /// How long until the next post may go (zero: now).
    fn wait(&self, interval: Duration) -> Duration {
        let last = *self
            .state
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.map_or(Duration::ZERO, |t| interval.saturating_sub(t.elapsed()))
    }

    /// Ends an invocation whose answer is decided: when the last post was at least the
    /// interval ago, takes everything `metrics` recorded and posts it, waiting at most the
    /// timeout; else leaves it to a post at the interval's end ([`publish_soon`](Self::publish_soon)).
    /// Without posting configured, the recorded metrics still go to the facade. Never fails.
    pub async fn publish(&self, metrics: &Metrics) -> PublishOutcome {
        metrics.forward();
        let Some(target) = &self.target else {
            metrics.take();
            return PublishOutcome::Skipped;
        };
        if metrics.is_empty() {
            return PublishOutcome::Skipped;
        }
        if !self.wait(target.1.interval).is_zero() || self.state.scheduled.load(Ordering::Acquire) {
            self.publish_soon(metrics);
            return PublishOutcome::Deferred;
        }
        self.post(metrics).await
    }

    /// Posts what `metrics` holds in a task of its own once the interval since the last post
    /// has passed, unless such a post is already waiting: for a function whose caller waits
    /// for its answer (populate), so the post never delays one. The facade gets them at once
    /// (dropped for OCI without a Tokio runtime or without posting configured).
    pub fn publish_soon(&self, metrics: &Metrics) {
        metrics.forward();
        let Some(target) = &self.target else {
            metrics.take();
            return;
        };
        if self.state.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.state.scheduled.store(false, Ordering::Release);
            metrics.take();
            return;
        };
        let wait = self.wait(target.1.interval);
        let (publisher, metrics) = (self.clone(), metrics.clone());
        runtime.spawn(async move {
            tokio::time::sleep(wait).await;
            publisher.state.scheduled.store(false, Ordering::Release);
            publisher.post(&metrics).await;
        });
    }

    /// One PostMetricData with everything `metrics` holds.
    async fn post(&self, metrics: &Metrics) -> PublishOutcome {
        let Some(target) = &self.target else {
            return PublishOutcome::Skipped;
        };
        let (client, settings) = (&target.0, &target.1);
        let streams = metrics.take();
        if streams.is_empty() {
            return PublishOutcome::Skipped;
        }
        *self
            .state
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let details = post_details(&streams, metrics.function(), settings, SystemTime::now());
        self.state.posts.fetch_add(1, Ordering::Relaxed);
        POSTS.fetch_add(1, Ordering::Relaxed);
        let call = client.post_metric_data(&details);
        let streams = details.metric_data.len();
        match tokio::time::timeout(settings.timeout, call).await {
            Ok(Ok(answer)) => {
                if answer.failed_metrics_count > 0 {
                    let first = answer.failed_metrics.first().map(|f| f.message.as_str());
                    tracing::warn!(
                        refused = answer.failed_metrics_count,
                        first_reason = first.unwrap_or(""),
                        "Monitoring refused some metric streams"
                    );
                }
                PublishOutcome::Posted {
                    streams,
                    refused: answer.failed_metrics_count,
                }
            }
            Ok(Err(e)) => {
                self.state.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    status = e.status(),
                    error = %e,
                    streams,
                    "PostMetricData failed; these metrics are dropped"
                );
                PublishOutcome::Failed
            }
            Err(_) => {
                self.state.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    timeout_ms = settings.timeout.as_millis() as u64,
                    streams,
                    "PostMetricData timed out; these metrics are dropped"
                );
                PublishOutcome::Failed
            }
        }
    }
}

/// The PostMetricData body for `streams`: one metric object per stream, its datapoints at
/// `now` (a counter: its count; a distribution: each value with its count; a gauge: its
/// value).
pub fn post_details(
    streams: &[Stream],
    function: Function,
    settings: &MetricsSettings,
    now: SystemTime,
) -> PostMetricDataDetails {
    let timestamp = rfc3339(now);
    let metric_data = streams
        .iter()
        .map(|s| {
            let mut dimensions = BTreeMap::new();
            dimensions.insert(dimension::FUNCTION.to_owned(), function.name().to_owned());
            let d = &s.dimensions;
            for (name, value) in [
                (dimension::TARGET_HOST, &d.target_host),
                (dimension::CLASS, &d.class),
                (dimension::ROUTE, &d.route),
            ] {
                if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                    dimensions.insert(name.to_owned(), v.clone());
                }
            }
            let point = |value: f64, count: u64| Datapoint {
                timestamp: timestamp.clone(),
                value,
                count: Some(count),
            };
            let datapoints = match &s.values {
                Values::Counter(n) => vec![point(*n as f64, 1)],
                Values::Distribution(v) => v.iter().map(|(x, n)| point(*x, *n)).collect(),
                Values::Gauge(x) => vec![point(*x, 1)],
            };
            MetricDataDetails {
                namespace: settings.namespace.clone(),
                resource_group: None,
                compartment_id: settings.compartment.clone(),
                name: s.metric.name().to_owned(),
                dimensions,
                metadata: Some(BTreeMap::from([(
                    "unit".to_owned(),
                    s.metric.unit().to_owned(),
                )])),
                datapoints,
            }
        })
        .collect();
    PostMetricDataDetails {
        metric_data,
        batch_atomicity: Some("NON_ATOMIC".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::metrics::Metric;

    #[test]
    fn every_stream_becomes_one_metric_object_with_the_function_dimension() {
        let m = Metrics::new(Function::Retry);
        m.delivered("a.example", None, None);
        m.delivered("a.example", None, None);
        m.failed(Some("a.example"), "clientError", None);
        m.target_call("a.example", Duration::from_millis(7), true);
        let settings = MetricsSettings {
            compartment: "ocid1.compartment.oc1..c".into(),
            namespace: "datasync".into(),
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let details = post_details(&m.take(), Function::Retry, &settings, now);
        assert_eq!(details.metric_data.len(), 4);
        let delivered = details
            .metric_data
            .iter()
            .find(|d| d.name == Metric::MessagesDelivered.name())
            .unwrap();
        assert_eq!(delivered.dimensions["function"], "retry");
        assert_eq!(delivered.dimensions["targetHost"], "a.example");
        assert!(!delivered.dimensions.contains_key("class"));
        assert_eq!(delivered.datapoints[0].value, 2.0);
        assert_eq!(
            delivered.datapoints[0].timestamp,
            "2023-11-14T22:13:20.000Z"
        );
        let failures = details
            .metric_data
            .iter()
            .find(|d| d.name == "DeliveryFailures")
            .unwrap();
        assert_eq!(failures.dimensions["class"], "clientError");
    }
}
