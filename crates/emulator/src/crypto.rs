//! The data key (AES-256-GCM) kept in the data directory: it seals secret contents at rest and
//! the emulator's cursors, so cursors are opaque and cannot be forged or altered.

use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use rand::RngCore as _;

use crate::error::{EmulatorError, KeyError};

/// The key file's name in the data directory (mode 0600).
pub const DATA_KEY_FILE: &str = "data.key";

/// AES-256-GCM with the data directory's key.
pub struct DataKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// Loads the key from `dir`, creating a random one (mode 0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, EmulatorError> {
        let path = dir.join(DATA_KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private(&path, &key)?;
                key.to_vec()
            }
            Err(e) => return Err(EmulatorError::io("reading", &path)(e)),
        };
        if bytes.len() != 32 {
            return Err(EmulatorError::key_file(&path)(KeyError::DataKeyLength(
                bytes.len(),
            )));
        }
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// Encrypts `plain`: a fresh random 96-bit nonce followed by the ciphertext and tag.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encryption fails only for inputs over 64 GiB, which no caller passes.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`DataKey::seal`] produced; `None` when it was altered or is not ours.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        self.cipher.decrypt(Nonce::from_slice(nonce), body).ok()
    }

    /// Encrypts `plain` bound to `aad` (authenticated, not encrypted): opened only with the same
    /// `aad`. A fresh random nonce, then the ciphertext and tag.
    pub fn seal_bound(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = aes_gcm::aead::Payload { msg: plain, aad };
        // Encryption fails only for inputs over 64 GiB, which no caller passes.
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(12 + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`DataKey::seal_bound`] produced with the same `aad`; `None` otherwise.
    pub fn open_bound(&self, sealed: &[u8], aad: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        let payload = aes_gcm::aead::Payload { msg: body, aad };
        self.cipher.decrypt(Nonce::from_slice(nonce), payload).ok()
    }

    /// Seals `plain` into URL-safe base64 text (for cursors).
    pub fn seal_text(&self, plain: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.seal(plain))
    }

    /// Opens text made by [`DataKey::seal_text`].
    pub fn open_text(&self, text: &str) -> Option<Vec<u8>> {
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .ok()?;
        self.open(&sealed)
    }
}

/// Writes a file readable by its owner only, durably (created with mode 0600 before any byte).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), EmulatorError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(EmulatorError::io("creating", path))?;
    file.write_all(bytes)
        .map_err(EmulatorError::io("writing", path))?;
    file.sync_all()
        .map_err(EmulatorError::io("syncing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seal_round_trips_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let key = DataKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal(b"secret");
        assert_eq!(key.open(&sealed).unwrap(), b"secret");
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(key.open(&bad).is_none());
        // The same key is read back, and the file is private.
        let again = DataKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(DATA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
