//! Where each OCI service lives: hosts derived from the region and its realm, each overridable
//! (the local emulator, private endpoints, tests).

use std::collections::HashMap;

use serde::Deserialize;
use url::Url;

/// The OCI services datasync calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Streaming control plane (GetStream, CreateStream, ...).
    Streaming,
    /// Streaming data plane, when configured instead of read from each stream's
    /// `messagesEndpoint`.
    StreamingMessages,
    /// Secret retrieval (GetSecretBundle, GetSecretBundleByName).
    Secrets,
    /// Vault secret management (CreateSecret, UpdateSecret, ListSecrets).
    Vault,
    /// Notifications data plane (PublishMessage) and topics.
    Notifications,
    /// Object Storage.
    ObjectStorage,
    /// Key Management crypto (Encrypt, Decrypt): each vault has its own crypto endpoint, so it
    /// has no regional default and must be configured (`vault_crypto_endpoint`).
    Crypto,
    /// Monitoring's ingestion endpoint (PostMetricData only; `telemetry-ingestion.<region>`).
    TelemetryIngestion,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 8] = [
        Service::Streaming,
        Service::StreamingMessages,
        Service::Secrets,
        Service::Vault,
        Service::Notifications,
        Service::ObjectStorage,
        Service::Crypto,
        Service::TelemetryIngestion,
    ];

    /// The name used in configuration (`endpoint_<name>` keys and `--endpoint NAME=URL`).
    pub fn name(self) -> &'static str {
        match self {
            Service::Streaming => "streaming",
            Service::StreamingMessages => "streaming_messages",
            Service::Secrets => "secrets",
            Service::Vault => "vault",
            Service::Notifications => "notifications",
            Service::ObjectStorage => "objectstorage",
            Service::Crypto => "crypto",
            Service::TelemetryIngestion => "telemetry_ingestion",
        }
    }

    /// The service named `name` (see [`name`](Self::name)).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Why an endpoint could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Neither a region nor an override is configured for the service.
    #[error("no endpoint for {0}: configure a region or an endpoint override")]
    Unconfigured(&'static str),
    /// `OCI_REGION_METADATA` is not the JSON OCI documents.
    #[error("OCI_REGION_METADATA is malformed: {0}")]
    BadMetadata(String),
    /// An override or derived URL does not parse.
    #[error("bad endpoint URL {url}: {source}")]
    BadUrl {
        /// The text.
        url: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
}

/// A region and the domain of its realm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// The region identifier, e.g. `us-phoenix-1`.
    pub id: String,
    /// The realm's second-level domain, e.g. `oraclecloud.com`.
    pub realm_domain: String,
}

/// Regions outside the commercial realm (oc1) whose realm is known without metadata.
/// Other regions are taken as oc1; `OCI_REGION_METADATA` covers any region OCI adds.
const NON_OC1_REGIONS: &[(&str, &str)] = &[
    ("us-langley-1", "oraclegovcloud.com"),
    ("us-luke-1", "oraclegovcloud.com"),
    ("us-gov-ashburn-1", "oraclegovcloud.com"),
    ("us-gov-chicago-1", "oraclegovcloud.com"),
    ("us-gov-phoenix-1", "oraclegovcloud.com"),
    ("uk-gov-london-1", "oraclegovcloud.uk"),
    ("uk-gov-cardiff-1", "oraclegovcloud.uk"),
    ("ap-chiyoda-1", "oraclecloud8.com"),
    ("ap-ibaraki-1", "oraclecloud8.com"),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegionMetadata {
    region_identifier: String,
    realm_domain_component: String,
}

impl Region {
    /// A region by identifier, in its known realm (oc1 unless listed otherwise).
    pub fn new(id: &str) -> Self {
        let id = id.trim().to_ascii_lowercase();
        let realm_domain = NON_OC1_REGIONS
            .iter()
            .find(|(r, _)| *r == id)
            .map_or("oraclecloud.com", |(_, d)| d)
            .to_owned();
        Self { id, realm_domain }
    }

    /// A region from `OCI_REGION_METADATA` (`{"realmKey","realmDomainComponent","regionKey",
    /// "regionIdentifier"}`), as OCI Functions sets it.
    ///
    /// # Errors
    /// [`EndpointError::BadMetadata`] when the JSON lacks those fields.
    pub fn from_metadata(json: &str) -> Result<Self, EndpointError> {
        let meta: RegionMetadata =
            serde_json::from_str(json).map_err(|e| EndpointError::BadMetadata(e.to_string()))?;
        Ok(Self {
            id: meta.region_identifier,
            realm_domain: meta.realm_domain_component,
        })
    }

    /// The default URL of `service` in this region (none for the streaming data plane, which is
    /// per stream, nor for crypto, which is per vault).
    pub fn url(&self, service: Service) -> Option<String> {
        let (r, d) = (&self.id, &self.realm_domain);
        Some(match service {
            Service::Streaming => format!("https://streaming.{r}.oci.{d}"),
            Service::StreamingMessages | Service::Crypto => return None,
            Service::Secrets => format!("https://secrets.vaults.{r}.oci.{d}"),
            Service::Vault => format!("https://vaults.{r}.oci.{d}"),
            // The SDKs' template (python `notification_data_plane_client.py`:
            // `https://notification.{region}.{secondLevelDomain}`), with no `.oci.`. A topic's
            // own `apiEndpoint` (configured as `notification_topic_endpoint`) comes first.
            Service::Notifications => format!("https://notification.{r}.{d}"),
            Service::ObjectStorage => format!("https://objectstorage.{r}.{d}"),
            // The SDKs' template is `https://telemetry.{region}.{secondLevelDomain}`; the
            // PostMetricData docstring says to replace `telemetry` with `telemetry-ingestion`.
            Service::TelemetryIngestion => format!("https://telemetry-ingestion.{r}.{d}"),
        })
    }
}

/// The endpoint of every service: overrides first, then the region's defaults.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    region: Option<Region>,
    overrides: HashMap<Service, Url>,
}

