//! Evaluating a parsed query over stored datapoints: filter the streams, group them, cut time
//! into windows, and compute each window's statistic; then keep the values that meet the
//! predicate, or join queries.
//!
//! Windows start every `resolution` from `start` rounded down to it, and each covers
//! `[t, t + interval)` (overlapping when the resolution is finer than the interval). A
//! datapoint counts `count` times its value (the API's definition of `count`): `sum` is
//! Σ value·count, `mean` Σ value·count / Σ count, `count` Σ count, `percentile(p)` the
//! smallest value with at least p of the observations at or below it.

use std::collections::BTreeMap;

use super::mql::{Expr, Grouping, Join, Query, Statistic};
use crate::store::metrics::StoredStream;

/// One answered stream: its dimensions and `(ms, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// The stream's (or group's) dimensions.
    pub dimensions: BTreeMap<String, String>,
    /// Metadata of the first stream in it.
    pub metadata: BTreeMap<String, String>,
    /// The values, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// The time a query covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Inclusive start, ms.
    pub start: i64,
    /// Exclusive end, ms.
    pub end: i64,
    /// Between window starts, ms.
    pub resolution: i64,
}

impl Window {
    /// The window starts: from `start` rounded down to the resolution, before `end`.
    fn starts(&self) -> impl Iterator<Item = i64> {
        let res = self.resolution.max(1);
        let first = self.start.div_euclid(res) * res;
        let end = self.end;
        (0..)
            .map(move |k| first + k * res)
            .take_while(move |t| *t < end)
    }
}

/// Evaluates `expr`; `load(query)` gives the streams of the query's metric, with datapoints
/// from `window.start - lookback(query)` (see [`lookback_ms`]).
pub(crate) fn evaluate(
    expr: &Expr,
    window: Window,
    mut load: impl FnMut(&Query) -> Vec<StoredStream>,
) -> Vec<Series> {
    let first = query(&expr.first, window, load(&expr.first));
    if expr.rest.is_empty() {
        return first;
    }
    let mut truth = truth_of(&expr.first, &first);
    for (join, q) in &expr.rest {
        let other = truth_of(q, &query(q, window, load(q)));
        truth = window
            .starts()
            .filter(|t| {
                let (a, b) = (truth.contains(t), other.contains(t));
                match join {
                    Join::And => a && b,
                    Join::Or => a || b,
                }
            })
            .collect();
    }
    vec![Series {
        dimensions: BTreeMap::new(),
        metadata: BTreeMap::new(),
        points: truth.into_iter().map(|t| (t, 1.0)).collect(),
    }]
}

/// How far before the window's start a query needs datapoints: its absence period.
pub(crate) fn lookback_ms(q: &Query) -> i64 {
    match q.statistic {
        Statistic::Absent(period) => period.as_millis() as i64,
        _ => 0,
    }
}

/// The window starts at which a query's condition holds: a value that met its predicate, an
/// absence (1), or with neither, any value.
fn truth_of(q: &Query, series: &[Series]) -> Vec<i64> {
    let mut times: Vec<i64> = series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|(_, v)| !matches!(q.statistic, Statistic::Absent(_)) || *v == 1.0)
        .map(|(t, _)| *t)
        .collect();
    times.sort_unstable();
    times.dedup();
    times
}

