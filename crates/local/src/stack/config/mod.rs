//! The `datasync up` configuration file: one TOML document mirroring the Terraform variables
//! (`terraform/variables.tf`) where they exist, plus what only the local stack has (function
//! instances, the connector's backoff, the retry schedule, the gateway's API keys).
//!
//! Every field has a default, so no file is needed. Unknown keys are rejected, so a typo is an
//! error rather than a silently ignored setting. [`StackConfig::into_settings`] validates once
//! and produces [`StackSettings`] with `Duration`s.
//!
//! ```toml
//! name_prefix = "datasync"
//!
//! [streams]
//! data_stream_partitions = 1
//! error_stream_partitions = 1
//! data_stream_retention_hours = 24
//! error_stream_retention_hours = 24
//!
//! [connector]
//! batch_size_in_num = 500
//! batch_time_in_ms = 100
//! max_backoff_ms = 5000
//! archive_rollover_size_mbs = 1
//! archive_rollover_time_ms = 10000
//! notify_dead_letter_messages = false
//!
//! [notifications]
//! notify_dead_letter_payloads = false
//! rate_per_minute = 20
//!
//! [metrics]
//! enabled = true
//! namespace = "datasync"
//!
//! [retry_schedule]
//! enabled = true
//! interval_seconds = 10
//! max_messages = 500
//!
//! [gateway]
//! rate_limit_per_second = 10000
//! max_body_bytes = 6291456
//! header_timeout_ms = 10000
//! body_timeout_ms = 30000
//! max_connections = 4096
//!
//! [[gateway.keys]]
//! key = "a-long-random-secret"
//! caller = "billing-app"
//! operator = false
//!
//! [functions]
//! populate_instances = 32
//! process_instances = 2
//! retry_instances = 1
//! allow_targets = ["api.example.com:443"]
//!
//! [functions.config]
//! max_attempts = "5"
//!
//! [status]
//! sample_interval_ms = 5000
//! ```
//!
//! `[[routes]]` tables define routes (see [`routes`] and docs/routes.md).

mod metrics;
mod notifications;
pub mod routes;
mod status;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use metrics::MetricsConfig;
pub use notifications::NotificationsConfig;
pub use routes::RoutesSettings;
pub use status::{StatusConfig, HISTORY};

/// A configuration problem, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("the configuration file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (names the key and line).
        #[source]
        source: toml::de::Error,
    },
    /// A `[[routes]]` table does not parse, or one of its programs does not compile.
    #[error("configuration routes: {0}")]
    Route(#[source] datasync_core::routes::RouteError),
    /// A value is out of range.
    #[error("configuration {field}: {problem}")]
    Invalid {
        /// The field, as `section.key`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StackConfig {
    /// Prefix of every resource name (Terraform `name_prefix`, default `datasync`).
    pub name_prefix: Option<String>,
    /// Streams.
    pub streams: StreamsConfig,
    /// The Service Connector pump.
    pub connector: ConnectorConfig,
    /// The automatic retry of error streams.
    pub retry_schedule: RetryScheduleConfig,
    /// The API Gateway front.
    pub gateway: GatewayConfig,
    /// The functions.
    pub functions: FunctionsConfig,
    /// The alerts topic.
    pub notifications: NotificationsConfig,
    /// The status page's history and health thresholds.
    pub status: StatusConfig,
    /// The functions' custom metrics.
    pub metrics: MetricsConfig,
    /// `[[routes]]`: the operator's routes, compiled by [`routes::parse`].
    pub routes: Vec<toml::Table>,
}

/// `[streams]`: Terraform's stream variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Partitions of the data stream (default 1).
    pub data_stream_partitions: u32,
    /// Partitions of each error stream and the dead-letter stream (default 1).
    pub error_stream_partitions: u32,
    /// Retention of the data stream, 24 to 168 hours (default 24 locally).
    pub data_stream_retention_hours: u32,
    /// Retention of the error and dead-letter streams, 24 to 168 hours (default 24 locally).
    pub error_stream_retention_hours: u32,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            data_stream_partitions: 1,
            error_stream_partitions: 1,
            data_stream_retention_hours: 24,
            error_stream_retention_hours: 24,
        }
    }
}

/// `[connector]`: the Service Connector Hub behaviour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorConfig {
    /// Most messages per process invocation (`batch_size_in_num`, default 500).
    pub batch_size_in_num: u32,
    /// Longest wait, in ms, to fill a batch once a message is waiting (default 100; Terraform's
    /// `connector_batch_time_seconds` is in seconds, the local default is smaller). A batch goes
    /// when it is full or this long after its first message, as Connector Hub sends them.
    pub batch_time_in_ms: u64,
    /// Cap of the backoff between re-deliveries of a failed batch (default 5000 ms).
    pub max_backoff_ms: u64,
    /// Archive objects roll over at this size in MB (`archive_rollover_size_mbs`, default 1).
    pub archive_rollover_size_mbs: u32,
    /// ... or after this time in ms (`archive_rollover_time_ms`, default 10000 locally).
    pub archive_rollover_time_ms: u64,
    /// Run the dead-letter → Notifications connector (`notify_dead_letter_messages`, default
    /// false, as on OCI). It sends each dead letter whole (payload and custom header values
    /// included) and one message per dead letter, past the topic's rate; a message the topic
    /// refuses (over 64 KB) is given up on after bounded tries and counted. The process and
    /// retry functions already publish a summary of each batch's dead letters.
    pub notify_dead_letter_messages: bool,
}