impl Endpoints {
    /// Endpoints of `region`.
    pub fn for_region(region: Region) -> Self {
        Self {
            region: Some(region),
            overrides: HashMap::new(),
        }
    }

    /// Every service at one base URL, as the local emulator serves them.
    ///
    /// # Errors
    /// [`EndpointError::BadUrl`] when `base` does not parse.
    pub fn all_at(base: &str) -> Result<Self, EndpointError> {
        let mut endpoints = Self::default();
        for service in Service::ALL {
            endpoints = endpoints.with_override(service, base)?;
        }
        Ok(endpoints)
    }

    /// The region, when one is set.
    pub fn region(&self) -> Option<&Region> {
        self.region.as_ref()
    }

    /// Sends `service` to `url` instead of the region's default.
    ///
    /// # Errors
    /// [`EndpointError::BadUrl`] when `url` does not parse.
    pub fn with_override(mut self, service: Service, url: &str) -> Result<Self, EndpointError> {
        let parsed = parse(url)?;
        self.overrides.insert(service, parsed);
        Ok(self)
    }

    /// The base URL of `service`, or None for the streaming data plane when it is not
    /// overridden (it then comes from each stream's `messagesEndpoint`).
    ///
    /// # Errors
    /// [`EndpointError::Unconfigured`] when there is neither an override nor a region.
    pub fn url(&self, service: Service) -> Result<Option<Url>, EndpointError> {
        if let Some(url) = self.overrides.get(&service) {
            return Ok(Some(url.clone()));
        }
        let region = self
            .region
            .as_ref()
            .ok_or(EndpointError::Unconfigured(service.name()))?;
        region.url(service).map(|u| parse(&u)).transpose()
    }

    /// Like [`url`](Self::url) for services that always have one.
    ///
    /// # Errors
    /// [`EndpointError::Unconfigured`] when there is no override, no region, or the service has
    /// no regional default.
    pub fn require(&self, service: Service) -> Result<Url, EndpointError> {
        self.url(service)?
            .ok_or(EndpointError::Unconfigured(service.name()))
    }
}

fn parse(url: &str) -> Result<Url, EndpointError> {
    Url::parse(url.trim_end_matches('/')).map_err(|source| EndpointError::BadUrl {
        url: url.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn commercial_region_hosts() {
        let e = Endpoints::for_region(Region::new("us-phoenix-1"));
        let host = |s| e.require(s).unwrap().to_string();
        assert_eq!(
            host(Service::Streaming),
            "https://streaming.us-phoenix-1.oci.oraclecloud.com/"
        );
        assert_eq!(
            host(Service::Secrets),
            "https://secrets.vaults.us-phoenix-1.oci.oraclecloud.com/"
        );
        assert_eq!(
            host(Service::Vault),
            "https://vaults.us-phoenix-1.oci.oraclecloud.com/"
        );
        assert_eq!(
            host(Service::Notifications),
            "https://notification.us-phoenix-1.oraclecloud.com/"
        );
        assert_eq!(
            host(Service::ObjectStorage),
            "https://objectstorage.us-phoenix-1.oraclecloud.com/"
        );
        assert!(e.url(Service::StreamingMessages).unwrap().is_none());
    }

    #[test]
    fn realm_from_table_and_metadata() {
        assert_eq!(
            Region::new("uk-gov-london-1").realm_domain,
            "oraclegovcloud.uk"
        );
        let meta = r#"{"realmKey":"oc19","realmDomainComponent":"oraclecloud.eu","regionKey":"ZRH","regionIdentifier":"eu-frankfurt-2"}"#;
        let r = Region::from_metadata(meta).unwrap();
        assert_eq!(
            r.url(Service::Vault).unwrap(),
            "https://vaults.eu-frankfurt-2.oci.oraclecloud.eu"
        );
        assert!(Region::from_metadata("{}").is_err());
    }

    #[test]
    fn overrides_win_and_unconfigured_is_an_error() {
        let e = Endpoints::all_at("http://127.0.0.1:9999/").unwrap();
        assert_eq!(
            e.require(Service::StreamingMessages).unwrap().as_str(),
            "http://127.0.0.1:9999/"
        );
        let err = Endpoints::default().require(Service::Secrets).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no endpoint for secrets: configure a region or an endpoint override"
        );
        assert_eq!(
            Service::from_name("objectstorage"),
            Some(Service::ObjectStorage)
        );
    }
}
