//! The functions' settings: the configuration keys of [`crate::function_config`] read once,
//! validated, and turned into typed values (STYLE.md guideline 11).
//!
//! Nothing here reads the process environment: [`Settings::from_lookup`] takes a lookup, which
//! is the FDK's captured configuration in a function and a map in tests.
//!
//! Besides the deployable keys, these variables only the local stack and tests set are read:
//! - `DATASYNC_OCI_ENDPOINT`: one base URL for every OCI service (the local emulator);
//! - `DATASYNC_OCI_ENDPOINT_<SERVICE>` (e.g. `..._STREAMING_MESSAGES`): one service elsewhere;
//! - `DATASYNC_OCI_UNIX_SOCKET`: a Unix socket every OCI call connects through, with the URLs
//!   unchanged (the emulator's socket in the local stack's data directory).
//!
//! On OCI they are absent and the endpoints come from the region (`OCI_REGION_METADATA`, else
//! `OCI_RESOURCE_PRINCIPAL_REGION`).

mod callbacks;
mod error;
mod isolation;
mod keys;
mod metrics;
mod oci;
mod parked;

use std::time::Duration;

use crate::classify::{Overrides, Route, Rules};
use crate::function_config::{self as key, Function};
use crate::message::{AllowList, Policy};
use crate::oci::endpoints::Endpoints;
use crate::target::TargetSettings;

pub use callbacks::{CallbackRetrySettings, CallbackSettings, MAX_BACKOFF as MAX_CALLBACK_BACKOFF};
pub use error::ConfigError;
pub use isolation::{BreakerSettings, BudgetSettings, Isolation};
use keys::Keys;
pub use metrics::is_namespace;
pub use oci::{
    auth_from_lookup, ENDPOINT, REGION_METADATA, RESOURCE_PRINCIPAL_REGION, UNIX_SOCKET,
};
pub use parked::ParkedSettings;

/// How dead letters are announced on the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSettings {
    /// `notify_dead_letter_payloads`: whether each dead letter's payload (cut short) goes in
    /// the notification (default false).
    pub payloads: bool,
    /// `notification_rate_per_minute`: most notifications this instance publishes per minute
    /// (default 20), through a token bucket holding ten seconds' worth.
    pub per_minute: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            payloads: false,
            per_minute: 20,
        }
    }
}

/// Everything a function needs from its configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which function these are for.
    pub function: Function,
    /// `data_stream_ocid` (populate).
    pub data_stream: Option<String>,
    /// `vault_ocid`.
    pub vault: String,
    /// `vault_compartment_ocid` (populate).
    pub vault_compartment: Option<String>,
    /// `vault_key_ocid` (populate).
    pub vault_key: Option<String>,
    /// The stream of each route (process, retry).
    pub routes: Vec<(Route, String)>,
    /// `unrecoverable_error_stream_ocid` (process, retry): a stream retry may read and route to.
    pub unrecoverable_stream: Option<String>,
    /// `notification_topic_ocid` (process, retry).
    pub topic: Option<String>,
    /// How dead letters are announced (process, retry).
    pub alerts: AlertSettings,
    /// The message rules: allow-list, plain http.
    pub policy: Policy,
    /// The target caller's settings.
    pub target: TargetSettings,
    /// The default classification rules.
    pub rules: Rules,
    /// Per-host overrides.
    pub overrides: Overrides,
    /// Target calls in flight per invocation.
    pub max_concurrency: usize,
    /// Target calls in flight per host.
    pub per_host_concurrency: usize,
    /// The retry function's consumer group.
    pub retry_group: String,
    /// Circuit breaker, time share and retry budget per target host.
    pub isolation: Isolation,
    /// Where the OCI services are.
    pub endpoints: Endpoints,
    /// `DATASYNC_OCI_UNIX_SOCKET`: the Unix socket OCI calls connect through (local stack only).
    pub oci_unix_socket: Option<std::path::PathBuf>,
    /// Where the parked keys are, when configured (`parked_keys_*`).
    pub parked: Option<parked::ParkedSettings>,
    /// Where the custom metrics are posted; `None`: not posted (`metrics_compartment_ocid`).
    pub metrics: Option<crate::metrics::MetricsSettings>,
    /// How long delivery callbacks may take (`callback_*`).
    pub callbacks: CallbackSettings,
    /// The routes object (`routes_object`, issue 21), when configured.
    pub routes_object: Option<crate::routes::RoutesObject>,
    /// How often the routes object's ETag is checked (`routes_check_ms`).
    pub routes_check: Duration,
}

