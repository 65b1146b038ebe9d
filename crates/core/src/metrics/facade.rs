//! The same observations, handed to the `metrics` crate's facade under the Prometheus names
//! (a no-op unless the process installed a recorder; the local stack does).

use metrics::Label;

use super::pending::{Stream, Values};
use super::{Kind, Metric};
use crate::function_config::Function;

/// Prometheus label names.
const FUNCTION: &str = "function";
const TARGET_HOST: &str = "target_host";
const CLASS: &str = "class";
const ROUTE: &str = "route";
/// `datasync_target_calls_total`'s label: `delivered` or `failed`.
const OUTCOME: &str = "outcome";

fn labels(function: Function, stream: &Stream) -> Vec<Label> {
    let d = &stream.dimensions;
    let mut labels = vec![Label::new(FUNCTION, function.name())];
    if let Some(h) = &d.target_host {
        labels.push(Label::new(TARGET_HOST, h.clone()));
    }
    if let Some(c) = &d.class {
        labels.push(Label::new(CLASS, c.clone()));
    }
    if let Some(r) = &d.route {
        labels.push(Label::new(ROUTE, r.clone()));
    }
    labels
}

/// Forwards `streams`: counters incremented by their counts, distributions recorded (in
/// seconds for the millisecond metrics), gauges set.
pub(super) fn forward(function: Function, streams: &[Stream]) {
    for stream in streams {
        let name = stream.metric.prometheus_name();
        let labels = labels(function, stream);
        match (&stream.values, stream.metric) {
            (Values::Distribution(values), Metric::TargetFailureRatio) => {
                for (value, n) in values {
                    let outcome = if *value > 0.0 { "failed" } else { "delivered" };
                    let mut l = labels.clone();
                    l.push(Label::new(OUTCOME, outcome));
                    metrics::counter!(name, l).increment(*n);
                }
            }
            (Values::Distribution(values), metric) => {
                let scale = if metric.unit() == "ms" { 0.001 } else { 1.0 };
                let h = metrics::histogram!(name, labels);
                for (value, n) in values {
                    h.record_many(value * scale, usize::try_from(*n).unwrap_or(usize::MAX));
                }
            }
            (Values::Counter(n), _) => metrics::counter!(name, labels).increment(*n),
            (Values::Gauge(v), _) => metrics::gauge!(name, labels).set(*v),
        }
        debug_assert!(matches!(
            (stream.metric.kind(), &stream.values),
            (Kind::Counter, Values::Counter(_))
                | (Kind::Distribution, Values::Distribution(_))
                | (Kind::Gauge, Values::Gauge(_))
        ));
    }
}
