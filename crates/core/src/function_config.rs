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

use Function::{Populate, Process, Retry};

/// Every key, in the order a person would fill them in.
pub const KEYS: &[ConfigKey] = &[
    ConfigKey {
        name: "data_stream_ocid",
        functions: &[Populate],
        required: true,
        description: "OCID of the data stream populate writes envelopes to",
    },
    ConfigKey {
        name: "vault_ocid",
        functions: &[Populate, Process, Retry],
        required: true,
        description: "OCID of the vault holding callers' target tokens",
    },
    ConfigKey {
        name: "vault_compartment_ocid",
        functions: &[Populate],
        required: true,
        description: "OCID of the compartment secrets are created in",
    },
    ConfigKey {
        name: "vault_key_ocid",
        functions: &[Populate],
        required: true,
        description: "OCID of the AES master key in the vault (the key, not a key version)",
    },
    ConfigKey {
        name: "serviceUnavailable_error_stream_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "error stream for targets that were unavailable: 503, 429, 408, 425, connect errors, timeouts",
    },
    ConfigKey {
        name: "internalserver_error_stream_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "error stream for targets that failed with 500, 502 or 504",
    },
    ConfigKey {
        name: "unrecoverable_error_stream_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "error stream for failures no retry can fix (kept for the sample's retry callers; permanent failures also go to the dead-letter stream)",
    },
    ConfigKey {
        name: "default_error_stream_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "error stream for retryable failures of any other class",
    },
    ConfigKey {
        name: "dead_letter_stream_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "stream for messages that failed permanently or exhausted their attempts",
    },
    ConfigKey {
        name: "notification_topic_ocid",
        functions: &[Process, Retry],
        required: true,
        description: "Notifications topic for the per-batch summary of permanent failures",
    },
    ConfigKey {
        name: "target_allow_list",
        functions: &[Populate, Process, Retry],
        required: true,
        description: "comma-separated target hosts (host or host:port; *.example.com for subdomains) messages may be sent to",
    },
    ConfigKey {
        name: "allow_http_targets",
        functions: &[Populate, Process, Retry],
        required: false,
        description: "true to allow plain-http targets (default false: https only)",
    },
    ConfigKey {
        name: "allow_private_targets",
        functions: &[Process, Retry],
        required: false,
        description: "true to allow targets resolving to loopback, private or link-local addresses (default false)",
    },
    ConfigKey {
        name: "classification_overrides",
        functions: &[Process, Retry],
        required: false,
        description: "JSON per-host overrides of the retry rules: status ranges, attempts, timeout, concurrency",
    },
    ConfigKey {
        name: "max_attempts",
        functions: &[Process, Retry],
        required: false,
        description: "attempts before a retryable failure becomes permanent (default 8)",
    },
    ConfigKey {
        name: "max_message_age_seconds",
        functions: &[Process, Retry],
        required: false,
        description: "age after which a retryable failure becomes permanent; keep below stream retention (default 82800)",
    },
    ConfigKey {
        name: "target_connect_timeout_ms",
        functions: &[Process, Retry],
        required: false,
        description: "connect timeout for target calls (default 3000)",
    },
    ConfigKey {
        name: "target_timeout_ms",
        functions: &[Process, Retry],
        required: false,
        description: "total timeout for one target call (default 10000)",
    },
    ConfigKey {
        name: "max_concurrency",
        functions: &[Process, Retry],
        required: false,
        description: "target calls in flight per invocation (default 64)",
    },
    ConfigKey {
        name: "per_host_concurrency",
        functions: &[Process, Retry],
        required: false,
        description: "target calls in flight per target host (default 16)",
    },
    ConfigKey {
        name: "retry_consumer_group",
        functions: &[Retry],
        required: false,
        description: "consumer group name the retry function's group mode commits its position under (default datasync-retry)",
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
                keys_for(f).any(|k| k.name == "target_allow_list"),
                "{}",
                f.name()
            );
        }
    }
}
