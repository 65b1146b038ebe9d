//! What the functions observe, recorded once here and sent two ways (`docs/metrics.md`):
//!
//! - to OCI Monitoring: observations are aggregated per metric stream (name + dimensions)
//!   and [`take`](Metrics::take)n as the body of *one* PostMetricData call after an
//!   invocation's answer is decided, at most one per interval per instance
//!   ([`Publisher`](publish::Publisher));
//! - to the [`metrics`](https://docs.rs/metrics) crate's facade at the end of every
//!   invocation ([`forward`](Metrics::forward)), with the same counts, under the snake_case
//!   Prometheus names (a no-op unless a recorder is installed; the local stack installs one
//!   and serves `GET /metrics`).
//!
//! Names and dimensions are fixed ([`Metric`]); dimension values are few and bounded: the
//! function, the target host (from the allow list), the error class and the route. A call
//! records nothing but a few map updates under one lock, so recording costs a delivery no
//! I/O and almost no time.
//!
//! ```
//! use std::time::Duration;
//! use datasync_core::function_config::Function;
//! use datasync_core::metrics::{Metric, Metrics};
//!
//! let metrics = Metrics::new(Function::Process);
//! metrics.target_call("api.example.com", Duration::from_millis(12), true);
//! metrics.delivered("api.example.com", None, None);
//! let streams = metrics.take();
//! assert!(streams.iter().any(|s| s.metric == Metric::MessagesDelivered && s.total() == 1.0));
//! assert!(metrics.take().is_empty());
//! ```

mod facade;
mod pending;
pub mod publish;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::deliver::BreakerState;
use crate::function_config::Function;

pub use pending::{Stream, Values, MAX_STREAMS_PER_POST};
pub use publish::{
    post_metric_data_calls, MetricsSettings, PublishCounts, PublishOutcome, Publisher,
};

/// A metric datasync publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Messages populate wrote to the data stream (dimensions: function, route).
    MessagesAccepted,
    /// Messages a route's filter dropped at ingest (function, route).
    MessagesFiltered,
    /// Messages a target accepted with a 2xx (function, targetHost, route).
    MessagesDelivered,
    /// Messages that failed a delivery, by class (function, targetHost, class, route).
    DeliveryFailures,
    /// Messages written to the dead-letter stream (function, targetHost, class, route).
    MessagesDeadLettered,
    /// Milliseconds from populate's `receivedAt` to the target's 2xx (function, targetHost).
    DeliveryLatency,
    /// Milliseconds per target call (function, targetHost).
    TargetLatency,
    /// Per target call, 1 when it failed and 0 when it succeeded: its mean over a window is
    /// the host's failure ratio (function, targetHost).
    TargetFailureRatio,
    /// Milliseconds from the oldest message's append to its batch's processing (function).
    BatchAge,
    /// A host's circuit breaker: 0 closed, 1 half-open, 2 open (function, targetHost).
    BreakerState,
    /// Delivery callbacks abandoned for good: their tries or age used up, or refused in a
    /// way no retry changes (function).
    CallbacksAbandoned,
}

/// How a metric's datapoints aggregate, and what the facade gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A count per invocation (one datapoint: the count); a Prometheus counter.
    Counter,
    /// Values with how often each was seen; a Prometheus histogram (in seconds when the
    /// unit is milliseconds).
    Distribution,
    /// The last value; a Prometheus gauge.
    Gauge,
}

impl Metric {
    /// Every metric.
    pub const ALL: [Metric; 11] = [
        Metric::MessagesAccepted,
        Metric::MessagesFiltered,
        Metric::MessagesDelivered,
        Metric::DeliveryFailures,
        Metric::MessagesDeadLettered,
        Metric::DeliveryLatency,
        Metric::TargetLatency,
        Metric::TargetFailureRatio,
        Metric::BatchAge,
        Metric::BreakerState,
        Metric::CallbacksAbandoned,
    ];

