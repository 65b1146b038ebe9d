//! The range and form of every configuration value, checked per section; each error names its
//! field as `section.key`.

use super::{
    invalid, ConfigError, ConnectorConfig, FunctionsConfig, GatewayConfig, RetryScheduleConfig,
    StreamsConfig, MAX_INSTANCES,
};

/// `Err` naming `field` when `value` is outside `range`.
fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("must be from {} to {}", range.start(), range.end()),
        ))
    }
}

impl StreamsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "streams.data_stream_partitions",
            self.data_stream_partitions,
            1..=50,
        )?;
        in_range(
            "streams.error_stream_partitions",
            self.error_stream_partitions,
            1..=50,
        )?;
        in_range(
            "streams.data_stream_retention_hours",
            self.data_stream_retention_hours,
            24..=168,
        )?;
        in_range(
            "streams.error_stream_retention_hours",
            self.error_stream_retention_hours,
            24..=168,
        )
    }
}

impl ConnectorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "connector.batch_size_in_num",
            self.batch_size_in_num,
            1..=10_000,
        )?;
        in_range(
            "connector.batch_time_in_ms",
            self.batch_time_in_ms,
            1..=600_000,
        )?;
        in_range(
            "connector.max_backoff_ms",
            self.max_backoff_ms,
            10..=600_000,
        )?;
        in_range(
            "connector.archive_rollover_size_mbs",
            self.archive_rollover_size_mbs,
            1..=100,
        )?;
        in_range(
            "connector.archive_rollover_time_ms",
            self.archive_rollover_time_ms,
            100..=420_000,
        )
    }
}

impl RetryScheduleConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled {
            in_range(
                "retry_schedule.interval_seconds",
                self.interval_seconds,
                1..=86_400,
            )?;
        }
        in_range("retry_schedule.max_messages", self.max_messages, 1..=10_000)
    }
}

impl GatewayConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "gateway.rate_limit_per_second",
            self.rate_limit_per_second,
            1..=1_000_000,
        )?;
        in_range(
            "gateway.max_body_bytes",
            self.max_body_bytes,
            1024..=20 * 1024 * 1024,
        )?;
        in_range(
            "gateway.header_timeout_ms",
            self.header_timeout_ms,
            100..=600_000,
        )?;
        in_range(
            "gateway.body_timeout_ms",
            self.body_timeout_ms,
            100..=600_000,
        )?;
        in_range(
            "gateway.max_connections",
            self.max_connections,
            1..=1_000_000,
        )?;
        for (i, k) in self.keys.iter().enumerate() {
            if k.key.len() < 16 || !k.key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(invalid(
                    &format!("gateway.keys[{i}].key"),
                    "must be at least 16 printable characters",
                ));
            }
            if k.caller.is_empty()
                || !k
                    .caller
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            {
                return Err(invalid(
                    &format!("gateway.keys[{i}].caller"),
                    "must be letters, digits, '-', '_', '.' or '@'",
                ));
            }
        }
        Ok(())
    }
}

impl FunctionsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range(
            "functions.populate_instances",
            self.populate_instances,
            1..=MAX_INSTANCES,
        )?;
        in_range(
            "functions.process_instances",
            self.process_instances,
            1..=MAX_INSTANCES,
        )?;
        in_range(
            "functions.retry_instances",
            self.retry_instances,
            1..=MAX_INSTANCES,
        )?;
        for key in self.config.keys() {
            if !datasync_core::function_config::KEYS
                .iter()
                .any(|k| k.name == key)
            {
                return Err(invalid(
                    &format!("functions.config.{key}"),
                    "is not a function configuration key (see function_config::KEYS)",
                ));
            }
        }
        Ok(())
    }
}