/// One query's series.
fn query(q: &Query, window: Window, streams: Vec<StoredStream>) -> Vec<Series> {
    let matching: Vec<StoredStream> = streams
        .into_iter()
        .filter(|s| {
            q.filters
                .iter()
                .all(|f| f.matches(s.key.dimensions.get(f.dimension()).map(String::as_str)))
        })
        .collect();
    let mut groups = group(q, matching);
    if groups.is_empty() && matches!(q.statistic, Statistic::Absent(_)) {
        // No stream at all: absent everywhere, under the dimensions the filters name.
        let dims = q
            .filters
            .iter()
            .filter_map(|f| match f {
                super::mql::Filter::Eq(d, v) => Some((d.clone(), v.clone())),
                _ => None,
            })
            .collect();
        groups.push((dims, BTreeMap::new(), Vec::new()));
    }
    let interval = q.interval.as_millis() as i64;
    groups
        .into_iter()
        .map(|(dimensions, metadata, mut points)| {
            points.sort_by_key(|p| p.0);
            let values = window
                .starts()
                .filter_map(|t| {
                    let to = (t + interval).min(window.end);
                    let v = statistic(q.statistic, &points, t, to, window.start)?;
                    match q.predicate {
                        Some((cmp, n)) if !cmp.holds(v, n) => None,
                        _ => Some((t, v)),
                    }
                })
                .collect();
            Series {
                dimensions,
                metadata,
                points: values,
            }
        })
        .filter(|s| !s.points.is_empty() || q.predicate.is_none())
        .collect()
}

type Group = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<(i64, f64, u64)>,
);

/// The streams combined as the query's grouping says.
fn group(q: &Query, streams: Vec<StoredStream>) -> Vec<Group> {
    let mut groups: BTreeMap<Vec<(String, String)>, Group> = BTreeMap::new();
    for s in streams {
        let dims: BTreeMap<String, String> = match &q.grouping {
            None => s.key.dimensions.clone(),
            Some(Grouping::All) => BTreeMap::new(),
            Some(Grouping::By(names)) => names
                .iter()
                .filter_map(|n| s.key.dimensions.get(n).map(|v| (n.clone(), v.clone())))
                .collect(),
        };
        let id: Vec<(String, String)> = dims.clone().into_iter().collect();
        let entry = groups
            .entry(id)
            .or_insert_with(|| (dims, s.metadata.clone(), Vec::new()));
        entry.2.extend(s.points);
    }
    groups.into_values().collect()
}

