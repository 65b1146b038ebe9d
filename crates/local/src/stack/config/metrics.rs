//! `[metrics]`: the functions' custom metrics, posted to the emulator's Monitoring as
//! `terraform/` has them posted to OCI Monitoring (`metrics_*` function keys), and the
//! emulator's Monitoring outage switch for drills and tests.
//!
//! ```toml
//! [metrics]
//! enabled = true
//! namespace = "datasync"
//! monitoring_outage = false
//! ```

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Post the functions' metrics to the emulator's Monitoring (default true; the Prometheus
    /// view is there either way).
    pub enabled: bool,
    /// The metric namespace (`metrics_namespace`, default `datasync`).
    pub namespace: String,
    /// Start with the emulator answering PostMetricData with 503, as in a Monitoring outage
    /// (default false): deliveries must go on unchanged.
    pub monitoring_outage: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: "datasync".to_owned(),
            monitoring_outage: false,
        }
    }
}

impl MetricsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !datasync_core::settings::is_namespace(&self.namespace) {
            return Err(invalid(
                "metrics.namespace",
                "must start with a letter and hold only letters, digits and _ (not oci_ or oracle_)",
            ));
        }
        Ok(())
    }
}
