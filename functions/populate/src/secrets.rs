//! Keeping a caller's target token in Vault under its scoped name.
//!
//! - Absent (no ACTIVE secret of that name): CreateSecret, content base64 of the exact token
//!   bytes, with the vault's key.
//! - Present: the CURRENT content is compared with the token; UpdateSecret (a new version)
//!   only when it changed.
//! - A 409 on create (another instance created it meanwhile): read again and update.
//! - A process-local cache of SHA-256(token) per secret name, for a short time, saves the
//!   Vault calls when a caller sends the same token again and again. Expired names are dropped
//!   as new ones arrive ([`Digests`]), so it holds the names used within one TTL, not every
//!   name ever seen.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use datasync_core::oci::client::OciError;
use datasync_core::oci::models::{CreateSecretDetails, Secret, SecretContent, UpdateSecretDetails};
use datasync_core::oci::secrets::SecretsClient;
use datasync_core::oci::vault::VaultClient;
use datasync_core::pruned_map::PrunedMap;
use sha2::{Digest as _, Sha256};

/// How long a cached "this token is current" is trusted. Another instance may store a newer
/// token meanwhile; after this long, the next call checks Vault again.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(300);

/// SHA-256 of the token last known current, and when, per secret name; a new name may first
/// drop the expired ones ([`PrunedMap`]).
#[derive(Debug)]
struct Digests {
    map: PrunedMap<([u8; 32], Instant)>,
    ttl: Duration,
}

impl Digests {
    fn new(ttl: Duration) -> Self {
        Self {
            map: PrunedMap::default(),
            ttl,
        }
    }

    fn is_current(&self, name: &str, digest: &[u8; 32]) -> bool {
        self.map
            .get(name)
            .is_some_and(|(d, at)| d == digest && at.elapsed() < self.ttl)
    }

    fn insert(&mut self, name: &str, digest: [u8; 32]) {
        let ttl = self.ttl;
        self.map
            .insert(name, (digest, Instant::now()), |(_, at)| at.elapsed() < ttl);
    }
}

/// What [`SecretStore::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretWrite {
    /// The token was known to be current (cache): no Vault call.
    Cached,
    /// The secret held the token already.
    Unchanged,
    /// The secret was created.
    Created,
    /// A new version was written.
    Updated,
}

/// Why the token could not be stored.
#[derive(Debug)]
pub(crate) enum SecretError {
    /// A Vault or Secrets call failed.
    Oci(OciError),
    /// A secret of that name exists but is not ACTIVE.
    NotActive,
}

impl From<OciError> for SecretError {
    fn from(e: OciError) -> Self {
        Self::Oci(e)
    }
}

#[derive(Debug)]
pub(crate) struct SecretStore {
    vault: VaultClient,
    secrets: SecretsClient,
    vault_id: String,
    compartment: String,
    key: String,
    cache: Mutex<Digests>,
}

impl SecretStore {
    pub fn new(
        vault: VaultClient,
        secrets: SecretsClient,
        vault_id: String,
        compartment: String,
        key: String,
    ) -> Self {
        Self {
            vault,
            secrets,
            vault_id,
            compartment,
            key,
            cache: Mutex::new(Digests::new(CACHE_TTL)),
        }
    }

    /// Makes `token` the CURRENT content of secret `name`.
    pub async fn ensure(&self, name: &str, token: &[u8]) -> Result<SecretWrite, SecretError> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        if self.cached(name, &digest) {
            return Ok(SecretWrite::Cached);
        }
        let outcome = match self.find_active(name).await? {
            Some(secret) => self.refresh(&secret, name, token).await?,
            None => match self.create(name, token).await {
                Ok(_) => SecretWrite::Created,
                Err(e) if e.status() == Some(409) => match self.find_active(name).await? {
                    Some(secret) => self.refresh(&secret, name, token).await?,
                    None => return Err(SecretError::NotActive),
                },
                Err(e) => return Err(e.into()),
            },
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name, digest);
        }
        Ok(outcome)
    }

    fn cached(&self, name: &str, digest: &[u8; 32]) -> bool {
        self.cache
            .lock()
            .is_ok_and(|cache| cache.is_current(name, digest))
    }

    /// The ACTIVE secret of that exact name in our vault and compartment. The sample took any
    /// secret ListSecrets returned, whatever its lifecycle state.
    async fn find_active(&self, name: &str) -> Result<Option<Secret>, OciError> {
        let found = self
            .vault
            .list_secrets(&self.compartment, Some(&self.vault_id), Some(name))
            .await?;
        Ok(found.into_iter().find(|s| {
            s.secret_name == name && s.vault_id == self.vault_id && s.lifecycle_state == "ACTIVE"
        }))
    }

    async fn create(&self, name: &str, token: &[u8]) -> Result<Secret, OciError> {
        let details = CreateSecretDetails {
            compartment_id: self.compartment.clone(),
            vault_id: self.vault_id.clone(),
            key_id: self.key.clone(),
            secret_name: name.to_owned(),
            description: Some("datasync: a caller's target Authorization token".to_owned()),
            secret_content: SecretContent::base64(token),
            metadata: None,
        };
        self.vault.create_secret(&details).await
    }

    async fn refresh(
        &self,
        secret: &Secret,
        name: &str,
        token: &[u8],
    ) -> Result<SecretWrite, OciError> {
        match self
            .secrets
            .get_secret_bundle_by_name(name, &self.vault_id)
            .await
        {
            Ok(current) if current.content() == token => return Ok(SecretWrite::Unchanged),
            Ok(_) => {}
            // No readable CURRENT version: write one.
            Err(e) if e.status() == Some(404) => {}
            Err(OciError::Decode { .. }) => {}
            Err(e) => return Err(e),
        }
        let details = UpdateSecretDetails {
            secret_content: Some(SecretContent::base64(token)),
            description: None,
            metadata: None,
        };
        self.vault.update_secret(&secret.id, &details).await?;
        Ok(SecretWrite::Updated)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use datasync_core::pruned_map::PRUNE_FLOOR;

    #[test]
    fn a_digest_is_current_for_its_name_and_token_until_it_expires() {
        let mut digests = Digests::new(Duration::from_secs(60));
        digests.insert("a", [1; 32]);
        assert!(digests.is_current("a", &[1; 32]));
        assert!(!digests.is_current("a", &[2; 32]), "another token");
        assert!(!digests.is_current("b", &[1; 32]), "another name");
        let mut expired = Digests::new(Duration::ZERO);
        expired.insert("a", [1; 32]);
        assert!(!expired.is_current("a", &[1; 32]), "expired");
    }

    #[test]
    fn expired_names_are_dropped_as_new_ones_arrive_and_live_ones_kept() {
        let ttl = Duration::from_secs(60);
        let long_ago = Instant::now().checked_sub(2 * ttl).unwrap();
        let mut digests = Digests::new(ttl);
        for i in 0..PRUNE_FLOOR / 2 {
            digests
                .map
                .insert(&format!("old-{i}"), ([0; 32], long_ago), |_| true);
        }
        digests.insert("live", [1; 32]);
        for i in 0..10 * PRUNE_FLOOR {
            digests.insert(&format!("new-{i}"), [0; 32]);
        }
        assert!(digests.is_current("live", &[1; 32]));
        assert!((0..PRUNE_FLOOR / 2).all(|i| digests.map.get(&format!("old-{i}")).is_none()));
        // Nothing expired among the new names: all kept, none lost.
        assert_eq!(digests.map.len(), 10 * PRUNE_FLOOR + 1);
    }
}
