//! [`ConfigError`]: a configuration problem, naming the key, with the error behind it.

use crate::message::AllowListError;
use crate::oci::auth::AuthError;
use crate::oci::client::OciError;
use crate::oci::endpoints::EndpointError;

/// A configuration problem, naming the key. Its text (`configuration key <key>: <problem>`) is
/// what a misconfigured function answers every call with (keep it in an `Arc` to share it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key the function needs is absent or blank.
    #[error("configuration key {key}: is required but not set")]
    Missing {
        /// The key.
        key: String,
    },
    /// A key that names an OCI resource does not hold an OCID.
    #[error("configuration key {key}: must be an OCID (ocid1....)")]
    NotAnOcid {
        /// The key.
        key: String,
    },
    /// A flag is not `true`/`false` (`1`/`0`, `yes`/`no`).
    #[error("configuration key {key}: must be true or false")]
    NotAFlag {
        /// The key.
        key: String,
    },
    /// A count is not a whole number in its range.
    #[error("configuration key {key}: must be a whole number from {min} to {max}")]
    NotANumber {
        /// The key.
        key: String,
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// A duration (a whole number of `unit`s) is not in its range.
    #[error("configuration key {key}: must be a whole number from {min} to {max}")]
    NotADuration {
        /// The key.
        key: String,
        /// The unit the key counts in: `ms` or `s`.
        unit: &'static str,
        /// The least value allowed, in `unit`s.
        min: u64,
        /// The greatest value allowed, in `unit`s.
        max: u64,
    },
    /// The target allow-list has an entry that is not a host.
    #[error("configuration key {key}: {source}")]
    AllowList {
        /// The key.
        key: String,
        /// The first bad entry.
        #[source]
        source: AllowListError,
    },
    /// The target allow-list names no host: nothing could be delivered.
    #[error("configuration key {key}: names no host; nothing could be delivered")]
    EmptyAllowList {
        /// The key.
        key: String,
    },
    /// A JSON key (the classification overrides) does not read as its rules.
    #[error("configuration key {key}: {source}")]
    Rules {
        /// The key.
        key: String,
        /// Why its JSON was refused.
        #[source]
        source: serde_json::Error,
    },
    /// The region metadata or an endpoint override is unusable.
    #[error("configuration key {key}: {source}")]
    Endpoint {
        /// The variable.
        key: String,
        /// Why.
        #[source]
        source: EndpointError,
    },
    /// No OCI credentials could be loaded.
    #[error("configuration key {key}: {source}")]
    Auth {
        /// The variable or file at fault.
        key: String,
        /// Why.
        #[source]
        source: AuthError,
    },
    /// An OCI client could not be built for lack of a usable endpoint.
    #[error("configuration key {key}: no usable OCI endpoint: {source}")]
    NoUsableEndpoint {
        /// The variable the endpoints come from.
        key: String,
        /// Why.
        #[source]
        source: OciError,
    },
    /// A client a function needs could not be built from its settings.
    #[error("configuration key {key}: {source}")]
    Client {
        /// What was being built, e.g. `streaming endpoint`.
        key: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A metric namespace OCI Monitoring would refuse.
    #[error("configuration key {key}: must start with a letter, hold only letters, digits and _, and not start with oci_ or oracle_")]
    NotANamespace {
        /// The key.
        key: String,
    },
}

impl ConfigError {
    /// The key (or variable, or client) at fault.
    pub fn key(&self) -> &str {
        match self {
            Self::Missing { key }
            | Self::NotAnOcid { key }
            | Self::NotAFlag { key }
            | Self::NotANumber { key, .. }
            | Self::NotADuration { key, .. }
            | Self::AllowList { key, .. }
            | Self::EmptyAllowList { key }
            | Self::Rules { key, .. }
            | Self::Endpoint { key, .. }
            | Self::Auth { key, .. }
            | Self::NoUsableEndpoint { key, .. }
            | Self::Client { key, .. }
            | Self::NotANamespace { key } => key,
        }
    }

    /// A key that is absent.
    pub fn missing(key: &str) -> Self {
        Self::Missing {
            key: key.to_owned(),
        }
    }

    /// A client named `key` that could not be built, for `source`.
    pub fn client(key: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Client {
            key: key.to_owned(),
            source: Box::new(source),
        }
    }
}
