//! The configuration keys the three functions read, in one place.
//!
//! On OCI the application's and function's `config` maps arrive as environment variables; the
//! local stack passes the same keys. This list is what each function exports: the Terraform
//! (`terraform/functions.tf`) must set exactly these keys, and a test checks it does. Key names
//! from Oracle's Java sample are kept where they exist, so an existing configuration carries over.

/// One of the three functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `POST /stream/sync`: validates, stores the token in Vault, writes the envelope.
    Populate,
    /// Service Connector batches: delivers to the target, routes failures.
    Process,
    /// `POST /stream/retry`: re-delivers from an error stream.
    Retry,
}

impl Function {
    /// Every function, in pipeline order.
    pub const ALL: [Function; 3] = [Function::Populate, Function::Process, Function::Retry];

    /// The function's name, as in `functions/<name>` and its `func.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Function::Populate => "populate",
            Function::Process => "process",
            Function::Retry => "retry",
        }
    }
}

/// A configuration key: its name, who reads it, and whether it must be set.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The key exactly as it appears in the environment.
    pub name: &'static str,
    /// The functions that read it.
    pub functions: &'static [Function],
    /// Whether a function that reads it refuses to run without it.
    pub required: bool,
    /// What it holds, for people.
    pub description: &'static str,
}

// The name of each key, for code that reads or sets one: the literal lives only here.

