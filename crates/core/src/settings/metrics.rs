//! `metrics_*`: where the custom metrics go (see [`crate::metrics`]).

use std::time::Duration;

use crate::function_config as key;
use crate::function_config::Function;
use crate::metrics::publish::{
    DEFAULT_INTERVAL, DEFAULT_NAMESPACE, DEFAULT_POPULATE_INTERVAL, DEFAULT_TIMEOUT,
};
use crate::metrics::MetricsSettings;
use crate::oci::endpoints::{Endpoints, Service};

use super::keys::Keys;
use super::ConfigError;

/// The metrics settings, `None` without `metrics_compartment_ocid` (nothing is posted).
pub(super) fn settings<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<Option<MetricsSettings>, ConfigError> {
    let namespace = keys
        .optional(key::METRICS_NAMESPACE)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    if !is_namespace(&namespace) {
        return Err(ConfigError::NotANamespace {
            key: key::METRICS_NAMESPACE.to_owned(),
        });
    }
    let timeout = keys.millis(key::METRICS_POST_TIMEOUT_MS, DEFAULT_TIMEOUT, 50..=10_000)?;
    let default_interval = match keys.function() {
        Function::Populate => DEFAULT_POPULATE_INTERVAL,
        Function::Process | Function::Retry => DEFAULT_INTERVAL,
    };
    let interval = keys.millis(
        key::METRICS_POST_INTERVAL_MS,
        default_interval,
        1_000..=600_000,
    )?;
    let Some(compartment) = keys.ocid(key::METRICS_COMPARTMENT)? else {
        return Ok(None);
    };
    Ok(Some(MetricsSettings {
        compartment,
        namespace,
        timeout: timeout.min(Duration::from_secs(10)),
        interval,
    }))
}

/// `endpoints` with `metrics_endpoint` for the telemetry-ingestion service, when set.
pub(super) fn endpoint<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
    endpoints: Endpoints,
) -> Result<Endpoints, ConfigError> {
    match keys.optional(key::METRICS_ENDPOINT) {
        Some(url) => endpoints
            .with_override(Service::TelemetryIngestion, &url)
            .map_err(|source| ConfigError::Endpoint {
                key: key::METRICS_ENDPOINT.to_owned(),
                source,
            }),
        None => Ok(endpoints),
    }
}

/// What PostMetricData takes as a namespace: a letter, then letters, digits and `_`, not
/// starting with the reserved `oci_` or `oracle_`.
pub fn is_namespace(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.to_ascii_lowercase().starts_with("oci_")
        && !s.to_ascii_lowercase().starts_with("oracle_")
        && s.len() <= 256
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::function_config::Function;

    #[test]
    fn namespaces_follow_the_api_rules() {
        assert!(is_namespace("datasync"));
        assert!(is_namespace("data_sync2"));
        for bad in ["", "2x", "oci_x", "Oracle_x", "a-b", "a.b"] {
            assert!(!is_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn metrics_are_off_without_a_compartment_and_validated_with_one() {
        let keys = Keys::new(Function::Process, |_: &str| None);
        assert_eq!(settings(&keys).unwrap(), None);
        let keys = Keys::new(Function::Process, |k: &str| match k {
            "metrics_compartment_ocid" => Some("ocid1.compartment.oc1..c".to_owned()),
            "metrics_post_timeout_ms" => Some("300".to_owned()),
            _ => None,
        });
        let s = settings(&keys).unwrap().unwrap();
        assert_eq!(s.namespace, "datasync");
        assert_eq!(s.timeout, Duration::from_millis(300));
        let keys = Keys::new(Function::Process, |k: &str| {
            (k == "metrics_namespace").then(|| "oci_mine".to_owned())
        });
        assert_eq!(settings(&keys).unwrap_err().key(), "metrics_namespace");
    }
}
