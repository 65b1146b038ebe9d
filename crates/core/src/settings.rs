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

use std::sync::Arc;
use std::time::Duration;

use crate::classify::{Overrides, Route, Rules};
use crate::function_config::{keys_for, Function};
use crate::message::{AllowList, Policy};
use crate::oci::auth::{AuthProvider, ConfigFileAuth, ResourcePrincipalAuth};
use crate::oci::endpoints::{Endpoints, Region, Service};
use crate::target::TargetSettings;

/// A configuration problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key {key}: {problem}")]
pub struct ConfigError {
    /// The key at fault.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(key: &str, problem: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            problem: problem.into(),
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
    /// Where the OCI services are.
    pub endpoints: Endpoints,
    /// `DATASYNC_OCI_UNIX_SOCKET`: the Unix socket OCI calls connect through (local stack only).
    pub oci_unix_socket: Option<std::path::PathBuf>,
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
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // Every required key of this function must be present.
        for key in keys_for(function).filter(|k| k.required) {
            if get(key.name).is_none() {
                return Err(ConfigError::new(key.name, "is required but not set"));
            }
        }
        let reads = |key: &str| keys_for(function).any(|k| k.name == key);
        let opt = |key: &str| if reads(key) { get(key) } else { None };
        let required =
            |key: &str| get(key).ok_or_else(|| ConfigError::new(key, "is required but not set"));

        let ocid = |key: &str, value: Option<String>| -> Result<Option<String>, ConfigError> {
            match value {
                Some(v) if !v.starts_with("ocid1.") => {
                    Err(ConfigError::new(key, "must be an OCID (ocid1....)"))
                }
                other => Ok(other),
            }
        };
        let mut routes = Vec::new();
        for route in [
            Route::ServiceUnavailable,
            Route::InternalServer,
            Route::Default,
            Route::DeadLetter,
        ] {
            if let Some(stream) = ocid(route.config_key(), opt(route.config_key()))? {
                routes.push((route, stream));
            }
        }

