//! Key Management crypto (20180608, the vault's crypto endpoint): Encrypt and Decrypt, as OCI
//! answers them.
//!
//! Any key OCID (`ocid1.key.…`) is a key: its material is the data directory's key, bound to
//! the key OCID and the associated data as AES-256-GCM associated data, so a ciphertext opens
//! only with the key and the associated data it was made with. The ciphertext is base64, the
//! plaintext at most [`MAX_PLAINTEXT_BYTES`], the associated data's text under 4096 characters.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::response::Response;
use base64::Engine as _;
use http::Method;
use serde::{Deserialize, Serialize};

use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{parse_json, Call};
use crate::response::ok;

/// The most plaintext bytes one Encrypt takes.
pub const MAX_PLAINTEXT_BYTES: usize = 4096;
/// The associated data's string form must be shorter than this.
const MAX_ASSOCIATED_DATA: usize = 4096;
/// The only algorithm of an AES key.
const ALGORITHM: &str = "AES_256_GCM";

/// Whether `segments` is a crypto operation (`/20180608/encrypt`, `/20180608/decrypt`).
pub(crate) fn is_crypto(segments: &[String]) -> bool {
    matches!(
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        [crate::secrets::VAULT_API, "encrypt" | "decrypt"]
    )
}

/// Routes Encrypt and Decrypt.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    match (&call.method, call.segments().as_slice()) {
        (&Method::POST, [_, "encrypt"]) => ok(&encrypt(inner, &call.body)?),
        (&Method::POST, [_, "decrypt"]) => ok(&decrypt(inner, &call.body)?),
        _ => Err(call.not_found()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EncryptDetails {
    key_id: String,
    plaintext: String,
    #[serde(default)]
    associated_data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DecryptDetails {
    key_id: String,
    ciphertext: String,
    #[serde(default)]
    associated_data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    encryption_algorithm: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EncryptedData {
    ciphertext: String,
    key_id: String,
    key_version_id: String,
    encryption_algorithm: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecryptedData {
    plaintext: String,
    plaintext_checksum: String,
    key_id: String,
    key_version_id: String,
    encryption_algorithm: &'static str,
}

/// The key's one version (the emulator does not rotate keys).
fn key_version(key_id: &str) -> String {
    format!(
        "{}.v1",
        key_id.replacen("ocid1.key.", "ocid1.keyversion.", 1)
    )
}

fn check_key(key_id: &str, algorithm: Option<&str>) -> Result<(), ApiError> {
    if !key_id.starts_with("ocid1.key.") {
        return Err(ApiError::not_found(format!("key {key_id}")));
    }
    match algorithm {
        None | Some(ALGORITHM) => Ok(()),
        Some(other) => Err(ApiError::invalid(format!(
            "encryptionAlgorithm {other} is not supported by an AES key"
        ))),
    }
}

/// What the ciphertext is bound to: the key and the associated data, in a canonical form.
fn binding(key_id: &str, ad: Option<&BTreeMap<String, String>>) -> Result<Vec<u8>, ApiError> {
    let text = serde_json::to_string(&ad.cloned().unwrap_or_default())
        .map_err(|_| ApiError::invalid("associatedData is not a map of strings"))?;
    if text.len() >= MAX_ASSOCIATED_DATA {
        return Err(ApiError::invalid(format!(
            "associatedData must be fewer than {MAX_ASSOCIATED_DATA} characters"
        )));
    }
    Ok(format!("{key_id}\n{text}").into_bytes())
}

fn encrypt(inner: &Arc<Inner>, body: &[u8]) -> Result<EncryptedData, ApiError> {
    let d: EncryptDetails = parse_json(body)?;
    check_key(&d.key_id, d.encryption_algorithm.as_deref())?;
    let plain = base64::engine::general_purpose::STANDARD
        .decode(d.plaintext.trim())
        .map_err(|_| ApiError::invalid("plaintext is not valid base64"))?;
    if plain.is_empty() || plain.len() > MAX_PLAINTEXT_BYTES {
        return Err(ApiError::invalid(format!(
            "plaintext must be 1 to {MAX_PLAINTEXT_BYTES} bytes"
        )));
    }
    let aad = binding(&d.key_id, d.associated_data.as_ref())?;
    let sealed = inner.key.seal_bound(&plain, &aad);
    Ok(EncryptedData {
        ciphertext: base64::engine::general_purpose::STANDARD.encode(sealed),
        key_version_id: key_version(&d.key_id),
        key_id: d.key_id,
        encryption_algorithm: ALGORITHM,
    })
}

fn decrypt(inner: &Arc<Inner>, body: &[u8]) -> Result<DecryptedData, ApiError> {
    let d: DecryptDetails = parse_json(body)?;
    check_key(&d.key_id, d.encryption_algorithm.as_deref())?;
    let invalid = || {
        ApiError::invalid("the ciphertext cannot be decrypted with this key and associated data")
    };
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(d.ciphertext.trim())
        .map_err(|_| invalid())?;
    let aad = binding(&d.key_id, d.associated_data.as_ref())?;
    let plain = inner.key.open_bound(&sealed, &aad).ok_or_else(invalid)?;
    let checksum = crc32(&plain);
    Ok(DecryptedData {
        plaintext: base64::engine::general_purpose::STANDARD.encode(plain),
        plaintext_checksum: checksum.to_string(),
        key_version_id: key_version(&d.key_id),
        key_id: d.key_id,
        encryption_algorithm: ALGORITHM,
    })
}

/// CRC-32 (IEEE) of `bytes`, as OCI's `plaintextChecksum`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn only_encrypt_and_decrypt_are_crypto_paths() {
        let s = |p: &[&str]| p.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(is_crypto(&s(&["20180608", "encrypt"])));
        assert!(is_crypto(&s(&["20180608", "decrypt"])));
        assert!(!is_crypto(&s(&["20180608", "secrets"])));
        assert!(!is_crypto(&s(&["20190301", "encrypt"])));
    }
}
