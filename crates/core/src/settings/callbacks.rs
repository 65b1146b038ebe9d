//! `callback_*`: how long delivery callbacks may take, and how those that fail within their
//! invocation are retried (see [`crate::callback`]).

use std::time::Duration;

use crate::function_config as key;

use super::keys::Keys;
use super::ConfigError;

/// The bounds of delivery callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackSettings {
    /// `callback_timeout_ms`: one callback call, connect to last byte (default 2 s; the
    /// standard suggests 15 to 30 s, but a callback is sent while the connector waits for the
    /// batch's answer, so it is kept short and retried instead).
    pub timeout: Duration,
    /// `callback_budget_ms`: the most time a batch's callbacks add to its invocation, all
    /// of them together, retries included (default 3 s).
    pub budget: Duration,
    /// How long a callback host whose call timed out or could not be connected to is not
    /// called again by this instance (its callbacks are queued at once): a dead endpoint
    /// costs one budget per cool-down, not one per batch.
    pub host_cool_down: Duration,
    /// `callback_stream_ocid`: where callbacks that failed within their invocation wait for
    /// the retry function; `None`: they are abandoned at once.
    pub stream: Option<String>,
    /// How queued callbacks are retried.
    pub retry: CallbackRetrySettings,
}

/// The bounds of a queued callback's retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackRetrySettings {
    /// `callback_retry_max_tries`: the most calls, quick tries included (default 10).
    pub max_tries: u32,
    /// `callback_retry_max_age_seconds`: how long after its first failure a callback is still
    /// tried (default 24 h, the streams' default retention).
    pub max_age: Duration,
    /// `callback_retry_backoff_ms`: the shortest wait between two tries (default 60 s); each
    /// wait is three times the callback's age, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
}

/// The longest wait between two tries of a queued callback.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

impl Default for CallbackRetrySettings {
    fn default() -> Self {
        Self {
            max_tries: 10,
            max_age: Duration::from_secs(24 * 3600),
            backoff: Duration::from_secs(60),
        }
    }
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            budget: Duration::from_secs(3),
            host_cool_down: Duration::from_secs(30),
            stream: None,
            retry: CallbackRetrySettings::default(),
        }
    }
}

/// The callback settings.
pub(super) fn settings<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<CallbackSettings, ConfigError> {
    let default = CallbackSettings::default();
    let retry = default.retry;
    Ok(CallbackSettings {
        timeout: keys.millis(key::CALLBACK_TIMEOUT_MS, default.timeout, 50..=30_000)?,
        budget: keys.millis(key::CALLBACK_BUDGET_MS, default.budget, 50..=60_000)?,
        host_cool_down: default.host_cool_down,
        stream: keys.ocid(key::CALLBACK_STREAM)?,
        retry: CallbackRetrySettings {
            max_tries: keys.number(
                key::CALLBACK_RETRY_MAX_TRIES,
                u64::from(retry.max_tries),
                1..=100,
            )? as u32,
            max_age: keys.seconds(
                key::CALLBACK_RETRY_MAX_AGE_SECONDS,
                retry.max_age,
                1..=7 * 24 * 3600,
            )?,
            backoff: keys.millis(
                key::CALLBACK_RETRY_BACKOFF_MS,
                retry.backoff,
                10..=3_600_000,
            )?,
        },
    })
}
