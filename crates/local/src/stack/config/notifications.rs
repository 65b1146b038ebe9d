//! `[notifications]`: what the alerts topic is sent, as `terraform/` configures it on OCI
//! (`notify_dead_letter_payloads`, `notification_rate_per_minute`), and the emulator's
//! per-topic limit.
//!
//! ```toml
//! [notifications]
//! notify_dead_letter_payloads = false
//! rate_per_minute = 20
//! topic_rate_per_minute = 60
//! ```

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[notifications]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Put each dead letter's payload, cut to 8 KiB, in the dead-letter notification
    /// (`notify_dead_letter_payloads`, default false: ids, keys, classes, statuses, attempts,
    /// sizes and archive positions only; header values never).
    pub notify_dead_letter_payloads: bool,
    /// Most notifications one function instance publishes per minute (Terraform's
    /// `notification_rate_per_minute`, default 20); alerts over it are counted and folded into
    /// the next.
    pub rate_per_minute: u32,
    /// PublishMessage calls the emulator's topic accepts per minute before answering 429
    /// `TooManyRequests` (default 60, OCI's per-topic limit).
    pub topic_rate_per_minute: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            notify_dead_letter_payloads: false,
            rate_per_minute: 20,
            topic_rate_per_minute: 60,
        }
    }
}

impl NotificationsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=600).contains(&self.rate_per_minute) {
            return Err(invalid(
                "notifications.rate_per_minute",
                "must be from 1 to 600",
            ));
        }
        if !(1..=100_000).contains(&self.topic_rate_per_minute) {
            return Err(invalid(
                "notifications.topic_rate_per_minute",
                "must be from 1 to 100000",
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
    fn payloads_are_off_by_default_and_the_section_parses() {
        let s = StackConfig::parse("").unwrap().into_settings().unwrap();
        assert!(!s.notifications.notify_dead_letter_payloads);
        assert!(
            !s.notify_dead_letter,
            "the dead-letter connector is off by default"
        );
        let doc = "[notifications]\nnotify_dead_letter_payloads = true\nrate_per_minute = 2\n";
        let s = StackConfig::parse(doc).unwrap().into_settings().unwrap();
        assert!(s.notifications.notify_dead_letter_payloads);
        assert_eq!(s.notifications.rate_per_minute, 2);
        let err = StackConfig::parse("[notifications]\nrate_per_minute = 0\n")
            .unwrap()
            .into_settings()
            .unwrap_err();
        assert!(
            err.to_string().contains("notifications.rate_per_minute"),
            "{err}"
        );
    }
}
