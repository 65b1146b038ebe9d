//! `GET /metrics`: every observation `datasync_core::metrics` forwards to the `metrics` facade,
//! in the Prometheus text exposition format, rendered by `metrics-exporter-prometheus` (no
//! listener of its own: the local gateway serves it beside `/status`, under the same rule —
//! no key, as the status page).
//!
//! The facade has one recorder per process, so [`install`] installs it once and every stack in
//! the process shares it (`datasync up` runs one stack per process; a program that starts two
//! sees both stacks' observations in each one's `/metrics`). When the embedding program
//! installed a recorder of its own first, `/metrics` answers 503 and the charts stay at zero.
//!
//! Beside the Prometheus recorder, [`Totals`] keeps the running sums the status page charts
//! and its health read (accepted, delivered, failed, dead-lettered per target host), so the
//! page and `/metrics` count the same observations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Messages populate accepted (written to the data stream).
pub const ACCEPTED: &str = "datasync_messages_accepted_total";
/// Messages a target answered 2xx.
pub const DELIVERED: &str = "datasync_messages_delivered_total";
/// Failed delivery attempts, by class.
pub const FAILURES: &str = "datasync_delivery_failures_total";
/// Messages written to the dead-letter stream.
pub const DEAD_LETTERED: &str = "datasync_messages_dead_lettered_total";
/// The label naming the target host.
pub const TARGET_HOST: &str = "target_host";

/// Histogram buckets for every `*_seconds` metric: target calls take milliseconds to seconds,
/// delivery latency and batch age run to minutes or hours when a backlog builds.
pub const SECONDS_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 3600.0,
];

/// The Prometheus content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The counters [`Totals`] keeps, in the order of [`HostTotals::counts`].
const TRACKED: [&str; 4] = [ACCEPTED, DELIVERED, FAILURES, DEAD_LETTERED];

/// Running sums of one target host (the empty host: observations without one, such as
/// populate's acceptances).
#[derive(Debug, Default)]
struct HostTotals {
    counts: [AtomicU64; 4],
}

/// A target host's sums at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Accepted by populate.
    pub accepted: u64,
    /// Delivered (2xx).
    pub delivered: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Dead-lettered.
    pub dead_lettered: u64,
}

impl Counts {
    /// `self - earlier`, field by field (0 where a counter went back).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            accepted: self.accepted.saturating_sub(earlier.accepted),
            delivered: self.delivered.saturating_sub(earlier.delivered),
            failed: self.failed.saturating_sub(earlier.failed),
            dead_lettered: self.dead_lettered.saturating_sub(earlier.dead_lettered),
        }
    }

    /// The sum of both.
    pub fn plus(&self, other: &Counts) -> Counts {
        Counts {
            accepted: self.accepted + other.accepted,
            delivered: self.delivered + other.delivered,
            failed: self.failed + other.failed,
            dead_lettered: self.dead_lettered + other.dead_lettered,
        }
    }
}

/// The running sums of the tracked counters per target host.
#[derive(Debug, Default)]
pub struct Totals {
    hosts: Mutex<HashMap<String, Arc<HostTotals>>>,
}

impl Totals {
    fn host(&self, host: &str) -> Arc<HostTotals> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = hosts.get(host) {
            return Arc::clone(h);
        }
        let h = Arc::new(HostTotals::default());
        hosts.insert(host.to_owned(), Arc::clone(&h));
        h
    }

    /// Every host's sums now (the empty host for observations without one).
    pub fn snapshot(&self) -> Vec<(String, Counts)> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, Counts)> = hosts
            .iter()
            .map(|(host, t)| {
                let c = |i: usize| t.counts[i].load(Ordering::Relaxed);
                (
                    host.clone(),
                    Counts {
                        accepted: c(0),
                        delivered: c(1),
                        failed: c(2),
                        dead_lettered: c(3),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A counter that adds to the Prometheus recorder's and to a [`Totals`] sum.
struct Tee {
    inner: Counter,
    host: Arc<HostTotals>,
    slot: usize,
}

impl CounterFn for Tee {
    fn increment(&self, value: u64) {
        self.inner.increment(value);
        self.host.counts[self.slot].fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.inner.absolute(value);
        self.host.counts[self.slot].fetch_max(value, Ordering::Relaxed);
    }
}

/// The recorder the stack installs: Prometheus, with [`Totals`] beside it.
struct StackRecorder {
    prometheus: PrometheusRecorder,
    totals: Arc<Totals>,
}

impl Recorder for StackRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let inner = self.prometheus.register_counter(key, metadata);
        let Some(slot) = TRACKED.iter().position(|n| *n == key.name()) else {
            return inner;
        };
        let host = key
            .labels()
            .find(|l| l.key() == TARGET_HOST)
            .map_or("", |l| l.value());
        Counter::from_arc(Arc::new(Tee {
            inner,
            host: self.totals.host(host),
            slot,
        }))
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.prometheus.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.prometheus.register_histogram(key, metadata)
    }
}

/// The installed recorder's handles: rendering `/metrics`, and the sums.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
    /// The running sums the status page reads.
    pub totals: Arc<Totals>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// Every metric in the text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains the histograms' sample buffers so they do not grow between scrapes (the status
    /// page's sampler calls this at each sample).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

static INSTALLED: OnceLock<Option<Exporter>> = OnceLock::new();

/// Installs the stack's recorder as the process's `metrics` recorder, once; later calls
/// return the same handles. `None` when another recorder was installed first.
pub fn install() -> Option<Exporter> {
    INSTALLED
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .ok()?;
            let prometheus = builder.build_recorder();
            let exporter = Exporter {
                handle: prometheus.handle(),
                totals: Arc::new(Totals::default()),
            };
            let recorder = StackRecorder {
                prometheus,
                totals: Arc::clone(&exporter.totals),
            };
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(exporter),
                Err(_) => {
                    tracing::warn!(
                        "another metrics recorder is installed in this process: /metrics answers 503"
                    );
                    None
                }
            }
        })
        .clone()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn tracked_counters_reach_prometheus_and_the_totals_per_host() {
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = prometheus.handle();
        let totals = Arc::new(Totals::default());
        let recorder = StackRecorder {
            prometheus,
            totals: Arc::clone(&totals),
        };
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!(DELIVERED, TARGET_HOST => "a:1", "function" => "process")
                .increment(2);
            metrics::counter!(FAILURES, TARGET_HOST => "a:1", "class" => "serviceUnavailable")
                .increment(1);
            metrics::counter!(ACCEPTED, "function" => "populate").increment(3);
            metrics::counter!("datasync_other_total").increment(7);
            metrics::histogram!("datasync_delivery_latency_seconds", TARGET_HOST => "a:1")
                .record(0.2);
        });
        let snap = totals.snapshot();
        assert_eq!(
            snap,
            vec![
                (
                    String::new(),
                    Counts {
                        accepted: 3,
                        ..Counts::default()
                    }
                ),
                (
                    "a:1".to_owned(),
                    Counts {
                        delivered: 2,
                        failed: 1,
                        ..Counts::default()
                    }
                ),
            ]
        );
        let text = handle.render();
        assert!(text.contains("datasync_other_total 7"), "{text}");
        assert!(
            text.contains(
                "datasync_delivery_latency_seconds_bucket{target_host=\"a:1\",le=\"0.25\"} 1"
            ),
            "{text}"
        );
    }
}
