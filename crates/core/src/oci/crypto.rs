//! Key Management crypto (API 20180608, on a vault's own crypto endpoint): Encrypt and Decrypt
//! with the vault's master key. populate seals a caller's token with it; process and retry open
//! it (docs/secrets.md).
//!
//! Plaintext never appears in `Debug` output, errors or logs.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use http::Method;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{Endpoints, Service};
use super::service_url;

const API: &str = "20180608";

/// The most plaintext bytes one Encrypt takes (OCI's limit).
pub const MAX_PLAINTEXT_BYTES: usize = 4096;

/// The associated data bound to a ciphertext: Decrypt succeeds only with the same map.
pub type AssociatedData = BTreeMap<String, String>;

/// EncryptDataDetails.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncryptDetails<'a> {
    key_id: &'a str,
    plaintext: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    associated_data: &'a AssociatedData,
}

/// DecryptDataDetails.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecryptDetails<'a> {
    key_id: &'a str,
    ciphertext: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    associated_data: &'a AssociatedData,
}

/// EncryptedData: what Encrypt answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedData {
    /// The ciphertext, as OCI encodes it (it names the key version that made it).
    pub ciphertext: String,
    /// The key's OCID.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The key version's OCID.
    #[serde(default)]
    pub key_version_id: Option<String>,
    /// The algorithm, `AES_256_GCM` for an AES key.
    #[serde(default)]
    pub encryption_algorithm: Option<String>,
}

/// DecryptedData: what Decrypt answers (only the plaintext is read).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptedData {
    plaintext: String,
}

/// Decrypted bytes. `Debug` shows their length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<{} bytes redacted>)", self.0.len())
    }
}

/// The crypto client of one vault. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CryptoClient {
    client: OciClient,
    base: Url,
}

impl CryptoClient {
    /// A client for the crypto endpoint of `endpoints` (a vault's `crypto_endpoint`; it has no
    /// regional default).
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::Crypto)?,
        })
    }

    /// Encrypt: `POST /20180608/encrypt`.
    ///
    /// # Errors
    /// As [`OciClient::send`]; [`OciError::Decode`] for an unexpected body or a plaintext over
    /// [`MAX_PLAINTEXT_BYTES`] (not sent).
    pub async fn encrypt(
        &self,
        key_id: &str,
        plaintext: &[u8],
        associated_data: &AssociatedData,
    ) -> Result<EncryptedData, OciError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(OciError::Decode {
                operation: "Encrypt",
                detail: format!(
                    "the plaintext is {} bytes; Encrypt takes at most {MAX_PLAINTEXT_BYTES}",
                    plaintext.len()
                ),
            });
        }
        let url = service_url(&self.base, &[API, "encrypt"], &[])?;
        let details = EncryptDetails {
            key_id,
            plaintext: base64::engine::general_purpose::STANDARD.encode(plaintext),
            associated_data,
        };
        let request = OciRequest::new("Encrypt", Method::POST, url).json(&details)?;
        self.client.send_json(&request).await
    }

    /// Decrypt: `POST /20180608/decrypt`.
    ///
    /// # Errors
    /// As [`OciClient::send`]; [`OciError::Decode`] for an unexpected body or a plaintext that
    /// is not base64 (the error never quotes it).
    pub async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &str,
        associated_data: &AssociatedData,
    ) -> Result<Plaintext, OciError> {
        let url = service_url(&self.base, &[API, "decrypt"], &[])?;
        let details = DecryptDetails {
            key_id,
            ciphertext,
            associated_data,
        };
        let request = OciRequest::new("Decrypt", Method::POST, url).json(&details)?;
        let response = self.client.send(&request).await?;
        let bad = || OciError::Decode {
            operation: "Decrypt",
            detail: "the answer holds no base64 plaintext".to_owned(),
        };
        let data: DecryptedData = serde_json::from_slice(&response.body).map_err(|_| bad())?;
        let plain = base64::engine::general_purpose::STANDARD
            .decode(data.plaintext.trim())
            .map_err(|_| bad())?;
        Ok(Plaintext(plain))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn details_are_written_as_oci_reads_them() {
        let mut ad = AssociatedData::new();
        ad.insert("datasync.secret".into(), "ds-x-y".into());
        let e = EncryptDetails {
            key_id: "ocid1.key.oc1..k",
            plaintext: "aGk=".into(),
            associated_data: &ad,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"keyId":"ocid1.key.oc1..k","plaintext":"aGk=","associatedData":{"datasync.secret":"ds-x-y"}})
        );
        let empty = AssociatedData::new();
        let d = DecryptDetails {
            key_id: "k",
            ciphertext: "c",
            associated_data: &empty,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"keyId":"k","ciphertext":"c"})
        );
        assert_eq!(
            format!("{:?}", Plaintext(b"hunter2".to_vec())),
            "Plaintext(<7 bytes redacted>)"
        );
    }
}
