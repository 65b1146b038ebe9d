//! Green, amber or red for each stream and each target host, and the worst of them: what the
//! status page shows first. The thresholds are `[status]`'s ([`StatusConfig`]).
//!
//! - The data stream: by the age of the oldest message the data connector has not handed to
//!   process (amber from `backlog_amber_seconds`, red from `backlog_red_seconds`).
//! - An error stream: green when nothing is pending; amber while messages wait for the retry
//!   schedule (or, on a stream it does not retry, for an operator's replay); red when the
//!   oldest has waited `backlog_red_seconds`.
//! - The dead-letter stream: amber when a message was dead-lettered within the health window.
//! - A target host: red when its breaker is open or its failed share of attempts in the window
//!   reaches `failure_ratio_red`; amber when half-open, paused, or from `failure_ratio_amber`.

use datasync_core::deliver::{BreakerState, HostHealth};
use serde::{Deserialize, Serialize};

use super::page::age_text;
use crate::stack::config::StatusConfig;
use crate::stack::metrics::Counts;

/// A health level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Working.
    #[default]
    Green,
    /// Needs a look: failures being retried, a backlog building, new dead letters.
    Amber,
    /// Needs action: a breaker open, most attempts failing, a backlog too old.
    Red,
}

/// The whole stack's health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// The worst level below.
    pub overall: Level,
    /// The window the hosts' failure ratios are taken over, seconds.
    pub window_seconds: u64,
    /// Per stream.
    pub streams: Vec<StreamHealth>,
    /// Per target host.
    pub hosts: Vec<HostLevel>,
}

/// One stream's level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamHealth {
    /// The stream's name.
    pub stream: String,
    /// Its level.
    pub level: Level,
    /// Why, in words.
    pub reason: String,
    /// Messages waiting now (not consumed by the data connector, or pending retry).
    pub pending_now: i64,
    /// Age of the oldest of them, seconds; null when none waits.
    pub oldest_age_seconds: Option<f64>,
}

/// One target host's level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLevel {
    /// `host[:port]`.
    pub host: String,
    /// Its level.
    pub level: Level,
    /// Why, in words.
    pub reason: String,
    /// Deliveries (2xx) in the window.
    pub delivered: u64,
    /// Failed attempts in the window.
    pub failed: u64,
    /// `failed / (delivered + failed)` in the window; null without attempts.
    pub failure_ratio: Option<f64>,
    /// The breaker's state, when a function reported the host.
    pub breaker: Option<String>,
}

/// What a stream's level is judged on.
#[derive(Debug, Clone)]
pub struct StreamInput {
    /// The stream's name.
    pub stream: String,
    /// What kind of stream it is.
    pub kind: StreamKind,
    /// Messages waiting now.
    pub pending: i64,
    /// The oldest one's age, seconds.
    pub oldest_age: Option<f64>,
}

/// The kinds of stream health is judged differently for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The data stream.
    Data,
    /// An error stream the retry schedule replays (`retried`) or one waiting for an operator.
    Errors {
        /// Whether the retry schedule replays it.
        retried: bool,
    },
    /// The dead-letter stream, with the messages dead-lettered within the window.
    DeadLetter {
        /// Dead-lettered within the window.
        recent: u64,
    },
}

fn backlog_level(cfg: &StatusConfig, age: Option<f64>) -> Level {
    match age {
        Some(a) if a >= cfg.backlog_red_seconds as f64 => Level::Red,
        Some(a) if a >= cfg.backlog_amber_seconds as f64 => Level::Amber,
        _ => Level::Green,
    }
}

/// A stream's level and why.
pub fn stream_health(cfg: &StatusConfig, window: u64, s: &StreamInput) -> StreamHealth {
    let oldest = s
        .oldest_age
        .map(|a| format!(", the oldest waiting {}", age_text(a)))
        .unwrap_or_default();
    let (level, reason) = match s.kind {
        StreamKind::Data => {
            let level = backlog_level(cfg, s.oldest_age);
            if s.pending == 0 {
                (level, "every message handed to process".to_owned())
            } else {
                (level, format!("{} waiting for process{oldest}", s.pending))
            }
        }
        StreamKind::Errors { retried } => {
            if s.pending == 0 {
                (Level::Green, "nothing pending".to_owned())
            } else {
                let level = backlog_level(cfg, s.oldest_age).max(Level::Amber);
                let by = if retried {
                    "the retry schedule"
                } else {
                    "an operator's replay"
                };
                (level, format!("{} pending for {by}{oldest}", s.pending))
            }
        }
        StreamKind::DeadLetter { recent } => {
            if recent > 0 {
                (
                    Level::Amber,
                    format!("{recent} dead-lettered in the last {window} s"),
                )
            } else {
                (
                    Level::Green,
                    format!("none in the last {window} s ({} retained)", s.pending),
                )
            }
        }
    };
    StreamHealth {
        stream: s.stream.clone(),
        level,
        reason,
        pending_now: s.pending,
        oldest_age_seconds: s.oldest_age,
    }
}

