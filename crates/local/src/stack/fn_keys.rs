//! The function configuration keys the stack sets, named once. Each is a key of
//! [`datasync_core::function_config::KEYS`] (a test checks every one, so a key renamed there
//! fails here rather than leaving the functions unconfigured), under the name
//! `function_config` gives its constant where it has one, so these can become re-exports of
//! those; the stack's `start::functions` builds the configuration from them.

/// OCID of the data stream.
pub const DATA_STREAM: &str = "data_stream_ocid";
/// OCID of the service-unavailable error stream.
pub const SERVICE_UNAVAILABLE_STREAM: &str = "serviceUnavailable_error_stream_ocid";
/// OCID of the internal-server error stream.
pub const INTERNAL_SERVER_STREAM: &str = "internalserver_error_stream_ocid";
/// OCID of the unrecoverable error stream.
pub const UNRECOVERABLE_STREAM: &str = "unrecoverable_error_stream_ocid";
/// OCID of the default error stream.
pub const DEFAULT_ERROR_STREAM: &str = "default_error_stream_ocid";
/// OCID of the dead-letter stream.
pub const DEAD_LETTER_STREAM: &str = "dead_letter_stream_ocid";
/// OCID of the vault.
pub const VAULT: &str = "vault_ocid";
/// OCID of the vault's compartment.
pub const VAULT_COMPARTMENT: &str = "vault_compartment_ocid";
/// OCID of the vault's master key.
pub const VAULT_KEY: &str = "vault_key_ocid";
/// OCID of the alerts topic.
pub const NOTIFICATION_TOPIC: &str = "notification_topic_ocid";
/// The target allow-list.
pub const TARGET_ALLOW_LIST: &str = "target_allow_list";
/// Whether plain-http targets are allowed.
pub const ALLOW_HTTP_TARGETS: &str = "allow_http_targets";
/// Whether loopback and private targets are allowed.
pub const ALLOW_PRIVATE_TARGETS: &str = "allow_private_targets";

/// Every key above.
pub const ALL: [&str; 13] = [
    DATA_STREAM,
    SERVICE_UNAVAILABLE_STREAM,
    INTERNAL_SERVER_STREAM,
    UNRECOVERABLE_STREAM,
    DEFAULT_ERROR_STREAM,
    DEAD_LETTER_STREAM,
    VAULT,
    VAULT_COMPARTMENT,
    VAULT_KEY,
    NOTIFICATION_TOPIC,
    TARGET_ALLOW_LIST,
    ALLOW_HTTP_TARGETS,
    ALLOW_PRIVATE_TARGETS,
];

#[cfg(test)]
mod tests {
    use super::*;
    use datasync_core::function_config::KEYS;

    #[test]
    fn every_key_is_a_function_configuration_key() {
        for key in ALL {
            assert!(KEYS.iter().any(|k| k.name == key), "{key}");
        }
    }
}