/// `data_stream_ocid`: the data stream populate writes envelopes to.
pub const DATA_STREAM: &str = "data_stream_ocid";
/// `vault_ocid`: the vault holding callers' target tokens.
pub const VAULT: &str = "vault_ocid";
/// `vault_compartment_ocid`: the compartment secrets are created in.
pub const VAULT_COMPARTMENT: &str = "vault_compartment_ocid";
/// `vault_key_ocid`: the vault's AES master key.
pub const VAULT_KEY: &str = "vault_key_ocid";
/// `vault_crypto_endpoint`: the vault's crypto endpoint (Encrypt, Decrypt of callers' tokens).
pub const VAULT_CRYPTO_ENDPOINT: &str = "vault_crypto_endpoint";
/// `serviceUnavailable_error_stream_ocid`: the error stream for targets that were unavailable.
pub const SERVICE_UNAVAILABLE_STREAM: &str = "serviceUnavailable_error_stream_ocid";
/// `internalserver_error_stream_ocid`: the error stream for targets that failed with 500, 502 or 504.
pub const INTERNAL_SERVER_STREAM: &str = "internalserver_error_stream_ocid";
/// `unrecoverable_error_stream_ocid`: the error stream for failures no retry can fix.
pub const UNRECOVERABLE_STREAM: &str = "unrecoverable_error_stream_ocid";
/// `default_error_stream_ocid`: the error stream for retryable failures of any other class.
pub const DEFAULT_ERROR_STREAM: &str = "default_error_stream_ocid";
/// `dead_letter_stream_ocid`: the dead-letter stream.
pub const DEAD_LETTER_STREAM: &str = "dead_letter_stream_ocid";
/// `notification_topic_ocid`: the Notifications topic for permanent failures.
pub const NOTIFICATION_TOPIC: &str = "notification_topic_ocid";
/// `notification_topic_endpoint`: the topic's `api_endpoint`, where PublishMessage is sent.
pub const NOTIFICATION_TOPIC_ENDPOINT: &str = "notification_topic_endpoint";
/// `notify_dead_letter_payloads`: whether dead-letter notifications carry payloads.
pub const NOTIFY_DEAD_LETTER_PAYLOADS: &str = "notify_dead_letter_payloads";
/// `notification_rate_per_minute`: notifications one function instance publishes per minute.
pub const NOTIFICATION_RATE_PER_MINUTE: &str = "notification_rate_per_minute";
/// `target_allow_list`: the target hosts messages may be sent to.
pub const TARGET_ALLOW_LIST: &str = "target_allow_list";
/// `allow_http_targets`: whether plain-http targets are allowed.
pub const ALLOW_HTTP_TARGETS: &str = "allow_http_targets";
/// `allow_private_targets`: whether targets at internal addresses are allowed.
pub const ALLOW_PRIVATE_TARGETS: &str = "allow_private_targets";
/// `classification_overrides`: per-host overrides of the retry rules (JSON).
pub const CLASSIFICATION_OVERRIDES: &str = "classification_overrides";
/// `max_attempts`: attempts before a retryable failure becomes permanent.
pub const MAX_ATTEMPTS: &str = "max_attempts";
/// `max_message_age_seconds`: age after which a retryable failure becomes permanent.
pub const MAX_MESSAGE_AGE_SECONDS: &str = "max_message_age_seconds";
/// `target_connect_timeout_ms`: the connect timeout for target calls.
pub const TARGET_CONNECT_TIMEOUT_MS: &str = "target_connect_timeout_ms";
/// `target_timeout_ms`: the total timeout for one target call.
pub const TARGET_TIMEOUT_MS: &str = "target_timeout_ms";
/// `max_concurrency`: target calls in flight per invocation.
pub const MAX_CONCURRENCY: &str = "max_concurrency";
/// `per_host_concurrency`: target calls in flight per target host.
pub const PER_HOST_CONCURRENCY: &str = "per_host_concurrency";
/// `retry_consumer_group`: the retry function's consumer group.
pub const RETRY_CONSUMER_GROUP: &str = "retry_consumer_group";
/// `parked_keys_bucket`: the bucket holding the parked keys (per-key order across batches).
pub const PARKED_KEYS_BUCKET: &str = "parked_keys_bucket";
/// `parked_keys_namespace`: that bucket's Object Storage namespace.
pub const PARKED_KEYS_NAMESPACE: &str = "parked_keys_namespace";
/// `parked_keys_max_age_seconds`: how long a parked key's blocker may stay its blocker before
/// the retry path drops it as gone.
pub const PARKED_KEYS_MAX_AGE_SECONDS: &str = "parked_keys_max_age_seconds";
/// `breaker_consecutive_failures`: failures in a row that open a host's circuit breaker.
pub const BREAKER_CONSECUTIVE_FAILURES: &str = "breaker_consecutive_failures";
/// `breaker_failure_percent`: the failure share (of at least `breaker_min_calls` calls in a
/// minute) that opens a host's circuit breaker.
pub const BREAKER_FAILURE_PERCENT: &str = "breaker_failure_percent";
/// `breaker_min_calls`: calls in a minute before the failure share is judged.
pub const BREAKER_MIN_CALLS: &str = "breaker_min_calls";
/// `breaker_cool_down_ms`: how long an open breaker stays open before its probes.
pub const BREAKER_COOL_DOWN_MS: &str = "breaker_cool_down_ms";
/// `breaker_probes`: successful probes that close a half-open breaker.
pub const BREAKER_PROBES: &str = "breaker_probes";
/// `host_time_share_ms`: the most of a batch's time one host's calls may take.
pub const HOST_TIME_SHARE_MS: &str = "host_time_share_ms";
/// `retry_budget_percent`: failing retries to a host, as a share of its first attempts.
pub const RETRY_BUDGET_PERCENT: &str = "retry_budget_percent";
/// `retry_budget_window_seconds`: the window the retry budget counts over.
pub const RETRY_BUDGET_WINDOW_SECONDS: &str = "retry_budget_window_seconds";
/// `metrics_compartment_ocid`: the compartment custom metrics are posted to (unset: none are).
pub const METRICS_COMPARTMENT: &str = "metrics_compartment_ocid";
/// `metrics_namespace`: the custom metrics' namespace (default `datasync`).
pub const METRICS_NAMESPACE: &str = "metrics_namespace";
/// `metrics_endpoint`: Monitoring's telemetry-ingestion endpoint, where PostMetricData goes.
pub const METRICS_ENDPOINT: &str = "metrics_endpoint";
/// `metrics_post_timeout_ms`: the most one PostMetricData call may add to an invocation.
pub const METRICS_POST_TIMEOUT_MS: &str = "metrics_post_timeout_ms";
/// `metrics_post_interval_ms`: the least time between two PostMetricData calls of one instance.
pub const METRICS_POST_INTERVAL_MS: &str = "metrics_post_interval_ms";
/// `callback_timeout_ms`: the timeout of one delivery callback call.
pub const CALLBACK_TIMEOUT_MS: &str = "callback_timeout_ms";
/// `callback_budget_ms`: the most time a batch's delivery callbacks add to its invocation.
pub const CALLBACK_BUDGET_MS: &str = "callback_budget_ms";
/// `callback_stream_ocid`: the stream given-up delivery callbacks wait in for the retry function
/// (unset: a callback that fails within its invocation is abandoned).
pub const CALLBACK_STREAM: &str = "callback_stream_ocid";
/// `callback_retry_max_tries`: the most calls one delivery callback gets, quick tries included.
pub const CALLBACK_RETRY_MAX_TRIES: &str = "callback_retry_max_tries";
/// `callback_retry_max_age_seconds`: how long after its first failure a callback is retried.
pub const CALLBACK_RETRY_MAX_AGE_SECONDS: &str = "callback_retry_max_age_seconds";
/// `callback_retry_backoff_ms`: the shortest wait before a queued callback is tried again.
pub const CALLBACK_RETRY_BACKOFF_MS: &str = "callback_retry_backoff_ms";
/// `routes_object`: `bucket/object` of the routes (issue 21, the JSON form `{"routes": [...]}`),
/// read at cold start and re-read when its ETag changes (`datasync_core::routes`).
pub const ROUTES_OBJECT: &str = "routes_object";
/// `routes_check_ms`: how often the routes object's ETag is checked (conditional GetObject).
pub const ROUTES_CHECK_MS: &str = "routes_check_ms";