impl Settings {
    /// Reads and validates `function`'s keys through `lookup`.
    ///
    /// # Errors
    /// The first [`ConfigError`], naming the key.
    pub fn from_lookup(
        function: Function,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let keys = Keys::new(function, lookup);
        keys.check_required()?;
        let routes = routes(&keys)?;
        let allow_list = allow_list(&keys)?;
        let (rules, overrides) = rules(&keys)?;
        let mut endpoints = oci::endpoints(&|k: &str| keys.get(k))?;
        if let Some(url) = keys.optional(key::VAULT_CRYPTO_ENDPOINT) {
            endpoints = endpoints
                .with_override(crate::oci::endpoints::Service::Crypto, &url)
                .map_err(|source| ConfigError::Endpoint {
                    key: key::VAULT_CRYPTO_ENDPOINT.to_owned(),
                    source,
                })?;
        }
        let endpoints = metrics::endpoint(&keys, endpoints)?;
        Ok(Self {
            function,
            data_stream: keys.ocid(key::DATA_STREAM)?,
            vault: keys.required_ocid(key::VAULT)?,
            vault_compartment: keys.ocid(key::VAULT_COMPARTMENT)?,
            vault_key: keys.ocid(key::VAULT_KEY)?,
            routes,
            unrecoverable_stream: keys.ocid(key::UNRECOVERABLE_STREAM)?,
            topic: keys.ocid(key::NOTIFICATION_TOPIC)?,
            alerts: AlertSettings {
                payloads: keys.flag(key::NOTIFY_DEAD_LETTER_PAYLOADS)?,
                per_minute: keys.number(key::NOTIFICATION_RATE_PER_MINUTE, 20, 1..=600)? as u32,
            },
            policy: Policy {
                allow_list,
                allow_http: keys.flag(key::ALLOW_HTTP_TARGETS)?,
            },
            target: TargetSettings {
                connect_timeout: keys.millis(
                    key::TARGET_CONNECT_TIMEOUT_MS,
                    Duration::from_secs(3),
                    10..=60_000,
                )?,
                timeout: keys.millis(
                    key::TARGET_TIMEOUT_MS,
                    Duration::from_secs(10),
                    10..=300_000,
                )?,
                allow_private: keys.flag(key::ALLOW_PRIVATE_TARGETS)?,
            },
            rules,
            overrides,
            max_concurrency: keys.number(key::MAX_CONCURRENCY, 64, 1..=1024)? as usize,
            // 16 in flight per host protects targets: one answering in 50 ms sees about 320
            // calls/s, near the 300/s per destination EventBridge API destinations default to
            // (Svix and Convoy also cap per endpoint). It costs no speed: against a target that
            // answers at once, 8, 16 or 32 in flight handle 1,000 messages in the same time
            // (the function's CPU is the limit; examples/process_bench.rs in functions/process).
            per_host_concurrency: keys.number(key::PER_HOST_CONCURRENCY, 16, 1..=1024)? as usize,
            retry_group: keys
                .optional(key::RETRY_CONSUMER_GROUP)
                .unwrap_or_else(|| "datasync-retry".to_owned()),
            isolation: isolation::isolation(&keys)?,
            endpoints,
            oci_unix_socket: keys.get(UNIX_SOCKET).map(std::path::PathBuf::from),
            parked: parked::settings(&keys)?,
            metrics: metrics::settings(&keys)?,
            callbacks: callbacks::settings(&keys)?,
            routes_object: keys
                .optional(key::ROUTES_OBJECT)
                .map(|v| crate::routes::RoutesObject::parse(&v))
                .transpose()
                .map_err(|e| ConfigError::client(key::ROUTES_OBJECT, e))?,
            routes_check: keys.millis(
                key::ROUTES_CHECK_MS,
                crate::routes::CHECK_INTERVAL,
                1_000..=3_600_000,
            )?,
        })
    }

    /// The stream of `route`, when configured.
    pub fn stream_for(&self, route: Route) -> Option<&str> {
        self.routes
            .iter()
            .find(|(r, _)| *r == route)
            .map(|(_, s)| s.as_str())
    }