/// A host's level and why, from what the functions reported (`None`: no report) and its
/// counts in the window.
pub fn host_health(
    cfg: &StatusConfig,
    window: u64,
    host: &str,
    report: Option<&HostHealth>,
    counts: Counts,
) -> HostLevel {
    let attempts = counts.delivered + counts.failed;
    let ratio = (attempts > 0).then(|| counts.failed as f64 / attempts as f64);
    let mut level = match ratio {
        Some(r) if r >= cfg.failure_ratio_red => Level::Red,
        Some(r) if r >= cfg.failure_ratio_amber => Level::Amber,
        _ => Level::Green,
    };
    let mut why = vec![match ratio {
        Some(r) => format!(
            "{} of {attempts} attempts failed in the last {window} s ({:.0}%)",
            counts.failed,
            r * 100.0
        ),
        None => format!("no attempts in the last {window} s"),
    }];
    if let Some(h) = report {
        match h.breaker {
            BreakerState::Open => {
                level = Level::Red;
                why.insert(0, format!("breaker {}", super::page::breaker_text(h)));
            }
            BreakerState::HalfOpen => {
                level = level.max(Level::Amber);
                why.insert(0, "breaker half-open (probing)".to_owned());
            }
            BreakerState::Closed => {}
        }
        if let Some(ms) = h.paused_ms {
            level = level.max(Level::Amber);
            why.push(format!(
                "paused {:.1} s more (Retry-After)",
                ms as f64 / 1000.0
            ));
        }
    }
    HostLevel {
        host: host.to_owned(),
        level,
        reason: why.join("; "),
        delivered: counts.delivered,
        failed: counts.failed,
        failure_ratio: ratio.map(|r| (r * 1000.0).round() / 1000.0),
        breaker: report.map(|h| h.breaker.as_str().to_owned()),
    }
}

/// Every host the functions reported or the window counted, each once (the worst breaker when
/// several functions report it).
pub fn hosts(
    cfg: &StatusConfig,
    window: u64,
    reports: &[HostHealth],
    counts: &[(String, Counts)],
) -> Vec<HostLevel> {
    let mut names: Vec<&str> = reports.iter().map(|h| h.host.as_str()).collect();
    names.extend(
        counts
            .iter()
            .map(|(h, _)| h.as_str())
            .filter(|h| !h.is_empty()),
    );
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let report = reports
                .iter()
                .filter(|h| h.host == name)
                .max_by_key(|h| breaker_rank(h.breaker));
            let c = counts
                .iter()
                .find(|(h, _)| h == name)
                .map(|(_, c)| *c)
                .unwrap_or_default();
            host_health(cfg, window, name, report, c)
        })
        .collect()
}

fn breaker_rank(b: BreakerState) -> u8 {
    match b {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn report(breaker: BreakerState) -> HostHealth {
        HostHealth {
            host: "t:1".into(),
            breaker,
            probes_in_ms: None,
            concurrency: 1,
            max_concurrency: 4,
            paused_ms: None,
        }
    }

    fn counts(delivered: u64, failed: u64) -> Counts {
        Counts {
            delivered,
            failed,
            ..Counts::default()
        }
    }

    #[test]
    fn a_host_is_judged_by_its_failure_ratio_and_its_breaker() {
        let cfg = StatusConfig::default();
        let level = |r: Option<&HostHealth>, c| host_health(&cfg, 60, "t:1", r, c).level;
        assert_eq!(level(None, counts(0, 0)), Level::Green);
        assert_eq!(level(None, counts(99, 1)), Level::Green);
        assert_eq!(level(None, counts(90, 10)), Level::Amber);
        assert_eq!(level(None, counts(1, 1)), Level::Red);
        let open = report(BreakerState::Open);
        assert_eq!(level(Some(&open), counts(5, 0)), Level::Red);
        let half = report(BreakerState::HalfOpen);
        assert_eq!(level(Some(&half), counts(5, 0)), Level::Amber);
        let h = host_health(&cfg, 60, "t:1", None, counts(1, 3));
        assert_eq!(h.failure_ratio, Some(0.75));
        assert!(h.reason.contains("3 of 4 attempts failed"), "{}", h.reason);
        let listed = hosts(
            &cfg,
            60,
            &[report(BreakerState::Closed), open],
            &[(String::new(), counts(0, 0)), ("u:2".into(), counts(1, 0))],
        );
        let names: Vec<_> = listed.iter().map(|h| (h.host.as_str(), h.level)).collect();
        assert_eq!(names, [("t:1", Level::Red), ("u:2", Level::Green)]);
    }

    #[test]
    fn streams_are_judged_by_backlog_pending_and_new_dead_letters() {
        let cfg = StatusConfig::default();
        let level = |kind, pending, age| {
            stream_health(
                &cfg,
                60,
                &StreamInput {
                    stream: "s".into(),
                    kind,
                    pending,
                    oldest_age: age,
                },
            )
            .level
        };
        assert_eq!(level(StreamKind::Data, 3, Some(1.0)), Level::Green);
        assert_eq!(level(StreamKind::Data, 3, Some(31.0)), Level::Amber);
        assert_eq!(level(StreamKind::Data, 3, Some(301.0)), Level::Red);
        let errors = StreamKind::Errors { retried: true };
        assert_eq!(level(errors, 0, None), Level::Green);
        assert_eq!(level(errors, 2, Some(0.5)), Level::Amber);
        assert_eq!(level(errors, 2, Some(400.0)), Level::Red);
        assert_eq!(
            level(StreamKind::DeadLetter { recent: 1 }, 5, None),
            Level::Amber
        );
        assert_eq!(
            level(StreamKind::DeadLetter { recent: 0 }, 5, None),
            Level::Green
        );
    }
}