use Function::{Populate, Process, Retry};

/// Every key, in the order a person would fill them in.
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: DATA_STREAM,
        functions: &[Populate],
        required: true,
        description: "OCID of the data stream populate writes envelopes to",
    },
    ConfigKey {
        name: VAULT,
        functions: &[Populate, Process, Retry],
        required: true,
        description: "OCID of the vault holding callers' target tokens",
    },
    ConfigKey {
        name: VAULT_COMPARTMENT,
        functions: &[Populate],
        required: true,
        description: "OCID of the compartment secrets are created in",
    },
    ConfigKey {
        name: VAULT_KEY,
        functions: &[Populate],
        required: true,
        description: "OCID of the AES master key in the vault (the key, not a key version)",
    },
    ConfigKey {
        name: VAULT_CRYPTO_ENDPOINT,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "the vault's crypto endpoint: populate seals callers' tokens with the master key's Encrypt, process and retry Decrypt them",
    },
    ConfigKey {
        name: SERVICE_UNAVAILABLE_STREAM,
        functions: &[Process, Retry],
        required: true,
        description: "error stream for targets that were unavailable: 503, 429, 408, 425, connect errors, timeouts",
    },
    ConfigKey {
        name: INTERNAL_SERVER_STREAM,
        functions: &[Process, Retry],
        required: true,
        description: "error stream for targets that failed with 500, 502 or 504",
    },
    ConfigKey {
        name: UNRECOVERABLE_STREAM,
        functions: &[Process, Retry],
        required: true,
        description: "error stream for failures no retry can fix (kept for the sample's retry callers; permanent failures also go to the dead-letter stream)",
    },
    ConfigKey {
        name: DEFAULT_ERROR_STREAM,
        functions: &[Process, Retry],
        required: true,
        description: "error stream for retryable failures of any other class",
    },
    ConfigKey {
        name: DEAD_LETTER_STREAM,
        functions: &[Process, Retry],
        required: true,
        description: "stream for messages that failed permanently or exhausted their attempts",
    },
    ConfigKey {
        name: NOTIFICATION_TOPIC,
        functions: &[Process, Retry],
        required: true,
        description: "Notifications topic for the per-batch summary of permanent failures",
    },
    ConfigKey {
        name: NOTIFICATION_TOPIC_ENDPOINT,
        functions: &[Process, Retry],
        required: false,
        description: "the topic's api_endpoint (GetTopic's apiEndpoint) PublishMessage is sent to (default https://notification.<region>.<realm domain>, the SDKs' template)",
    },
    ConfigKey {
        name: NOTIFY_DEAD_LETTER_PAYLOADS,
        functions: &[Process, Retry],
        required: false,
        description: "true to put each dead letter's payload (cut to 8 KiB) in the dead-letter notification (default false: ids, keys, classes, statuses, attempts, sizes and archive positions only; never header values)",
    },
    ConfigKey {
        name: NOTIFICATION_RATE_PER_MINUTE,
        functions: &[Process, Retry],
        required: false,
        description: "most notifications one function instance publishes per minute (default 20; a topic takes about 60 a minute in all); alerts over it are counted and folded into the next",
    },
    ConfigKey {
        name: TARGET_ALLOW_LIST,
        functions: &[Populate, Process, Retry],
        required: true,
        description: "comma-separated target hosts (host or host:port; *.example.com for subdomains) messages may be sent to",
    },
    ConfigKey {
        name: ALLOW_HTTP_TARGETS,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "true to allow plain-http targets (default false: https only)",
    },
    ConfigKey {
        name: ALLOW_PRIVATE_TARGETS,
        functions: &[Process, Retry],
        required: false,
        description: "true to allow targets resolving to loopback, private or link-local addresses (default false)",
    },
    ConfigKey {
        name: CLASSIFICATION_OVERRIDES,
        functions: &[Process, Retry],
        required: false,
        description: "JSON per-host overrides of the retry rules: status ranges, attempts, timeout, concurrency",
    },
    ConfigKey {
        name: MAX_ATTEMPTS,
        functions: &[Process, Retry],
        required: false,
        description: "attempts before a retryable failure becomes permanent (default 8)",
    },
    ConfigKey {
        name: MAX_MESSAGE_AGE_SECONDS,
        functions: &[Process, Retry],
        required: false,
        description: "age after which a retryable failure becomes permanent; keep below stream retention (default 82800)",
    },
    ConfigKey {
        name: TARGET_CONNECT_TIMEOUT_MS,
        functions: &[Process, Retry],
        required: false,
        description: "connect timeout for target calls (default 3000)",
    },
    ConfigKey {
        name: TARGET_TIMEOUT_MS,
        functions: &[Process, Retry],
        required: false,
        description: "total timeout for one target call (default 10000)",
    },
    ConfigKey {
        name: MAX_CONCURRENCY,
        functions: &[Process, Retry],
        required: false,
        description: "target calls in flight per invocation (default 64)",
    },
    ConfigKey {
        name: PER_HOST_CONCURRENCY,
        functions: &[Process, Retry],
        required: false,
        description: "target calls in flight per target host (default 16)",
    },
    ConfigKey {
        name: RETRY_CONSUMER_GROUP,
        functions: &[Retry],
        required: false,
        description: "consumer group name the retry function's group mode commits its position under (default datasync-retry)",
    },
    ConfigKey {
        name: PARKED_KEYS_BUCKET,
        functions: &[Process, Retry],
        required: false,
        description: "bucket of the parked keys that keep each key's order across batches (unset: order holds within a batch only)",
    },
    ConfigKey {
        name: PARKED_KEYS_NAMESPACE,
        functions: &[Process, Retry],
        required: false,
        description: "Object Storage namespace of parked_keys_bucket",
    },
    ConfigKey {
        name: PARKED_KEYS_MAX_AGE_SECONDS,
        functions: &[Process, Retry],
        required: false,
        description: "seconds a parked key's blocker may stay blocking before retry drops it as gone (default 86400, the error streams' retention)",
    },
    ConfigKey {
        name: BREAKER_CONSECUTIVE_FAILURES,
        functions: &[Process, Retry],
        required: false,
        description: "failed calls in a row (transport errors, timeouts, retryable statuses) that open a target host's circuit breaker; a call cut at its whole allowance of the host's time share counts as half of it, so two such cuts open it; 0 turns this trigger off (default 5)",
    },
    ConfigKey {
        name: BREAKER_FAILURE_PERCENT,
        functions: &[Process, Retry],
        required: false,
        description: "share of failed calls to a host, in percent, over at least breaker_min_calls calls in a minute, that opens its breaker; 0 turns this trigger off (default 50)",
    },
    ConfigKey {
        name: BREAKER_MIN_CALLS,
        functions: &[Process, Retry],
        required: false,
        description: "calls to a host in a minute before breaker_failure_percent is judged (default 20)",
    },
    ConfigKey {
        name: BREAKER_COOL_DOWN_MS,
        functions: &[Process, Retry],
        required: false,
        description: "how long an open breaker sends nothing to its host before half-open probes, times the openings in a row up to ten (default 30000)",
    },
    ConfigKey {
        name: BREAKER_PROBES,
        functions: &[Process, Retry],
        required: false,
        description: "successful probe calls that close a half-open breaker; one failure opens it again (default 1)",
    },
    ConfigKey {
        name: HOST_TIME_SHARE_MS,
        functions: &[Process, Retry],
        required: false,
        description: "the most of a batch's time the calls to one host may take; one call may take 16 times the host's mean latency within a quarter of it and all of it (a quarter while the host has not answered); calls still running are cancelled and re-routed with class slow (default 5000; a host override's timeoutMs raises it for that host)",
    },
    ConfigKey {
        name: RETRY_BUDGET_PERCENT,
        functions: &[Process, Retry],
        required: false,
        description: "failing retries to one host allowed per window, in percent of its first attempts (at least 10 per window); beyond it retries wait for the schedule (default 20)",
    },
    ConfigKey {
        name: RETRY_BUDGET_WINDOW_SECONDS,
        functions: &[Process, Retry],
        required: false,
        description: "the window of the retry budget (default 60)",
    },
    ConfigKey {
        name: METRICS_COMPARTMENT,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "OCID of the compartment the functions post their custom metrics to (PostMetricData, one call per invocation at most); unset: no metrics are posted",
    },
    ConfigKey {
        name: METRICS_NAMESPACE,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "namespace of the custom metrics: a letter, then letters, digits and _; not oci_ or oracle_ (default datasync)",
    },
    ConfigKey {
        name: METRICS_ENDPOINT,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "Monitoring's ingestion endpoint PostMetricData is sent to (default https://telemetry-ingestion.<region>.<realm domain>)",
    },
    ConfigKey {
        name: METRICS_POST_TIMEOUT_MS,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "the most one PostMetricData call may add to an invocation; a post that takes longer is dropped and counted (default 1500)",
    },
    ConfigKey {
        name: METRICS_POST_INTERVAL_MS,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "the least time between two PostMetricData calls of one function instance; invocations in between leave their datapoints to a post at the interval's end (default 5000 for process and retry, 30000 for populate, which runs many instances)",
    },
    ConfigKey {
        name: CALLBACK_TIMEOUT_MS,
        functions: &[Process, Retry],
        required: false,
        description: "timeout of one delivery callback call, in ms (default 2000)",
    },
    ConfigKey {
        name: CALLBACK_BUDGET_MS,
        functions: &[Process, Retry],
        required: false,
        description: "the most time a batch's delivery callbacks (with their quick retries) add to the invocation, in ms (default 3000)",
    },
    ConfigKey {
        name: CALLBACK_STREAM,
        functions: &[Process, Retry],
        required: false,
        description: "OCID of the stream callbacks that failed within their invocation wait in; the retry function's schedule sends them again (unset: such callbacks are abandoned)",
    },
    ConfigKey {
        name: CALLBACK_RETRY_MAX_TRIES,
        functions: &[Process, Retry],
        required: false,
        description: "the most calls one delivery callback gets, the quick tries of its first invocation included; then it is abandoned (default 10)",
    },
    ConfigKey {
        name: CALLBACK_RETRY_MAX_AGE_SECONDS,
        functions: &[Process, Retry],
        required: false,
        description: "seconds after its first failure a callback is abandoned; keep it at or below the callback stream's retention (default 86400)",
    },
    ConfigKey {
        name: CALLBACK_RETRY_BACKOFF_MS,
        functions: &[Process, Retry],
        required: false,
        description: "the shortest wait before a queued callback is tried again; each wait is three times the callback's age, from this up to 6 h (default 60000)",
    },
    ConfigKey {
        name: ROUTES_OBJECT,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "bucket/object of the routes (the JSON form), read at cold start and when its ETag changes",
    },
    ConfigKey {
        name: ROUTES_CHECK_MS,
        functions: &[Populate, Process, Retry],
        required: false,
        description: "how often the routes object's ETag is checked, in ms (default 30000: a changed route is in use within 30 s)",
    },
];

/// The keys `function` reads.
pub fn keys_for(function: Function) -> impl Iterator<Item = &'static ConfigKey> {
    KEYS.iter().filter(move |k| k.functions.contains(&function))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_legal_fn_config_keys() {
        let mut seen = std::collections::HashSet::new();
        for key in KEYS {
            assert!(seen.insert(key.name), "duplicate key {}", key.name);
            let mut chars = key.name.chars();
            let first = chars.next().unwrap_or('0');
            assert!(first.is_ascii_alphabetic() || first == '_', "{}", key.name);
            assert!(
                chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}",
                key.name
            );
            assert!(!key.functions.is_empty(), "{} is read by nobody", key.name);
        }
    }

    #[test]
    fn every_function_reads_the_allow_list() {
        for f in Function::ALL {
            assert!(
                keys_for(f).any(|k| k.name == TARGET_ALLOW_LIST),
                "{}",
                f.name()
            );
        }
    }
}
