//! What was observed since the last post, aggregated per metric stream, and the bounds that
//! keep one post within PostMetricData's limits (50 streams per call) and memory bounded.

use std::collections::{BTreeMap, HashMap};

use super::{Dimensions, Kind, Metric};
use crate::function_config::Function;

/// The most metric streams one PostMetricData call may carry (the API's per-call limit).
pub const MAX_STREAMS_PER_POST: usize = 50;

/// The most distinct values a distribution keeps per stream; past it, a new value counts
/// toward the nearest one kept.
const MAX_VALUES_PER_STREAM: usize = 256;

/// The most streams held between posts; past it, new target hosts count as `other`.
const MAX_PENDING_STREAMS: usize = 1_000;

/// The host every host folded away is counted under.
pub(super) const OTHER_HOST: &str = "other";

/// One metric stream's aggregated observations.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// The metric.
    pub metric: Metric,
    /// Its dimensions besides the function.
    pub dimensions: Dimensions,
    /// What was observed.
    pub values: Values,
}

/// Observations of one stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// How many.
    Counter(u64),
    /// Each value (rounded to 3 significant digits) with how often it was seen, ascending.
    Distribution(Vec<(f64, u64)>),
    /// The last value.
    Gauge(f64),
}

impl Stream {
    /// The sum of the values (a counter's count, a gauge's value).
    pub fn total(&self) -> f64 {
        match &self.values {
            Values::Counter(n) => *n as f64,
            Values::Distribution(v) => v.iter().map(|(x, n)| x * *n as f64).sum(),
            Values::Gauge(x) => *x,
        }
    }

    /// How many observations it holds (a gauge: one).
    pub fn observations(&self) -> u64 {
        match &self.values {
            Values::Counter(n) => *n,
            Values::Distribution(v) => v.iter().map(|(_, n)| n).sum(),
            Values::Gauge(_) => 1,
        }
    }
}

#[derive(Debug, Clone)]
enum Acc {
    Counter(u64),
    /// Keyed by the rounded value's bits: non-negative floats order as their bits do.
    Distribution(BTreeMap<u64, u64>),
    Gauge(f64),
}

impl Acc {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Acc::Counter(0),
            Kind::Distribution => Acc::Distribution(BTreeMap::new()),
            Kind::Gauge => Acc::Gauge(0.0),
        }
    }

    fn add_value(map: &mut BTreeMap<u64, u64>, value: f64, count: u64) {
        let key = round3(value).to_bits();
        if map.len() >= MAX_VALUES_PER_STREAM && !map.contains_key(&key) {
            let below = map.range(..key).next_back().map(|(k, _)| *k);
            let above = map.range(key..).next().map(|(k, _)| *k);
            let nearest = match (below, above) {
                (Some(b), Some(a)) => {
                    let v = f64::from_bits(key);
                    if v - f64::from_bits(b) <= f64::from_bits(a) - v {
                        b
                    } else {
                        a
                    }
                }
                (Some(k), None) | (None, Some(k)) => k,
                (None, None) => key,
            };
            *map.entry(nearest).or_insert(0) += count;
            return;
        }
        *map.entry(key).or_insert(0) += count;
    }

    fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Counter(a), Acc::Counter(b)) => *a += b,
            (Acc::Distribution(a), Acc::Distribution(b)) => {
                for (k, n) in b {
                    Self::add_value(a, f64::from_bits(k), n);
                }
            }
            // Folded hosts: the worst state shows.
            (Acc::Gauge(a), Acc::Gauge(b)) => *a = a.max(b),
            _ => {}
        }
    }

    fn weight(&self) -> u64 {
        match self {
            Acc::Counter(n) => *n,
            Acc::Distribution(m) => m.values().sum(),
            Acc::Gauge(_) => 0,
        }
    }

    fn into_values(self) -> Values {
        match self {
            Acc::Counter(n) => Values::Counter(n),
            Acc::Distribution(m) => {
                Values::Distribution(m.into_iter().map(|(k, n)| (f64::from_bits(k), n)).collect())
            }
            Acc::Gauge(x) => Values::Gauge(x),
        }
    }
}

/// `value` rounded to 3 significant digits (never negative): about 0.5% at most off, so a
/// batch's latencies take a few hundred datapoints at most.
fn round3(value: f64) -> f64 {
    if !value.is_finite() || value <= 0.0 {
        return 0.0;
    }
    let magnitude = value.log10().floor() as i32;
    let scale = 10f64.powi(2 - magnitude);
    (value * scale).round() / scale
}

/// The observations since the last post.
#[derive(Debug, Default)]
pub(super) struct Pending {
    streams: HashMap<(Metric, Dimensions), Acc>,
}

