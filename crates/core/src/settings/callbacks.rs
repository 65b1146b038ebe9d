//! `callback_*`: how long delivery callbacks may take (see [`crate::callback`]).

use std::time::Duration;

use crate::function_config as key;

use super::keys::Keys;
use super::ConfigError;

/// The bounds of delivery callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackSettings {
    /// `callback_timeout_ms`: one callback call, connect to last byte (default 2 s; the
    /// standard suggests 15 to 30 s, but a callback is sent while the connector waits for the
    /// batch's answer, so it is kept short and retried instead).
    pub timeout: Duration,
    /// `callback_budget_ms`: the most time a batch's callbacks add to its invocation, all
    /// of them together, retries included (default 3 s).
    pub budget: Duration,
    /// How long a callback host whose call timed out or could not be connected to is not
    /// called again by this instance (its callbacks are given up at once): a dead endpoint
    /// costs one budget per cool-down, not one per batch.
    pub host_cool_down: Duration,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            budget: Duration::from_secs(3),
            host_cool_down: Duration::from_secs(30),
        }
    }
}

/// The callback settings.
pub(super) fn settings<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<CallbackSettings, ConfigError> {
    let default = CallbackSettings::default();
    Ok(CallbackSettings {
        timeout: keys.millis(key::CALLBACK_TIMEOUT_MS, default.timeout, 50..=30_000)?,
        budget: keys.millis(key::CALLBACK_BUDGET_MS, default.budget, 50..=60_000)?,
        host_cool_down: default.host_cool_down,
    })
}