/// The statistic of the datapoints in `[from, to)` (sorted); `None` when there is none to
/// report. Absence looks back from `from` for the last datapoint (before `origin`, the
/// query's start, too).
fn statistic(
    stat: Statistic,
    points: &[(i64, f64, u64)],
    from: i64,
    to: i64,
    origin: i64,
) -> Option<f64> {
    let lo = points.partition_point(|p| p.0 < from.max(origin));
    let hi = points.partition_point(|p| p.0 < to);
    let window = &points[lo..hi.max(lo)];
    if let Statistic::Absent(period) = stat {
        if !window.is_empty() {
            return Some(0.0);
        }
        // 1 while the last datapoint is within the detection period; after it, nothing.
        let last = points[..lo].last().map(|p| p.0);
        return match last {
            Some(at) if from - at > period.as_millis() as i64 => None,
            _ => Some(1.0),
        };
    }
    if window.is_empty() {
        return None;
    }
    let count: u64 = window.iter().map(|p| p.2).sum();
    let sum: f64 = window.iter().map(|p| p.1 * p.2 as f64).sum();
    Some(match stat {
        Statistic::Sum => sum,
        Statistic::Mean => sum / count as f64,
        Statistic::Count => count as f64,
        Statistic::Max => window.iter().map(|p| p.1).fold(f64::MIN, f64::max),
        Statistic::Min => window.iter().map(|p| p.1).fold(f64::MAX, f64::min),
        Statistic::Rate => {
            let (first, last) = (window[0], window[window.len() - 1]);
            let secs = (last.0 - first.0) as f64 / 1000.0;
            if secs > 0.0 {
                (last.1 - first.1) / secs
            } else {
                0.0
            }
        }
        Statistic::Percentile(p) => {
            let mut values: Vec<(f64, u64)> = window.iter().map(|x| (x.1, x.2)).collect();
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let rank = (p * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            values
                .iter()
                .find(|(_, n)| {
                    seen += n;
                    seen >= rank
                })
                .map_or(values[values.len() - 1].0, |v| v.0)
        }
        Statistic::Absent(_) => 0.0,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::monitoring::mql::parse;
    use crate::store::metrics::StreamKey;

    fn stream(dims: &[(&str, &str)], points: &[(i64, f64, u64)]) -> StoredStream {
        StoredStream {
            key: StreamKey {
                compartment: "c".into(),
                namespace: "datasync".into(),
                name: "M".into(),
                resource_group: None,
                dimensions: dims
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            metadata: BTreeMap::new(),
            points: points.to_vec(),
        }
    }

    fn run(query: &str, streams: Vec<StoredStream>) -> Vec<Series> {
        let window = Window {
            start: 0,
            end: 120_000,
            resolution: 60_000,
        };
        let expr = parse(query).unwrap();
        evaluate(&expr, window, |_| streams.clone())
    }

    fn streams() -> Vec<StoredStream> {
        vec![
            stream(
                &[("targetHost", "a"), ("class", "x")],
                &[(1_000, 2.0, 1), (61_000, 5.0, 1)],
            ),
            stream(&[("targetHost", "a"), ("class", "y")], &[(2_000, 3.0, 1)]),
            stream(&[("targetHost", "b"), ("class", "x")], &[(3_000, 10.0, 4)]),
        ]
    }

    #[test]
    fn statistics_weigh_each_value_by_its_count() {
        let s = run("M[1m].grouping().sum()", streams());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].points, vec![(0, 45.0), (60_000, 5.0)]);
        let s = run("M[1m].grouping().count()", streams());
        assert_eq!(s[0].points, vec![(0, 6.0), (60_000, 1.0)]);
        let s = run("M[1m].grouping().mean()", streams());
        assert_eq!(s[0].points[0], (0, 45.0 / 6.0));
        let s = run("M[2m].grouping().percentile(0.5)", streams());
        assert_eq!(s[0].points[0], (0, 10.0));
        let s = run("M[2m].grouping().percentile(0.2)", streams());
        assert_eq!(s[0].points[0], (0, 3.0));
        let s = run("M[2m].grouping().max()", streams());
        assert_eq!(s[0].points[0].1, 10.0);
        let s = run("M[2m].grouping().min()", streams());
        assert_eq!(s[0].points[0].1, 2.0);
    }

    #[test]
    fn groups_filters_and_predicates() {
        let s = run("M[2m].groupBy(targetHost).sum()", streams());
        let by: Vec<(String, f64)> = s
            .iter()
            .map(|s| (s.dimensions["targetHost"].clone(), s.points[0].1))
            .collect();
        assert_eq!(by, vec![("a".into(), 10.0), ("b".into(), 40.0)]);
        let s = run(r#"M[2m]{class = "x"}.sum()"#, streams());
        assert_eq!(s.len(), 2, "each stream apart");
        let s = run(
            r#"M[2m]{targetHost =~ "b|c*"}.grouping().sum() > 39"#,
            streams(),
        );
        assert_eq!(s[0].points, vec![(0, 40.0)]);
        let s = run("M[1m].groupBy(targetHost).sum() > 20", streams());
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].dimensions["targetHost"], "b");
    }

    #[test]
    fn absence_and_joins() {
        let s = run(
            r#"M[1m]{targetHost = "b"}.groupBy(targetHost).absent()"#,
            streams(),
        );
        assert_eq!(s[0].points, vec![(0, 0.0), (60_000, 1.0)]);
        let s = run(r#"M[1m]{targetHost = "zzz"}.absent()"#, streams());
        assert_eq!(s[0].dimensions["targetHost"], "zzz");
        assert_eq!(s[0].points, vec![(0, 1.0), (60_000, 1.0)]);
        // Accepted in both minutes, delivered (host b) only in the first.
        let s = run(
            r#"M[1m].grouping().sum() > 0 && M[1m]{targetHost = "b"}.grouping().absent()"#,
            streams(),
        );
        assert_eq!(s[0].points, vec![(60_000, 1.0)]);
        let s = run(
            r#"M[1m].grouping().sum() > 100 || M[1m].grouping().sum() < 6"#,
            streams(),
        );
        assert_eq!(s[0].points, vec![(60_000, 1.0)]);
    }
}