impl Pending {
    fn entry(&mut self, metric: Metric, dims: &Dimensions) -> &mut Acc {
        let mut key = (metric, dims.clone());
        if self.streams.len() >= MAX_PENDING_STREAMS
            && !self.streams.contains_key(&key)
            && key.1.target_host.is_some()
        {
            key.1.target_host = Some(OTHER_HOST.to_owned());
        }
        self.streams
            .entry(key)
            .or_insert_with(|| Acc::new(metric.kind()))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub(super) fn count(&mut self, metric: Metric, dims: &Dimensions, n: u64) {
        if let Acc::Counter(c) = self.entry(metric, dims) {
            *c += n;
        }
    }

    pub(super) fn observe(&mut self, metric: Metric, dims: &Dimensions, value: f64) {
        if let Acc::Distribution(m) = self.entry(metric, dims) {
            Acc::add_value(m, value, 1);
        }
    }

    pub(super) fn set(&mut self, metric: Metric, dims: &Dimensions, value: f64) {
        if let Acc::Gauge(g) = self.entry(metric, dims) {
            *g = value;
        }
    }

    /// Every stream, as recorded (for the facade, which has no per-call bound).
    pub(super) fn into_streams_unbounded(self) -> Vec<Stream> {
        self.streams
            .into_iter()
            .map(|((metric, dimensions), acc)| Stream {
                metric,
                dimensions,
                values: acc.into_values(),
            })
            .collect()
    }

    /// The streams, at most [`MAX_STREAMS_PER_POST`]: when there are more, target hosts are
    /// folded into `other`, the least busy first; if that is not enough (many classes and
    /// routes), the rest is dropped with a warning.
    pub(super) fn into_streams(self, function: Function) -> Vec<Stream> {
        let mut streams = self.streams;
        if streams.len() > MAX_STREAMS_PER_POST {
            let mut weight: HashMap<String, u64> = HashMap::new();
            for ((_, dims), acc) in &streams {
                if let Some(host) = &dims.target_host {
                    *weight.entry(host.clone()).or_insert(0) += acc.weight();
                }
            }
            let mut hosts: Vec<(String, u64)> = weight.into_iter().collect();
            hosts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut keep = hosts.len();
            while streams.len() > MAX_STREAMS_PER_POST && keep > 0 {
                keep -= 1;
                let kept: Vec<&str> = hosts[..keep].iter().map(|(h, _)| h.as_str()).collect();
                streams = fold_hosts(streams, &kept);
            }
        }
        let mut list: Vec<Stream> = streams
            .into_iter()
            .map(|((metric, dimensions), acc)| Stream {
                metric,
                dimensions,
                values: acc.into_values(),
            })
            .collect();
        list.sort_by(|a, b| (a.metric, &a.dimensions).cmp(&(b.metric, &b.dimensions)));
        if list.len() > MAX_STREAMS_PER_POST {
            tracing::warn!(
                function = function.name(),
                dropped = list.len() - MAX_STREAMS_PER_POST,
                "more metric streams than one PostMetricData call takes; the rest are dropped"
            );
            list.truncate(MAX_STREAMS_PER_POST);
        }
        list
    }
}

/// `streams` with every target host but `kept` counted as `other`.
fn fold_hosts(
    streams: HashMap<(Metric, Dimensions), Acc>,
    kept: &[&str],
) -> HashMap<(Metric, Dimensions), Acc> {
    let mut folded: HashMap<(Metric, Dimensions), Acc> = HashMap::new();
    for ((metric, mut dims), acc) in streams {
        if let Some(host) = &dims.target_host {
            if !kept.contains(&host.as_str()) {
                dims.target_host = Some(OTHER_HOST.to_owned());
            }
        }
        match folded.get_mut(&(metric, dims.clone())) {
            Some(existing) => existing.merge(acc),
            None => {
                folded.insert((metric, dims), acc);
            }
        }
    }
    folded
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn host(h: &str) -> Dimensions {
        Dimensions {
            target_host: Some(h.to_owned()),
            ..Dimensions::default()
        }
    }

    #[test]
    fn values_keep_three_significant_digits() {
        assert_eq!(round3(1234.5), 1230.0);
        assert_eq!(round3(5.0), 5.0);
        assert_eq!(round3(0.01234), 0.0123);
        assert_eq!(round3(-3.0), 0.0);
        assert_eq!(round3(f64::NAN), 0.0);
    }

    #[test]
    fn a_distribution_keeps_a_bounded_number_of_values_and_every_count() {
        let mut p = Pending::default();
        for i in 0..2_000u32 {
            p.observe(Metric::TargetLatency, &host("a"), f64::from(i) * 7.0 + 1.0);
        }
        let streams = p.into_streams(Function::Process);
        let Values::Distribution(values) = &streams[0].values else {
            panic!()
        };
        assert!(values.len() <= MAX_VALUES_PER_STREAM);
        assert_eq!(streams[0].observations(), 2_000);
    }

    #[test]
    fn too_many_streams_fold_the_least_busy_hosts_into_other() {
        let mut p = Pending::default();
        for i in 0..40 {
            let h = format!("h{i}.example");
            p.count(Metric::MessagesDelivered, &host(&h), 1 + i);
            p.observe(Metric::TargetLatency, &host(&h), 3.0);
        }
        let streams = p.into_streams(Function::Process);
        assert!(streams.len() <= MAX_STREAMS_PER_POST);
        let delivered: f64 = streams
            .iter()
            .filter(|s| s.metric == Metric::MessagesDelivered)
            .map(Stream::total)
            .sum();
        assert_eq!(delivered, (1..=40).sum::<u64>() as f64, "nothing lost");
        assert!(streams
            .iter()
            .any(|s| s.dimensions.target_host.as_deref() == Some(OTHER_HOST)));
        assert!(
            streams
                .iter()
                .any(|s| s.dimensions.target_host.as_deref() == Some("h39.example")),
            "the busiest host keeps its name"
        );
    }
}