impl Default for ConnectorConfig {
    fn default() -> Self {
        Self {
            batch_size_in_num: 500,
            batch_time_in_ms: 100,
            max_backoff_ms: 5000,
            archive_rollover_size_mbs: 1,
            archive_rollover_time_ms: 10_000,
            notify_dead_letter_messages: false,
        }
    }
}

/// `[retry_schedule]`: calls the retry function's group mode on every error stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryScheduleConfig {
    /// On by default locally.
    pub enabled: bool,
    /// Seconds between rounds (default 10).
    pub interval_seconds: u64,
    /// Most messages one call re-delivers (default 500).
    pub max_messages: u32,
}

impl Default for RetryScheduleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_seconds: 10,
            max_messages: 500,
        }
    }
}

/// `[gateway]`: the API Gateway front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Requests per second per API key (`gateway_rate_limit_per_second`, default 10000
    /// locally, so the benchmark is not limited); excess requests get 429.
    pub rate_limit_per_second: u32,
    /// Largest request body; larger ones get 413 (default 6 MiB, the function invoke cap).
    pub max_body_bytes: usize,
    /// Longest time, in ms, a client may take to send a request's headers, counted from when
    /// the connection opened or its previous answer was written, so it is also how long an idle
    /// keep-alive connection is kept (default 10000); the connection is closed after it.
    pub header_timeout_ms: u64,
    /// Longest time, in ms, a request's body may take to arrive once its headers have; 408
    /// after it (default 30000).
    pub body_timeout_ms: u64,
    /// Most client connections open at once (default 4096, lowered at start to leave 1024 file
    /// descriptors for the stack when the process's limit is lower); further connections are
    /// answered 503 `ServiceUnavailable` and closed.
    pub max_connections: u32,
    /// Extra API keys besides the generated source and operator keys.
    pub keys: Vec<ApiKeyConfig>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_second: 10_000,
            max_body_bytes: 6 * 1024 * 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            max_connections: 4096,
            keys: Vec::new(),
        }
    }
}

/// `[[gateway.keys]]`: an API key and the caller identity it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The key as sent in `x-api-key` (at least 16 characters).
    pub key: String,
    /// The caller identity the gateway sets in `x-datasync-caller`.
    pub caller: String,
    /// Whether the key may call `/stream/retry` (default false).
    #[serde(default)]
    pub operator: bool,
}

/// The most instances of one function the local stack runs.
pub const MAX_INSTANCES: u32 = 128;

/// `[functions]`: instances and configuration overrides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionsConfig {
    /// Instances of populate (default 32: an instance takes one call at a time, as on OCI, and
    /// waits for its PutMessages to be durable, so ingest scales with instances until the CPU
    /// is busy; OCI scales them out the same way). On the 2-core development machine 16 left
    /// the CPU idle 11–12% of a `datasync bench` run, 32 left 5–6%, for 4–15% more msg/s.
    pub populate_instances: u32,
    /// Instances of process (default 2).
    pub process_instances: u32,
    /// Instances of retry (default 1).
    pub retry_instances: u32,
    /// Targets added to the allow-list (`host` or `host:port`), besides the demo target.
    pub allow_targets: Vec<String>,
    /// Function configuration keys (`function_config::KEYS`) overriding what the stack sets.
    pub config: BTreeMap<String, String>,
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            populate_instances: 32,
            process_instances: 2,
            retry_instances: 1,
            allow_targets: Vec::new(),
            config: BTreeMap::new(),
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// Resource name prefix.
    pub name_prefix: String,
    /// Streams.
    pub streams: StreamsConfig,
    /// Messages per process batch.
    pub batch_size: usize,
    /// Batch fill time.
    pub batch_time: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// Archive rollover size in bytes.
    pub rollover_bytes: usize,
    /// Archive rollover time.
    pub rollover_time: Duration,
    /// Dead-letter messages to Notifications.
    pub notify_dead_letter: bool,
    /// The alerts topic.
    pub notifications: NotificationsConfig,
    /// Retry schedule interval; `None` when disabled.
    pub retry_interval: Option<Duration>,
    /// Messages per scheduled retry call.
    pub retry_max: u32,
    /// Per-key requests per second.
    pub rate_limit: u32,
    /// Body limit.
    pub max_body_bytes: usize,
    /// The gateway's header (and keep-alive idle) timeout.
    pub header_timeout: Duration,
    /// The gateway's body timeout.
    pub body_timeout: Duration,
    /// The gateway's connection cap, as configured (fitted to the descriptor limit at start).
    pub max_connections: usize,
    /// Extra keys.
    pub keys: Vec<ApiKeyConfig>,
    /// Function instances: populate, process, retry.
    pub instances: [usize; 3],
    /// Extra allow-list entries.
    pub allow_targets: Vec<String>,
    /// Configuration overrides.
    pub function_config: BTreeMap<String, String>,
    /// The status page's history and health thresholds.
    pub status: StatusConfig,
    /// The functions' custom metrics.
    pub metrics: MetricsConfig,
    /// The routes, compiled and in their JSON form.
    pub routes: RoutesSettings,
}

