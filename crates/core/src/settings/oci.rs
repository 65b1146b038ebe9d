//! Where the OCI services are and who calls them: the endpoints (region, or the local stack's
//! overrides) and the auth provider, read from the environment a function runs in.

use std::sync::Arc;

use super::ConfigError;
use crate::oci::auth::{AuthProvider, ConfigFileAuth, ResourcePrincipalAuth};
use crate::oci::endpoints::{EndpointError, Endpoints, Region, Service};

/// The region's metadata, as OCI Functions sets it.
pub const REGION_METADATA: &str = "OCI_REGION_METADATA";
/// The region's name, as a resource principal session sets it.
pub const RESOURCE_PRINCIPAL_REGION: &str = "OCI_RESOURCE_PRINCIPAL_REGION";
/// One base URL for every OCI service (the local emulator).
pub const ENDPOINT: &str = "DATASYNC_OCI_ENDPOINT";
/// A Unix socket every OCI call connects through (the local stack).
pub const UNIX_SOCKET: &str = "DATASYNC_OCI_UNIX_SOCKET";

/// The endpoints from the region, then the local overrides (`DATASYNC_OCI_ENDPOINT`), the
/// topic's `notification_topic_endpoint`, then `DATASYNC_OCI_ENDPOINT_<SERVICE>`.
pub(super) fn endpoints(get: &impl Fn(&str) -> Option<String>) -> Result<Endpoints, ConfigError> {
    let endpoint_error = |key: &str| {
        let key = key.to_owned();
        move |e: EndpointError| ConfigError::Endpoint { key, source: e }
    };
    let mut endpoints = if let Some(meta) = get(REGION_METADATA) {
        Endpoints::for_region(
            Region::from_metadata(&meta).map_err(endpoint_error(REGION_METADATA))?,
        )
    } else if let Some(region) = get(RESOURCE_PRINCIPAL_REGION) {
        Endpoints::for_region(Region::new(&region))
    } else {
        Endpoints::default()
    };
    if let Some(base) = get(ENDPOINT) {
        for service in Service::ALL {
            endpoints = endpoints
                .with_override(service, &base)
                .map_err(endpoint_error(ENDPOINT))?;
        }
    }
    // The topic's own endpoint (GetTopic's apiEndpoint), which PublishMessage is documented
    // against; a per-service override below still wins.
    if let Some(url) = get(crate::function_config::NOTIFICATION_TOPIC_ENDPOINT) {
        endpoints = endpoints
            .with_override(Service::Notifications, &url)
            .map_err(endpoint_error(
                crate::function_config::NOTIFICATION_TOPIC_ENDPOINT,
            ))?;
    }
    for service in Service::ALL {
        let key = format!("{ENDPOINT}_{}", service.name().to_ascii_uppercase());
        if let Some(url) = get(&key) {
            endpoints = endpoints
                .with_override(service, &url)
                .map_err(endpoint_error(&key))?;
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
    let auth_error = |key: &str| {
        let key = key.to_owned();
        move |e| ConfigError::Auth { key, source: e }
    };
    if lookup("OCI_RESOURCE_PRINCIPAL_VERSION").is_some() {
        let rp = ResourcePrincipalAuth::from_env(&lookup)
            .map_err(auth_error("OCI_RESOURCE_PRINCIPAL_*"))?;
        return Ok(Arc::new(rp));
    }
    let api_key =
        ConfigFileAuth::from_config(None, None, &lookup).map_err(auth_error("OCI_CONFIG_FILE"))?;
    Ok(Arc::new(api_key))
}