    /// The rules for `host` (`host` or `host:port`, as in the overrides), with its override
    /// applied when there is one.
    pub fn rules_for(&self, host: &str) -> Rules {
        match self.overrides.get(&host.to_ascii_lowercase()) {
            Some(ov) => self.rules.with_override(ov),
            None => self.rules.clone(),
        }
    }
}

/// The error stream of each route the function reads.
fn routes<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<Vec<(Route, String)>, ConfigError> {
    let mut routes = Vec::new();
    for route in [
        Route::ServiceUnavailable,
        Route::InternalServer,
        Route::Default,
        Route::DeadLetter,
    ] {
        if let Some(stream) = keys.ocid(route.config_key())? {
            routes.push((route, stream));
        }
    }
    Ok(routes)
}

/// `target_allow_list`, which must name a host.
fn allow_list<F: Fn(&str) -> Option<String>>(keys: &Keys<F>) -> Result<AllowList, ConfigError> {
    let list = AllowList::parse(&keys.required(key::TARGET_ALLOW_LIST)?).map_err(|source| {
        ConfigError::AllowList {
            key: key::TARGET_ALLOW_LIST.to_owned(),
            source,
        }
    })?;
    if list.is_empty() {
        return Err(ConfigError::EmptyAllowList {
            key: key::TARGET_ALLOW_LIST.to_owned(),
        });
    }
    Ok(list)
}

