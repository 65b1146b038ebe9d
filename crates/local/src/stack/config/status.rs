//! `[status]`: what the status page keeps and when it calls something amber or red.
//!
//! ```toml
//! [status]
//! sample_interval_ms = 5000
//! health_window_seconds = 60
//! backlog_amber_seconds = 30
//! backlog_red_seconds = 300
//! failure_ratio_amber = 0.05
//! failure_ratio_red = 0.5
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// How far back the status page's charts go.
pub const HISTORY: Duration = Duration::from_secs(15 * 60);

/// `[status]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// How often, in ms, the stack samples its counters and backlog for the charts (default
    /// 5000: 180 points over the 15 minutes the charts show).
    pub sample_interval_ms: u64,
    /// The failure ratio of a target host is taken over this many seconds (default 60).
    pub health_window_seconds: u64,
    /// A stream whose oldest unconsumed message is this old is amber (default 30).
    pub backlog_amber_seconds: u64,
    /// ... and red from this age on (default 300).
    pub backlog_red_seconds: u64,
    /// A target host whose failed share of attempts in the window reaches this is amber
    /// (default 0.05).
    pub failure_ratio_amber: f64,
    /// ... and red from this share on (default 0.5).
    pub failure_ratio_red: f64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            sample_interval_ms: 5000,
            health_window_seconds: 60,
            backlog_amber_seconds: 30,
            backlog_red_seconds: 300,
            failure_ratio_amber: 0.05,
            failure_ratio_red: 0.5,
        }
    }
}

impl StatusConfig {
    /// The sampling interval.
    pub fn sample_interval(&self) -> Duration {
        Duration::from_millis(self.sample_interval_ms)
    }

    /// How many samples cover [`HISTORY`] (at least 2).
    pub fn history_len(&self) -> usize {
        let n = HISTORY.as_millis() / u128::from(self.sample_interval_ms.max(1));
        usize::try_from(n).unwrap_or(usize::MAX).max(2) + 1
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(100..=60_000).contains(&self.sample_interval_ms) {
            return Err(invalid(
                "status.sample_interval_ms",
                "must be from 100 to 60000",
            ));
        }
        if !(1..=900).contains(&self.health_window_seconds) {
            return Err(invalid(
                "status.health_window_seconds",
                "must be from 1 to 900",
            ));
        }
        if self.backlog_amber_seconds == 0 || self.backlog_red_seconds <= self.backlog_amber_seconds
        {
            return Err(invalid(
                "status.backlog_red_seconds",
                "must be above backlog_amber_seconds, which must be above 0",
            ));
        }
        let ratio = |r: f64| r > 0.0 && r <= 1.0;
        if !ratio(self.failure_ratio_amber)
            || !ratio(self.failure_ratio_red)
            || self.failure_ratio_red < self.failure_ratio_amber
        {
            return Err(invalid(
                "status.failure_ratio_red",
                "both ratios must be above 0 and at most 1, red at least amber",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::StackConfig;

    #[test]
    fn defaults_parse_and_bad_thresholds_are_refused() {
        let s = StackConfig::parse("").unwrap().into_settings().unwrap();
        assert_eq!(s.status.sample_interval_ms, 5000);
        assert_eq!(s.status.history_len(), 181);
        let s = StackConfig::parse("[status]\nsample_interval_ms = 500\n")
            .unwrap()
            .into_settings()
            .unwrap();
        assert_eq!(s.status.history_len(), 1801);
        for bad in [
            "sample_interval_ms = 10",
            "backlog_amber_seconds = 400",
            "failure_ratio_red = 0.01",
            "failure_ratio_amber = 0",
        ] {
            let err = StackConfig::parse(&format!("[status]\n{bad}\n"))
                .unwrap()
                .into_settings()
                .unwrap_err();
            assert!(err.to_string().contains("status."), "{bad}: {err}");
        }
    }
}