    /// The name in OCI Monitoring.
    pub fn name(self) -> &'static str {
        match self {
            Metric::MessagesAccepted => "MessagesAccepted",
            Metric::MessagesFiltered => "MessagesFiltered",
            Metric::MessagesDelivered => "MessagesDelivered",
            Metric::DeliveryFailures => "DeliveryFailures",
            Metric::MessagesDeadLettered => "MessagesDeadLettered",
            Metric::DeliveryLatency => "DeliveryLatency",
            Metric::TargetLatency => "TargetLatency",
            Metric::TargetFailureRatio => "TargetFailureRatio",
            Metric::BatchAge => "BatchAge",
            Metric::BreakerState => "BreakerState",
            Metric::CallbacksAbandoned => "CallbacksAbandoned",
        }
    }

    /// The Prometheus name the facade gets.
    pub fn prometheus_name(self) -> &'static str {
        match self {
            Metric::MessagesAccepted => "datasync_messages_accepted_total",
            Metric::MessagesFiltered => "datasync_messages_filtered_total",
            Metric::MessagesDelivered => "datasync_messages_delivered_total",
            Metric::DeliveryFailures => "datasync_delivery_failures_total",
            Metric::MessagesDeadLettered => "datasync_messages_dead_lettered_total",
            Metric::DeliveryLatency => "datasync_delivery_latency_seconds",
            Metric::TargetLatency => "datasync_target_latency_seconds",
            // As a counter of calls with an `outcome` label: Prometheus divides counters.
            Metric::TargetFailureRatio => "datasync_target_calls_total",
            Metric::BatchAge => "datasync_batch_age_seconds",
            Metric::BreakerState => "datasync_breaker_state",
            Metric::CallbacksAbandoned => "datasync_callbacks_abandoned_total",
        }
    }

    /// How it aggregates.
    pub fn kind(self) -> Kind {
        match self {
            Metric::MessagesAccepted
            | Metric::MessagesFiltered
            | Metric::MessagesDelivered
            | Metric::DeliveryFailures
            | Metric::MessagesDeadLettered
            | Metric::CallbacksAbandoned => Kind::Counter,
            Metric::DeliveryLatency
            | Metric::TargetLatency
            | Metric::TargetFailureRatio
            | Metric::BatchAge => Kind::Distribution,
            Metric::BreakerState => Kind::Gauge,
        }
    }

    /// The unit, posted as the stream's `unit` metadata.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::DeliveryLatency | Metric::TargetLatency | Metric::BatchAge => "ms",
            Metric::TargetFailureRatio => "ratio",
            Metric::BreakerState => "state",
            _ => "count",
        }
    }
}

/// The dimension names, as posted to OCI Monitoring (the Prometheus labels are their
/// snake_case forms: `function`, `target_host`, `class`, `route`).
pub mod dimension {
    /// The function that observed it (`populate`, `process`, `retry`).
    pub const FUNCTION: &str = "function";
    /// The target's host (with `:port` when not the default).
    pub const TARGET_HOST: &str = "targetHost";
    /// The error class (`serviceUnavailable`, `clientError`, ...).
    pub const CLASS: &str = "class";
    /// The route's name (operator-defined routes).
    pub const ROUTE: &str = "route";
}

/// The dimensions of one observation besides the function (which the recorder knows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dimensions {
    /// The target host.
    pub target_host: Option<String>,
    /// The error class.
    pub class: Option<String>,
    /// The route.
    pub route: Option<String>,
}

impl Dimensions {
    fn host(host: &str) -> Self {
        Self {
            target_host: Some(host.to_owned()),
            ..Self::default()
        }
    }

    fn with_route(mut self, route: Option<&str>) -> Self {
        self.route = route.map(str::to_owned);
        self
    }
}

/// The recorder of one function instance: cheap to clone, shared by its concurrent calls.
/// Everything recorded since the last [`take`](Self::take) is posted by the next one.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    function: Function,
    /// For OCI Monitoring, until the next post; for the facade, until the invocation ends.
    pending: Mutex<[pending::Pending; 2]>,
}

