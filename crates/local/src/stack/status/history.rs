//! The last 15 minutes the status page's charts draw, kept by the stack rather than by the page
//! so a reload (or a second browser) shows them at once: every `[status] sample_interval_ms`
//! the sampler takes the running sums of [`Totals`] and the backlog ages, and `/status` turns
//! consecutive samples into rates.
//!
//! The same samples give each target host's failure ratio over the health window.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::stack::metrics::Counts;

/// One sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// When, milliseconds since the epoch.
    pub at_ms: i64,
    /// The running sums per target host at that moment (the empty host: populate's).
    pub totals: Vec<(String, Counts)>,
    /// Age of the oldest message the data connector had not handed to process, in seconds.
    pub backlog_age: Option<f64>,
    /// Age of the oldest message pending in an error stream, in seconds.
    pub retry_backlog_age: Option<f64>,
}

impl Sample {
    /// The sums over every host.
    pub fn sum(&self) -> Counts {
        self.totals
            .iter()
            .fold(Counts::default(), |acc, (_, c)| acc.plus(c))
    }
}

/// The samples of the last 15 minutes, oldest first.
#[derive(Debug)]
pub struct History {
    len: usize,
    interval: Duration,
    samples: Mutex<VecDeque<Sample>>,
}

/// The charts' series, `/status`'s `history`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryDoc {
    /// Seconds between points.
    pub interval_seconds: f64,
    /// Oldest first, over the last 15 minutes.
    pub points: Vec<HistoryPoint>,
}

/// One point of the charts: rates since the previous sample and the backlog at the sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// When, milliseconds since the epoch.
    pub time_ms: i64,
    /// Messages populate accepted per second.
    pub accepted_per_second: f64,
    /// Messages delivered (2xx) per second.
    pub delivered_per_second: f64,
    /// Failed delivery attempts per second.
    pub failed_per_second: f64,
    /// Age of the oldest message not yet handed to process, seconds; null when none waits.
    pub backlog_age_seconds: Option<f64>,
    /// Age of the oldest message pending in an error stream, seconds; null when none waits.
    pub retry_backlog_age_seconds: Option<f64>,
}

/// Milliseconds since the epoch now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl History {
    /// Keeps `len` samples taken every `interval`.
    pub fn new(len: usize, interval: Duration) -> Self {
        Self {
            len: len.max(2),
            interval,
            samples: Mutex::new(VecDeque::with_capacity(len)),
        }
    }

    /// The sampling interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Adds a sample, forgetting the oldest beyond the length.
    pub fn push(&self, sample: Sample) {
        let mut s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back(sample);
        while s.len() > self.len {
            s.pop_front();
        }
    }

    /// The series the charts draw.
    pub fn doc(&self) -> HistoryDoc {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let mut points = Vec::with_capacity(s.len());
        let mut previous: Option<(i64, Counts)> = None;
        for sample in s.iter() {
            let sum = sample.sum();
            let (accepted, delivered, failed) = match previous {
                Some((at, before)) if sample.at_ms > at => {
                    let secs = (sample.at_ms - at) as f64 / 1000.0;
                    let d = sum.since(&before);
                    (
                        d.accepted as f64 / secs,
                        d.delivered as f64 / secs,
                        d.failed as f64 / secs,
                    )
                }
                _ => (0.0, 0.0, 0.0),
            };
            previous = Some((sample.at_ms, sum));
            points.push(HistoryPoint {
                time_ms: sample.at_ms,
                accepted_per_second: round2(accepted),
                delivered_per_second: round2(delivered),
                failed_per_second: round2(failed),
                backlog_age_seconds: sample.backlog_age,
                retry_backlog_age_seconds: sample.retry_backlog_age,
            });
        }
        // The first sample has no previous one to take a rate from.
        if points.len() > 1 {
            points.remove(0);
        }
        HistoryDoc {
            interval_seconds: self.interval.as_secs_f64(),
            points,
        }
    }

    /// What each target host did since `window` before `now_ms`, given its sums `now`: the
    /// difference from the newest sample at least `window` old (or the oldest sample).
    pub fn window(
        &self,
        now: &[(String, Counts)],
        now_ms: i64,
        window: Duration,
    ) -> Vec<(String, Counts)> {
        let s = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let cutoff = now_ms - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let base = s
            .iter()
            .rev()
            .find(|x| x.at_ms <= cutoff)
            .or_else(|| s.front());
        now.iter()
            .map(|(host, c)| {
                let before = base
                    .and_then(|b| b.totals.iter().find(|(h, _)| h == host))
                    .map(|(_, c)| *c)
                    .unwrap_or_default();
                (host.clone(), c.since(&before))
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample(at_ms: i64, delivered: u64, failed: u64) -> Sample {
        Sample {
            at_ms,
            totals: vec![(
                "h:1".into(),
                Counts {
                    delivered,
                    failed,
                    ..Counts::default()
                },
            )],
            backlog_age: Some(1.5),
            retry_backlog_age: None,
        }
    }

    #[test]
    fn rates_come_from_consecutive_samples_and_old_ones_are_forgotten() {
        let h = History::new(3, Duration::from_secs(2));
        h.push(sample(0, 0, 0));
        h.push(sample(2_000, 10, 4));
        h.push(sample(4_000, 30, 4));
        let doc = h.doc();
        assert_eq!(doc.points.len(), 2);
        assert_eq!(doc.points[0].delivered_per_second, 5.0);
        assert_eq!(doc.points[0].failed_per_second, 2.0);
        assert_eq!(doc.points[1].delivered_per_second, 10.0);
        assert_eq!(doc.points[1].failed_per_second, 0.0);
        assert_eq!(doc.points[1].backlog_age_seconds, Some(1.5));
        h.push(sample(6_000, 30, 4));
        let doc = h.doc();
        assert_eq!(doc.points.len(), 2, "three samples kept, two rates");
        assert_eq!(doc.points[0].time_ms, 4_000);
    }

    #[test]
    fn the_window_counts_since_the_newest_sample_old_enough() {
        let h = History::new(10, Duration::from_secs(1));
        h.push(sample(0, 0, 0));
        h.push(sample(1_000, 5, 5));
        h.push(sample(2_000, 5, 9));
        let now = vec![(
            "h:1".to_owned(),
            Counts {
                delivered: 8,
                failed: 9,
                ..Counts::default()
            },
        )];
        let w = h.window(&now, 3_000, Duration::from_secs(2));
        assert_eq!(w[0].1.delivered, 3);
        assert_eq!(w[0].1.failed, 4);
        // A window longer than the history counts from the oldest sample.
        let w = h.window(&now, 3_000, Duration::from_secs(60));
        assert_eq!((w[0].1.delivered, w[0].1.failed), (8, 9));
    }
}