/// The default classification rules with the configured limits, and the per-host overrides.
fn rules<F: Fn(&str) -> Option<String>>(keys: &Keys<F>) -> Result<(Rules, Overrides), ConfigError> {
    let mut rules = Rules::default();
    rules.max_attempts =
        keys.number(key::MAX_ATTEMPTS, u64::from(rules.max_attempts), 1..=1000)? as u32;
    rules.max_age = keys.seconds(
        key::MAX_MESSAGE_AGE_SECONDS,
        rules.max_age,
        60..=7 * 24 * 3600,
    )?;
    let overrides = match keys.optional(key::CLASSIFICATION_OVERRIDES) {
        None => Overrides::new(),
        Some(json) => serde_json::from_str(&json).map_err(|e| ConfigError::Rules {
            key: key::CLASSIFICATION_OVERRIDES.to_owned(),
            source: e,
        })?,
    };
    Ok((rules, overrides))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashMap;

    use crate::oci::endpoints::Service;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("data_stream_ocid", "ocid1.stream.oc1..data"),
            ("vault_ocid", "ocid1.vault.oc1..v"),
            ("vault_compartment_ocid", "ocid1.compartment.oc1..c"),
            ("vault_key_ocid", "ocid1.key.oc1..k"),
            (
                "serviceUnavailable_error_stream_ocid",
                "ocid1.stream.oc1..su",
            ),
            ("internalserver_error_stream_ocid", "ocid1.stream.oc1..is"),
            ("unrecoverable_error_stream_ocid", "ocid1.stream.oc1..un"),
            ("default_error_stream_ocid", "ocid1.stream.oc1..df"),
            ("dead_letter_stream_ocid", "ocid1.stream.oc1..dl"),
            ("notification_topic_ocid", "ocid1.onstopic.oc1..t"),
            ("target_allow_list", "api.example.com"),
            ("DATASYNC_OCI_ENDPOINT", "http://127.0.0.1:9"),
        ])
    }

    fn load(function: Function, map: &HashMap<&str, &str>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(function, |k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn full_configuration_loads_for_every_function() {
        let map = base();
        for f in Function::ALL {
            let s = load(f, &map).unwrap();
            assert_eq!(s.vault, "ocid1.vault.oc1..v");
        }
        let process = load(Function::Process, &map).unwrap();
        assert_eq!(
            process.stream_for(Route::DeadLetter),
            Some("ocid1.stream.oc1..dl")
        );
        assert_eq!(
            process.data_stream, None,
            "process does not read data_stream_ocid"
        );
        assert_eq!(process.max_concurrency, 64);
        assert_eq!(
            process
                .endpoints
                .require(Service::Secrets)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/"
        );
        assert_eq!(process.oci_unix_socket, None, "TCP unless a socket is set");
        let mut map = base();
        map.insert("DATASYNC_OCI_UNIX_SOCKET", "/data/emulator.sock");
        assert_eq!(
            load(Function::Populate, &map).unwrap().oci_unix_socket,
            Some(std::path::PathBuf::from("/data/emulator.sock"))
        );
    }

    #[test]
    fn notifications_go_to_the_topic_endpoint_else_the_sdk_template() {
        let mut map = base();
        map.remove("DATASYNC_OCI_ENDPOINT");
        map.insert("OCI_RESOURCE_PRINCIPAL_REGION", "eu-frankfurt-1");
        let at = |map: &HashMap<&str, &str>| {
            let s = load(Function::Process, map).unwrap();
            s.endpoints
                .require(Service::Notifications)
                .unwrap()
                .to_string()
        };
        assert_eq!(
            at(&map),
            "https://notification.eu-frankfurt-1.oraclecloud.com/"
        );
        map.insert(
            "notification_topic_endpoint",
            "https://cell-1.notification.eu-frankfurt-1.oci.oraclecloud.com",
        );
        assert_eq!(
            at(&map),
            "https://cell-1.notification.eu-frankfurt-1.oci.oraclecloud.com/"
        );
        let s = load(Function::Process, &map).unwrap();
        assert_eq!(s.alerts, AlertSettings::default());
        assert!(!s.alerts.payloads, "payloads are off unless asked for");
        map.insert("notify_dead_letter_payloads", "true");
        map.insert("notification_rate_per_minute", "5");
        let s = load(Function::Retry, &map).unwrap();
        assert_eq!(
            s.alerts,
            AlertSettings {
                payloads: true,
                per_minute: 5
            }
        );
        for (key, value) in [
            ("notification_topic_endpoint", "not a url"),
            ("notification_rate_per_minute", "0"),
            ("notify_dead_letter_payloads", "maybe"),
        ] {
            let mut map = map.clone();
            map.insert(key, value);
            let err = load(Function::Process, &map).unwrap_err();
            assert_eq!(err.key(), key, "{key}={value}: {err}");
        }
    }

    #[test]
    fn missing_and_invalid_keys_are_named() {
        let mut map = base();
        map.remove("dead_letter_stream_ocid");
        assert_eq!(
            load(Function::Process, &map).unwrap_err().key(),
            "dead_letter_stream_ocid"
        );
        // populate does not need it.
        assert!(load(Function::Populate, &map).is_ok());

        for (key, value) in [
            ("max_attempts", "0"),
            ("max_attempts", "many"),
            ("target_timeout_ms", "-1"),
            ("allow_http_targets", "maybe"),
            (
                "classification_overrides",
                "{\"h\": {\"retry\": [\"7xx\"]}}",
            ),
            ("target_allow_list", "bad host"),
            ("target_allow_list", " , "),
            ("default_error_stream_ocid", "not-an-ocid"),
        ] {
            let mut map = base();
            map.insert(key, value);
            let err = load(Function::Process, &map).unwrap_err();
            assert_eq!(err.key(), key, "{key}={value}: {err}");
        }
    }

    #[test]
    fn overrides_apply_per_host() {
        let mut map = base();
        map.insert(
            "classification_overrides",
            r#"{"api.example.com": {"maxAttempts": 2}}"#,
        );
        map.insert("max_attempts", "5");
        let s = load(Function::Process, &map).unwrap();
        assert_eq!(s.rules_for("API.example.com").max_attempts, 2);
        assert_eq!(s.rules_for("other.example.com").max_attempts, 5);
    }

    #[test]
    fn errors_keep_their_text_and_their_source() {
        use std::error::Error as _;
        let with = |key: &'static str, value: &'static str| {
            let mut map = base();
            map.insert(key, value);
            load(Function::Process, &map).unwrap_err()
        };
        let mut map = base();
        map.remove("vault_ocid");
        assert_eq!(
            load(Function::Process, &map).unwrap_err().to_string(),
            "configuration key vault_ocid: is required but not set"
        );
        assert_eq!(
            with("max_attempts", "0").to_string(),
            "configuration key max_attempts: must be a whole number from 1 to 1000"
        );
        assert!(matches!(
            with("target_timeout_ms", "5"),
            ConfigError::NotADuration {
                unit: "ms",
                min: 10,
                ..
            }
        ));
        assert_eq!(
            with("default_error_stream_ocid", "x").to_string(),
            "configuration key default_error_stream_ocid: must be an OCID (ocid1....)"
        );
        let rules = with("classification_overrides", "{");
        assert!(rules
            .source()
            .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some()));
        let list = with("target_allow_list", "h:99999");
        assert_eq!(
            list.to_string(),
            "configuration key target_allow_list: \"h:99999\": bad port"
        );
        assert!(list.source().is_some());
    }
}