/// Which of the two pending sets.
const OCI: usize = 0;
const FACADE: usize = 1;

impl Metrics {
    /// A recorder for `function`'s observations.
    pub fn new(function: Function) -> Self {
        Self {
            inner: Arc::new(Inner {
                function,
                pending: Mutex::new([pending::Pending::default(), pending::Pending::default()]),
            }),
        }
    }

    /// The function it records for.
    pub fn function(&self) -> Function {
        self.inner.function
    }

    /// Records into both pending sets.
    fn with(&self, f: impl Fn(&mut pending::Pending)) {
        // A panic while recording leaves counts, never a broken invariant: keep going.
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for p in pending.iter_mut() {
            f(p);
        }
    }

    fn take_set(&self, which: usize) -> pending::Pending {
        let mut pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut pending[which])
    }

    /// `n` messages written to the data stream by populate.
    pub fn accepted(&self, route: Option<&str>, n: u64) {
        let dims = Dimensions::default().with_route(route);
        self.with(|p| p.count(Metric::MessagesAccepted, &dims, n));
    }

    /// `n` messages a route's filter dropped at ingest.
    pub fn filtered(&self, route: Option<&str>, n: u64) {
        let dims = Dimensions::default().with_route(route);
        self.with(|p| p.count(Metric::MessagesFiltered, &dims, n));
    }

    /// A message the target at `host` accepted; with `received_at` (populate's `receivedAt`),
    /// its delivery latency up to now.
    pub fn delivered(&self, host: &str, route: Option<&str>, received_at: Option<SystemTime>) {
        let dims = Dimensions::host(host).with_route(route);
        let host_only = Dimensions::host(host);
        let latency = received_at.map(|t| millis(SystemTime::now().duration_since(t)));
        self.with(|p| {
            if let Some(ms) = latency {
                p.observe(Metric::DeliveryLatency, &host_only, ms);
            }
            p.count(Metric::MessagesDelivered, &dims, 1);
        });
    }

    /// A message that failed with `class` (`host` when known).
    pub fn failed(&self, host: Option<&str>, class: &str, route: Option<&str>) {
        let dims = Dimensions {
            target_host: host.map(str::to_owned),
            class: Some(class.to_owned()),
            route: route.map(str::to_owned),
        };
        self.with(|p| p.count(Metric::DeliveryFailures, &dims, 1));
    }

    /// A message written to the dead-letter stream with `class`.
    pub fn dead_lettered(&self, host: Option<&str>, class: &str, route: Option<&str>) {
        let dims = Dimensions {
            target_host: host.map(str::to_owned),
            class: Some(class.to_owned()),
            route: route.map(str::to_owned),
        };
        self.with(|p| p.count(Metric::MessagesDeadLettered, &dims, 1));
    }

    /// A delivery callback abandoned for good.
    pub fn callback_abandoned(&self) {
        self.with(|p| p.count(Metric::CallbacksAbandoned, &Dimensions::default(), 1));
    }

    /// One target call to `host`: how long it took, and whether it succeeded.
    pub fn target_call(&self, host: &str, latency: Duration, succeeded: bool) {
        let ms = latency.as_secs_f64() * 1000.0;
        let dims = Dimensions::host(host);
        let failed = if succeeded { 0.0 } else { 1.0 };
        self.with(|p| {
            p.observe(Metric::TargetLatency, &dims, ms);
            p.observe(Metric::TargetFailureRatio, &dims, failed);
        });
    }

    /// A batch whose oldest message was appended `age` ago.
    pub fn batch_age(&self, age: Duration) {
        let ms = age.as_secs_f64() * 1000.0;
        let dims = Dimensions::default();
        self.with(|p| p.observe(Metric::BatchAge, &dims, ms));
    }

    /// The breaker state of `host` now.
    pub fn breaker_state(&self, host: &str, state: BreakerState) {
        let value = match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        };
        let dims = Dimensions::host(host);
        self.with(|p| p.set(Metric::BreakerState, &dims, value));
    }

    /// Whether nothing was recorded since the last [`take`](Self::take).
    pub fn is_empty(&self) -> bool {
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        pending[OCI].is_empty()
    }

    /// Everything recorded since the last call, for OCI Monitoring: one [`Stream`] per metric
    /// and dimensions, at most [`MAX_STREAMS_PER_POST`] (past that, the least busy target
    /// hosts are folded into `targetHost = "other"`).
    pub fn take(&self) -> Vec<Stream> {
        self.take_set(OCI).into_streams(self.inner.function)
    }

    /// Hands everything recorded since the last call to the `metrics` facade (under the
    /// Prometheus names): at the end of every invocation, whenever the post to OCI goes.
    pub fn forward(&self) {
        let streams = self.take_set(FACADE).into_streams_unbounded();
        facade::forward(self.inner.function, &streams);
    }
}

