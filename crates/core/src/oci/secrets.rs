//! Secret retrieval (API 20190301): GetSecretBundle and GetSecretBundleByName, with the
//! content base64-decoded (contracts/oci-platform.md section G).
//!
//! The decoded content never appears in `Debug` output, errors or logs.

use std::fmt;

use base64::Engine as _;
use http::Method;
use url::Url;

use super::client::{OciClient, OciError, OciRequest, OciResponse};
use super::endpoints::{Endpoints, Service};
use super::models::SecretBundle;
use super::service_url;

const API: &str = "20190301";

/// A secret version's stage, to pick which version to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretStage {
    /// The version in use (the service's default).
    Current,
    /// A version waiting to be promoted.
    Pending,
    /// The newest version.
    Latest,
    /// The version before CURRENT.
    Previous,
    /// A deprecated version.
    Deprecated,
}

impl SecretStage {
    /// The API spelling (`CURRENT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretStage::Current => "CURRENT",
            SecretStage::Pending => "PENDING",
            SecretStage::Latest => "LATEST",
            SecretStage::Previous => "PREVIOUS",
            SecretStage::Deprecated => "DEPRECATED",
        }
    }
}

/// A secret version: its decoded content and which version it is. `Debug` shows the version
/// and the content's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The secret's OCID.
    pub secret_id: String,
    /// The version number.
    pub version_number: i64,
    /// The version name, when it has one.
    pub version_name: Option<String>,
    /// The version's stages (`CURRENT`, `LATEST`, ...).
    pub stages: Vec<String>,
    content: Vec<u8>,
}

impl SecretValue {
    /// The decoded secret.
    pub fn content(&self) -> &[u8] {
        &self.content
    }

    /// The decoded secret, taken out.
    pub fn into_content(self) -> Vec<u8> {
        self.content
    }

    /// The decoded secret as UTF-8 text.
    ///
    /// # Errors
    /// [`OciError::Decode`] when it is not UTF-8 (the error does not quote the content).
    pub fn text(&self) -> Result<&str, OciError> {
        std::str::from_utf8(&self.content).map_err(|e| OciError::Decode {
            operation: "GetSecretBundle",
            detail: format!(
                "secret {} version {} is not UTF-8 (at byte {})",
                self.secret_id,
                self.version_number,
                e.valid_up_to()
            ),
        })
    }

    /// Decodes a bundle: `contentType` must be `BASE64`.
    ///
    /// # Errors
    /// [`OciError::Decode`] for another content type or content that is not base64.
    pub fn from_bundle(operation: &'static str, bundle: SecretBundle) -> Result<Self, OciError> {
        let content = &bundle.secret_bundle_content;
        if !content.content_type.eq_ignore_ascii_case("BASE64") {
            return Err(OciError::Decode {
                operation,
                detail: format!(
                    "secret {} has content type {}, expected BASE64",
                    bundle.secret_id, content.content_type
                ),
            });
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(content.content.trim())
            .map_err(|_| OciError::Decode {
                operation,
                detail: format!("secret {} content is not base64", bundle.secret_id),
            })?;
        Ok(Self {
            secret_id: bundle.secret_id,
            version_number: bundle.version_number,
            version_name: bundle.version_name,
            stages: bundle.stages,
            content: decoded,
        })
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValue")
            .field("secret_id", &self.secret_id)
            .field("version_number", &self.version_number)
            .field("version_name", &self.version_name)
            .field("stages", &self.stages)
            .field(
                "content",
                &format_args!("<{} bytes redacted>", self.content.len()),
            )
            .finish()
    }
}

/// The Secrets client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SecretsClient {
    client: OciClient,
    base: Url,
}

impl SecretsClient {
    /// A client for the Secrets endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::Secrets)?,
        })
    }

    /// GetSecretBundle: `GET /20190301/secretbundles/{secretId}[?stage=]` (CURRENT when
    /// `stage` is `None`).
    ///
    /// # Errors
    /// As [`OciClient::send`]; [`OciError::Decode`] for an unexpected body, a content type
    /// other than BASE64, or content that is not base64.
    pub async fn get_secret_bundle(
        &self,
        secret_id: &str,
        stage: Option<SecretStage>,
    ) -> Result<SecretValue, OciError> {
        let url = service_url(
            &self.base,
            &[API, "secretbundles", secret_id],
            &[("stage", stage.map(SecretStage::as_str))],
        )?;
        let response = self
            .client
            .send(&OciRequest::new("GetSecretBundle", Method::GET, url))
            .await?;
        decode_bundle(&response)
    }

    /// GetSecretBundleByName:
    /// `POST /20190301/secretbundles/actions/getByName?secretName=&vaultId=`, an empty-body
    /// POST signed with the body headers (content-length 0 and the empty-body hash).
    ///
    /// # Errors
    /// As [`get_secret_bundle`](Self::get_secret_bundle).
    pub async fn get_secret_bundle_by_name(
        &self,
        secret_name: &str,
        vault_id: &str,
    ) -> Result<SecretValue, OciError> {
        let url = service_url(
            &self.base,
            &[API, "secretbundles", "actions", "getByName"],
            &[
                ("secretName", Some(secret_name)),
                ("vaultId", Some(vault_id)),
            ],
        )?;
        let response = self
            .client
            .send(&OciRequest::new("GetSecretBundleByName", Method::POST, url))
            .await?;
        decode_bundle(&response)
    }
}

fn decode_bundle(response: &OciResponse) -> Result<SecretValue, OciError> {
    // serde_json's messages may quote values of the body: report only where it failed.
    let bundle: SecretBundle =
        serde_json::from_slice(&response.body).map_err(|e| OciError::Decode {
            operation: response.operation,
            detail: format!(
                "not a secret bundle ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        })?;
    SecretValue::from_bundle(response.operation, bundle)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::oci::models::SecretBundleContent;

    fn bundle(content_type: &str, content: &str) -> SecretBundle {
        SecretBundle {
            secret_id: "ocid1.vaultsecret.oc1..s".into(),
            version_number: 3,
            version_name: None,
            stages: vec!["CURRENT".into()],
            time_created: None,
            time_of_expiry: None,
            secret_bundle_content: SecretBundleContent {
                content_type: content_type.into(),
                content: content.into(),
            },
        }
    }

    #[test]
    fn content_is_decoded_and_never_printed() {
        let v =
            SecretValue::from_bundle("GetSecretBundle", bundle("BASE64", "aHVudGVyMg==")).unwrap();
        assert_eq!(v.content(), b"hunter2");
        assert_eq!(v.text().unwrap(), "hunter2");
        let shown = format!("{v:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<7 bytes redacted>"), "{shown}");
        let err =
            SecretValue::from_bundle("GetSecretBundle", bundle("BASE64", "hunter2!")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(SecretValue::from_bundle("GetSecretBundle", bundle("TEXT", "eA==")).is_err());
    }
}