impl StackConfig {
    /// Reads `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] / [`ConfigError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Parses a TOML document.
    ///
    /// # Errors
    /// The parser's error (unknown key, wrong type), naming the key.
    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Validates and converts.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first field out of range.
    pub fn into_settings(self) -> Result<StackSettings, ConfigError> {
        let prefix = self.name_prefix.unwrap_or_else(|| "datasync".to_owned());
        if prefix.is_empty()
            || prefix.len() > 100
            || !prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                "name_prefix",
                "must be 1 to 100 lowercase letters, digits and dashes",
            ));
        }
        self.streams.validate()?;
        self.connector.validate()?;
        self.retry_schedule.validate()?;
        self.gateway.validate()?;
        self.functions.validate()?;
        self.notifications.validate()?;
        self.status.validate()?;
        self.metrics.validate()?;
        let routes = routes::compile(&self.routes)?;
        let (c, r, g, f) = (
            &self.connector,
            &self.retry_schedule,
            &self.gateway,
            &self.functions,
        );
        Ok(StackSettings {
            name_prefix: prefix,
            streams: self.streams.clone(),
            batch_size: c.batch_size_in_num as usize,
            batch_time: Duration::from_millis(c.batch_time_in_ms),
            max_backoff: Duration::from_millis(c.max_backoff_ms),
            rollover_bytes: c.archive_rollover_size_mbs as usize * 1024 * 1024,
            rollover_time: Duration::from_millis(c.archive_rollover_time_ms),
            notify_dead_letter: c.notify_dead_letter_messages,
            notifications: self.notifications,
            retry_interval: r.enabled.then(|| Duration::from_secs(r.interval_seconds)),
            retry_max: r.max_messages,
            rate_limit: g.rate_limit_per_second,
            max_body_bytes: g.max_body_bytes,
            header_timeout: Duration::from_millis(g.header_timeout_ms),
            body_timeout: Duration::from_millis(g.body_timeout_ms),
            max_connections: g.max_connections as usize,
            keys: g.keys.clone(),
            instances: [
                f.populate_instances as usize,
                f.process_instances as usize,
                f.retry_instances as usize,
            ],
            allow_targets: f.allow_targets.clone(),
            function_config: f.config.clone(),
            status: self.status,
            metrics: self.metrics.clone(),
            routes,
        })
    }
}

/// The first ```` ```toml ```` block of a module's `//!` documentation, as the text a user would
/// copy (for the tests that keep documented examples true).
#[cfg(test)]
fn toml_example(doc: &str) -> String {
    doc.lines()
        .skip_while(|l| !l.starts_with("//! ```toml"))
        .skip(1)
        .take_while(|l| !l.starts_with("//! ```"))
        .map(|l| l.trim_start_matches("//!").trim_start())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let s = StackConfig::parse("").unwrap().into_settings().unwrap();
        assert_eq!(s.name_prefix, "datasync");
        assert_eq!(s.batch_size, 500);
        assert_eq!(s.retry_interval, Some(Duration::from_secs(10)));
        assert_eq!(s.instances, [32, 2, 1]);
    }

    #[test]
    fn the_documented_example_parses() {
        let example = toml_example(include_str!("mod.rs"));
        let s = StackConfig::parse(&example)
            .unwrap()
            .into_settings()
            .unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.function_config["max_attempts"], "5");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let err = StackConfig::parse("[connector]\nbatch_size = 3\n").unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
        let err = StackConfig::parse("[streams]\ndata_stream_partitions = 0\n")
            .unwrap()
            .into_settings()
            .unwrap_err();
        assert!(err.to_string().contains("data_stream_partitions"), "{err}");
        let err = StackConfig::parse("[functions.config]\nnope = \"1\"\n")
            .unwrap()
            .into_settings()
            .unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        for n in [0, MAX_INSTANCES + 1] {
            let err = StackConfig::parse(&format!("[functions]\npopulate_instances = {n}\n"))
                .unwrap()
                .into_settings()
                .unwrap_err();
            assert_eq!(
                err.to_string(),
                "configuration functions.populate_instances: must be from 1 to 128"
            );
        }
        let max = format!("[functions]\npopulate_instances = {MAX_INSTANCES}\n");
        let s = StackConfig::parse(&max).unwrap().into_settings().unwrap();
        assert_eq!(s.instances[0], MAX_INSTANCES as usize);
    }
}
