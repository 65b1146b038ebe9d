//! RSA keys: generating them, their PEM forms, and key files in the data directory.

use std::path::Path;

use datasync_core::oci::key::PrivateKey;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::crypto::write_private;
use crate::error::{EmulatorError, KeyError};

/// RSA key size for generated keys.
const KEY_BITS: usize = 2048;

/// Generates a fresh RSA key.
pub fn generate_key() -> Result<RsaPrivateKey, EmulatorError> {
    RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS).map_err(|e| KeyError::Generate(e).into())
}

/// The PKCS#8 PEM of a private key.
pub fn private_pem(key: &RsaPrivateKey) -> Result<String, EmulatorError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| KeyError::EncodePrivate(e).into())
}

/// The SubjectPublicKeyInfo PEM of a public key.
pub fn public_pem(key: &RsaPublicKey) -> Result<String, EmulatorError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::PublicPem(e).into())
}

/// Reads a private key file, or generates one and writes it (mode 0600) when absent.
pub(super) fn load_or_create_key(path: &Path) -> Result<(PrivateKey, bool), EmulatorError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => Ok((
            PrivateKey::from_pem(&pem, None)
                .map_err(KeyError::PrivatePem)
                .map_err(EmulatorError::key_file(path))?,
            false,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key()?;
            write_private(path, private_pem(&key)?.as_bytes())?;
            Ok((PrivateKey::from_rsa(key), true))
        }
        Err(e) => Err(EmulatorError::io("reading", path)(e)),
    }
}

/// Parses a public key PEM stored in the registry table.
pub fn parse_public_pem(pem: &str) -> Result<RsaPublicKey, EmulatorError> {
    RsaPublicKey::from_public_key_pem(pem).map_err(|e| KeyError::PublicPem(e).into())
}
