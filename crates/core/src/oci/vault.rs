//! Vault secret management (API 20180608): CreateSecret, UpdateSecret and ListSecrets
//! (contracts/oci-platform.md section G). Used by setup tooling, not by the functions.

use http::Method;
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{Endpoints, Service};
use super::models::{CreateSecretDetails, Secret, UpdateSecretDetails};
use super::service_url;

const API: &str = "20180608";

/// The most pages [`VaultClient::list_secrets`] follows, so a service that keeps answering
/// `opc-next-page` cannot loop it forever.
const MAX_PAGES: usize = 1000;

/// The Vault client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VaultClient {
    client: OciClient,
    base: Url,
}

impl VaultClient {
    /// A client for the Vault endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::Vault)?,
        })
    }

    /// CreateSecret: `POST /20180608/secrets`.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn create_secret(&self, details: &CreateSecretDetails) -> Result<Secret, OciError> {
        let url = service_url(&self.base, &[API, "secrets"], &[])?;
        let request = OciRequest::new("CreateSecret", Method::POST, url).json(details)?;
        self.client.send_json(&request).await
    }

    /// UpdateSecret: `PUT /20180608/secrets/{secretId}`; new content makes a new version.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn update_secret(
        &self,
        secret_id: &str,
        details: &UpdateSecretDetails,
    ) -> Result<Secret, OciError> {
        let url = service_url(&self.base, &[API, "secrets", secret_id], &[])?;
        let request = OciRequest::new("UpdateSecret", Method::PUT, url).json(details)?;
        self.client.send_json(&request).await
    }

    /// ListSecrets: `GET /20180608/secrets?compartmentId=[&vaultId=][&name=]`, following
    /// `opc-next-page` (sent back as `page`) until the last page.
    ///
    /// # Errors
    /// As [`OciClient::send`]; [`OciError::Decode`] for an unexpected body or more than 1000
    /// pages.
    pub async fn list_secrets(
        &self,
        compartment_id: &str,
        vault_id: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<Secret>, OciError> {
        let mut secrets = Vec::new();
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let url = service_url(
                &self.base,
                &[API, "secrets"],
                &[
                    ("compartmentId", Some(compartment_id)),
                    ("vaultId", vault_id),
                    ("name", name),
                    ("page", page.as_deref()),
                ],
            )?;
            let response = self
                .client
                .send(&OciRequest::new("ListSecrets", Method::GET, url))
                .await?;
            secrets.extend(response.json::<Vec<Secret>>()?);
            match response.header("opc-next-page") {
                Some(next) if !next.is_empty() => page = Some(next.to_owned()),
                _ => return Ok(secrets),
            }
        }
        Err(OciError::Decode {
            operation: "ListSecrets",
            detail: format!("more than {MAX_PAGES} pages"),
        })
    }
}
