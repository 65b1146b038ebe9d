//! How one target host is kept from holding back the others: its circuit breaker, its share
//! of a batch's time and its retry budget (`docs/isolation.md`).

use std::time::Duration;

use crate::function_config as key;

use super::keys::Keys;
use super::ConfigError;

/// The isolation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Isolation {
    /// The circuit breaker.
    pub breaker: BreakerSettings,
    /// The most of a batch's time the calls to one host may take.
    pub host_time_share: Duration,
    /// The retry budget.
    pub budget: BudgetSettings,
}

/// When a host's circuit breaker opens, and how it closes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Failures in a row that open it (0: never on this count).
    pub consecutive_failures: u32,
    /// The failure share (0 to 1) that opens it, once `min_calls` were made in the window
    /// (0: never on this share).
    pub failure_ratio: f64,
    /// Calls in the window before the share is judged.
    pub min_calls: u32,
    /// The window the share is counted over.
    pub window: Duration,
    /// How long it stays open before probes.
    pub cool_down: Duration,
    /// Successful probes that close it.
    pub probes: u32,
}

impl BreakerSettings {
    /// Whether calls cut at their host's allowance can open the breaker (the failures-in-a-row
    /// trigger is on); when they cannot, a host's allowance grows from its cuts without probes.
    pub fn cuts_open(&self) -> bool {
        self.consecutive_failures > 0
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            min_calls: 20,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
            probes: 1,
        }
    }
}

/// How many failing retries a host may get.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Failing retries per window, as a share (0 to 1) of the host's first attempts.
    pub ratio: f64,
    /// Failing retries always allowed per window, whatever the first attempts.
    pub min_per_window: u32,
    /// The window.
    pub window: Duration,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_window: 10,
            window: Duration::from_secs(60),
        }
    }
}

impl Default for Isolation {
    fn default() -> Self {
        Self {
            breaker: BreakerSettings::default(),
            host_time_share: Duration::from_secs(5),
            budget: BudgetSettings::default(),
        }
    }
}

/// Reads the isolation keys.
pub(super) fn isolation<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<Isolation, ConfigError> {
    let d = Isolation::default();
    let percent = |key: &str, default: f64| -> Result<f64, ConfigError> {
        let default = (default * 100.0).round() as u64;
        Ok(keys.number(key, default, 0..=100)? as f64 / 100.0)
    };
    let breaker = BreakerSettings {
        consecutive_failures: keys.number(
            key::BREAKER_CONSECUTIVE_FAILURES,
            u64::from(d.breaker.consecutive_failures),
            0..=10_000,
        )? as u32,
        failure_ratio: percent(key::BREAKER_FAILURE_PERCENT, d.breaker.failure_ratio)?,
        min_calls: keys.number(
            key::BREAKER_MIN_CALLS,
            u64::from(d.breaker.min_calls),
            1..=100_000,
        )? as u32,
        window: d.breaker.window,
        cool_down: keys.millis(
            key::BREAKER_COOL_DOWN_MS,
            d.breaker.cool_down,
            10..=3_600_000,
        )?,
        probes: keys.number(key::BREAKER_PROBES, u64::from(d.breaker.probes), 1..=100)? as u32,
    };
    let budget = BudgetSettings {
        ratio: percent(key::RETRY_BUDGET_PERCENT, d.budget.ratio)?,
        min_per_window: d.budget.min_per_window,
        window: keys.seconds(
            key::RETRY_BUDGET_WINDOW_SECONDS,
            d.budget.window,
            1..=86_400,
        )?,
    };
    Ok(Isolation {
        breaker,
        host_time_share: keys.millis(key::HOST_TIME_SHARE_MS, d.host_time_share, 10..=300_000)?,
        budget,
    })
}
