//! Who may call: the key registry the signature verifier looks keyIds up in, the development
//! key pair and OCI config file written on first start, and emulated resource principals.
//!
//! **API keys** are registered by keyId `<tenancy>/<user>/<fingerprint>` with their public key,
//! in the database (so they survive restarts) and in memory (so verifying costs no query).
//!
//! **Resource principal tokens (RPST)** are JWTs signed RS256 by the emulator's own signing key
//! (`emulator_signing_key.pem` in the data directory). Like OCI's, a token carries the public
//! half of the principal's key as a `jwk` claim, so verification needs no state: a keyId
//! `ST$<token>` verifies when the token's signature checks out with the emulator key and its
//! `exp` is in the future; the request signature is then checked with the key in the token.
//! An expired, altered or foreign token is an unknown key: 401.

mod keys;
mod profile;
mod token;
pub(crate) mod verify;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use datasync_core::oci::key::PrivateKey;
use rsa::RsaPublicKey;

use keys::load_or_create_key;
pub(crate) use keys::{generate_key, parse_public_pem, private_pem, public_pem};
pub(crate) use profile::ensure_local_profile;
pub use profile::{
    LocalProfile, LOCAL_COMPARTMENT, LOCAL_PROFILE, LOCAL_REGION, LOCAL_TENANCY, LOCAL_USER,
};
pub use token::ResourcePrincipal;

use crate::error::EmulatorError;

/// The key the emulator signs resource principal tokens with.
pub const SIGNING_KEY_FILE: &str = "emulator_signing_key.pem";

/// The keyId registry and the token verifier.
pub struct KeyRegistry {
    api_keys: RwLock<HashMap<String, RsaPublicKey>>,
    signing: PrivateKey,
    /// Session tokens whose signature verified, with their principal's key and expiry (Unix
    /// seconds). A function signs with the same token for its whole session, while each second
    /// brings new request signatures to check: without this every such request paid a second
    /// RSA check and a JSON parse for the token. Only verified tokens are kept; expiry is still
    /// checked on every lookup.
    tokens: Mutex<HashMap<String, (RsaPublicKey, u64)>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRegistry").finish_non_exhaustive()
    }
}

impl KeyRegistry {
    /// Loads (or creates) the emulator's token signing key from `dir`.
    pub fn open(dir: &Path) -> Result<Self, EmulatorError> {
        let (signing, _) = load_or_create_key(&dir.join(SIGNING_KEY_FILE))?;
        Ok(Self {
            api_keys: RwLock::new(HashMap::new()),
            signing,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Registers an API key under its keyId (in memory; the caller persists it).
    pub fn insert(&self, key_id: String, public: RsaPublicKey) {
        if let Ok(mut keys) = self.api_keys.write() {
            keys.insert(key_id, public);
        }
    }

    /// The public key a request signed with `key_id` must verify with, at time `now`.
    pub fn lookup(&self, key_id: &str, now: SystemTime) -> Option<RsaPublicKey> {
        if let Some(token) = key_id.strip_prefix("ST$") {
            return self.verify_token(token, now);
        }
        self.api_keys.read().ok()?.get(key_id).cloned()
    }
}