fn millis(d: Result<Duration, std::time::SystemTimeError>) -> f64 {
    // A clock behind the sender's counts as no delay rather than a negative one.
    d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn find<'a>(streams: &'a [Stream], metric: Metric, host: Option<&str>) -> Vec<&'a Stream> {
        streams
            .iter()
            .filter(|s| s.metric == metric && s.dimensions.target_host.as_deref() == host)
            .collect()
    }

    #[test]
    fn observations_aggregate_per_stream_until_taken() {
        let m = Metrics::new(Function::Process);
        for _ in 0..3 {
            m.delivered("a.example", None, Some(SystemTime::now()));
        }
        m.failed(Some("a.example"), "serviceUnavailable", None);
        m.failed(Some("a.example"), "serviceUnavailable", None);
        m.failed(Some("a.example"), "clientError", None);
        m.dead_lettered(Some("a.example"), "clientError", None);
        m.target_call("a.example", Duration::from_millis(5), true);
        m.target_call("a.example", Duration::from_millis(5), false);
        m.batch_age(Duration::from_secs(2));
        m.breaker_state("a.example", BreakerState::Open);
        let streams = m.take();
        assert_eq!(
            find(&streams, Metric::MessagesDelivered, Some("a.example"))[0].total(),
            3.0
        );
        let failures = find(&streams, Metric::DeliveryFailures, Some("a.example"));
        assert_eq!(failures.len(), 2);
        let unavailable = failures
            .iter()
            .find(|s| s.dimensions.class.as_deref() == Some("serviceUnavailable"))
            .unwrap();
        assert_eq!(unavailable.total(), 2.0);
        let latency = find(&streams, Metric::TargetLatency, Some("a.example"))[0];
        assert_eq!(latency.values, Values::Distribution(vec![(5.0, 2)]));
        let ratio = find(&streams, Metric::TargetFailureRatio, Some("a.example"))[0];
        assert_eq!(ratio.values, Values::Distribution(vec![(0.0, 1), (1.0, 1)]));
        assert_eq!(
            find(&streams, Metric::BreakerState, Some("a.example"))[0].values,
            Values::Gauge(2.0)
        );
        assert_eq!(find(&streams, Metric::BatchAge, None)[0].total(), 2000.0);
        assert_eq!(
            find(&streams, Metric::DeliveryLatency, Some("a.example")).len(),
            1
        );
        assert!(m.take().is_empty(), "taken once");
    }

    #[test]
    fn names_are_fixed() {
        let names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert!(names.contains(&"MessagesDelivered"));
        assert_eq!(
            Metric::MessagesDelivered.prometheus_name(),
            "datasync_messages_delivered_total"
        );
        assert_eq!(
            Metric::DeliveryLatency.prometheus_name(),
            "datasync_delivery_latency_seconds"
        );
        for m in Metric::ALL {
            assert!(m.prometheus_name().starts_with("datasync_"));
        }
    }
}