        let allow_list = AllowList::parse(&required("target_allow_list")?)
            .map_err(|e| ConfigError::new("target_allow_list", e))?;
        if allow_list.is_empty() {
            return Err(ConfigError::new(
                "target_allow_list",
                "names no host; nothing could be delivered",
            ));
        }
        let flag = |key: &str| -> Result<bool, ConfigError> {
            match opt(key).as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("false") | Some("0") | Some("no") => Ok(false),
                Some("true") | Some("1") | Some("yes") => Ok(true),
                Some(_) => Err(ConfigError::new(key, "must be true or false")),
            }
        };
        let number = |key: &str,
                      default: u64,
                      range: std::ops::RangeInclusive<u64>|
         -> Result<u64, ConfigError> {
            match opt(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        ConfigError::new(
                            key,
                            format!(
                                "must be a whole number from {} to {}",
                                range.start(),
                                range.end()
                            ),
                        )
                    }),
            }
        };

        let mut rules = Rules::default();
        rules.max_attempts =
            number("max_attempts", u64::from(rules.max_attempts), 1..=1000)? as u32;
        rules.max_age = Duration::from_secs(number(
            "max_message_age_seconds",
            rules.max_age.as_secs(),
            60..=7 * 24 * 3600,
        )?);
        let overrides: Overrides = match opt("classification_overrides") {
            None => Overrides::new(),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| ConfigError::new("classification_overrides", e.to_string()))?,
        };

        let endpoints = endpoints(&get)?;
        Ok(Self {
            function,
            data_stream: ocid("data_stream_ocid", opt("data_stream_ocid"))?,
            vault: ocid("vault_ocid", Some(required("vault_ocid")?))?.unwrap_or_default(),
            vault_compartment: ocid("vault_compartment_ocid", opt("vault_compartment_ocid"))?,
            vault_key: ocid("vault_key_ocid", opt("vault_key_ocid"))?,
            routes,
            unrecoverable_stream: ocid(
                "unrecoverable_error_stream_ocid",
                opt("unrecoverable_error_stream_ocid"),
            )?,
            topic: ocid("notification_topic_ocid", opt("notification_topic_ocid"))?,
            policy: Policy {
                allow_list,
                allow_http: flag("allow_http_targets")?,
            },
            target: TargetSettings {
                connect_timeout: Duration::from_millis(number(
                    "target_connect_timeout_ms",
                    3000,
                    10..=60_000,
                )?),
                timeout: Duration::from_millis(number("target_timeout_ms", 10_000, 10..=300_000)?),
                allow_private: flag("allow_private_targets")?,
            },
            rules,
            overrides,
            max_concurrency: number("max_concurrency", 64, 1..=1024)? as usize,
            // 16 in flight per host protects targets: one answering in 50 ms sees about 320
            // calls/s, near the 300/s per destination EventBridge API destinations default to
            // (Svix and Convoy also cap per endpoint). It costs no speed: against a target that
            // answers at once, 8, 16 or 32 in flight handle 1,000 messages in the same time
            // (the function's CPU is the limit; examples/process_bench.rs in functions/process).
            per_host_concurrency: number("per_host_concurrency", 16, 1..=1024)? as usize,
            retry_group: opt("retry_consumer_group").unwrap_or_else(|| "datasync-retry".to_owned()),
            endpoints,
            oci_unix_socket: get("DATASYNC_OCI_UNIX_SOCKET").map(std::path::PathBuf::from),
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

fn endpoints(get: &impl Fn(&str) -> Option<String>) -> Result<Endpoints, ConfigError> {
    let mut endpoints = if let Some(meta) = get("OCI_REGION_METADATA") {
        Endpoints::for_region(
            Region::from_metadata(&meta)
                .map_err(|e| ConfigError::new("OCI_REGION_METADATA", e.to_string()))?,
        )
    } else if let Some(region) = get("OCI_RESOURCE_PRINCIPAL_REGION") {
        Endpoints::for_region(Region::new(&region))
    } else {
        Endpoints::default()
    };
    if let Some(base) = get("DATASYNC_OCI_ENDPOINT") {
        for service in Service::ALL {
            endpoints = endpoints
                .with_override(service, &base)
                .map_err(|e| ConfigError::new("DATASYNC_OCI_ENDPOINT", e.to_string()))?;
        }
    }
    for service in Service::ALL {
        let key = format!(
            "DATASYNC_OCI_ENDPOINT_{}",
            service.name().to_ascii_uppercase()
        );
        if let Some(url) = get(&key) {
            endpoints = endpoints
                .with_override(service, &url)
                .map_err(|e| ConfigError::new(&key, e.to_string()))?;
        }
    }
    Ok(endpoints)
}

/// The auth provider a function uses: resource principal when `OCI_RESOURCE_PRINCIPAL_VERSION`
/// is set (OCI Functions, and the local stack), else the API key of the OCI config file.
///
/// # Errors
/// A [`ConfigError`] naming the variable or file at fault.
pub fn auth_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn AuthProvider>, ConfigError> {
    if lookup("OCI_RESOURCE_PRINCIPAL_VERSION").is_some() {
        let rp = ResourcePrincipalAuth::from_env(&lookup)
            .map_err(|e| ConfigError::new("OCI_RESOURCE_PRINCIPAL_*", e.to_string()))?;
        return Ok(Arc::new(rp));
    }
    let api_key = ConfigFileAuth::from_config(None, None, &lookup)
        .map_err(|e| ConfigError::new("OCI_CONFIG_FILE", e.to_string()))?;
    Ok(Arc::new(api_key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::HashMap;

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
    fn missing_and_invalid_keys_are_named() {
        let mut map = base();
        map.remove("dead_letter_stream_ocid");
        assert_eq!(
            load(Function::Process, &map).unwrap_err().key,
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
            assert_eq!(err.key, key, "{key}={value}: {err}");
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
}
