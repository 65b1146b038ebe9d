//! What populate asks of Vault and Key Management for a request's `vaultSecretName`.
//!
//! - With an `Authorization` token: [`Sealer`] encrypts it with the vault's master key
//!   (Encrypt, associated data = the caller-scoped secret name), and the envelope carries the
//!   ciphertext. No secret version is written: OCI keeps at most 30 versions in use and 30
//!   pending deletion per secret, each pending at least a day, which tokens rotated every few
//!   minutes would exhaust (docs/secrets.md). A cache of SHA-256(token) → ciphertext per scoped
//!   name, for [`CACHE_TTL`], makes a steady token cost one Encrypt per TTL.
//! - Without a token: [`SecretStore::present`] checks the operator stored a secret of that
//!   scoped name (`ACTIVE`, or still `CREATING`/`UPDATING`, which OCI finishes in moments), so
//!   a message that could never be delivered is refused at ingest. Names found are cached for
//!   [`CACHE_TTL`]: the common path costs one ListSecrets per name per TTL, none per message.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use datasync_core::message::{sealed_context, SealedToken};
use datasync_core::oci::client::OciError;
use datasync_core::oci::crypto::CryptoClient;
use datasync_core::oci::vault::VaultClient;
use datasync_core::pruned_map::PrunedMap;
use sha2::{Digest as _, Sha256};

/// How long a sealed token, or a secret found present, is reused.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(300);

/// The lifecycle states in which a secret counts as present: OCI moves `CREATING` and
/// `UPDATING` to `ACTIVE` by itself.
const PRESENT_STATES: [&str; 3] = ["ACTIVE", "CREATING", "UPDATING"];

/// What [`Sealer::seal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealOutcome {
    /// The same token was sealed for that name within the TTL: no call.
    Cached,
    /// Encrypt was called.
    Encrypted,
}

/// Seals callers' tokens with the vault's master key.
#[derive(Debug)]
pub(crate) struct Sealer {
    crypto: CryptoClient,
    key: String,
    /// Per scoped name: SHA-256 of the token last sealed, its ciphertext, and when.
    cache: Mutex<PrunedMap<([u8; 32], SealedToken, Instant)>>,
}

impl Sealer {
    pub fn new(crypto: CryptoClient, key: String) -> Self {
        Self {
            crypto,
            key,
            cache: Mutex::new(PrunedMap::default()),
        }
    }

    /// `token` sealed for the scoped secret `name`.
    pub async fn seal(
        &self,
        name: &str,
        token: &[u8],
    ) -> Result<(SealedToken, SealOutcome), OciError> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let cached = self.cache.lock().ok().and_then(|cache| {
            cache
                .get(name)
                .filter(|(d, _, at)| *d == digest && at.elapsed() < CACHE_TTL)
                .map(|(_, sealed, _)| sealed.clone())
        });
        if let Some(sealed) = cached {
            return Ok((sealed, SealOutcome::Cached));
        }
        let data = self
            .crypto
            .encrypt(&self.key, token, &sealed_context(name))
            .await?;
        let sealed = SealedToken {
            key_id: self.key.clone(),
            ciphertext: data.ciphertext,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                name,
                (digest, sealed.clone(), Instant::now()),
                |(_, _, at)| at.elapsed() < CACHE_TTL,
            );
        }
        Ok((sealed, SealOutcome::Encrypted))
    }
}

/// Whether operator-stored secrets exist, with positive answers cached.
#[derive(Debug)]
pub(crate) struct SecretStore {
    vault: VaultClient,
    vault_id: String,
    compartment: String,
    found: Mutex<PrunedMap<Instant>>,
}

impl SecretStore {
    pub fn new(vault: VaultClient, vault_id: String, compartment: String) -> Self {
        Self {
            vault,
            vault_id,
            compartment,
            found: Mutex::new(PrunedMap::default()),
        }
    }

    /// Whether a secret named `name` is present in our vault and compartment. Only a positive
    /// answer is cached: a secret the operator creates next is seen at once.
    pub async fn present(&self, name: &str) -> Result<bool, OciError> {
        let known = self
            .found
            .lock()
            .is_ok_and(|f| f.get(name).is_some_and(|at| at.elapsed() < CACHE_TTL));
        if known {
            return Ok(true);
        }
        let listed = self
            .vault
            .list_secrets(&self.compartment, Some(&self.vault_id), Some(name))
            .await?;
        let present = listed.iter().any(|s| {
            s.secret_name == name
                && s.vault_id == self.vault_id
                && PRESENT_STATES.contains(&s.lifecycle_state.as_str())
        });
        if present {
            if let Ok(mut found) = self.found.lock() {
                found.insert(name, Instant::now(), |at| at.elapsed() < CACHE_TTL);
            }
        }
        Ok(present)
    }
}
