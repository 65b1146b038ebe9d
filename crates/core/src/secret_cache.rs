//! The target tokens read from Vault, cached per secret name.
//!
//! - One GetSecretBundleByName per name per TTL (5 minutes by default), however many messages
//!   of a batch use it: concurrent lookups of one name wait for a single fetch (single-flight).
//! - [`SecretCache::refresh`] fetches again after a 401/403, once per stale value: when several
//!   calls fail with the same old token, only the first fetches, the others get its result.
//! - Tokens are [`HeaderValue`]s marked sensitive; `Debug` prints the vault, the TTL and how many
//!   names are held, never a name or a value.
//! - Names whose token has expired and that no call is using are dropped as new names arrive
//!   ([`PrunedMap`]), so memory follows the names used within one TTL, not every name ever seen.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::oci::client::OciError;
use crate::oci::secrets::SecretsClient;
use crate::pruned_map::PrunedMap;

/// How long a token is used before it is read again.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Vault could not be read, or the secret does not exist.
    #[error("reading the secret failed: {0}")]
    Oci(#[from] OciError),
    /// The message's sealed token could not be decrypted (Key Management).
    #[error("decrypting the sealed token failed: {0}")]
    Crypto(#[source] OciError),
    /// The message carries a sealed token but no crypto endpoint is configured
    /// (`vault_crypto_endpoint`).
    #[error("the message carries a sealed token and no vault_crypto_endpoint is configured")]
    NoCrypto,
    /// The secret's content is not a valid header value (not text, or holds control
    /// characters). The content is never shown.
    #[error("the secret's content is not a valid Authorization header value")]
    NotAHeader,
}

impl SecretError {
    /// Whether trying again later may succeed (Vault throttled or unavailable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, SecretError::Oci(e) | SecretError::Crypto(e) if e.is_retryable())
    }

    /// The status when Vault or Key Management refused (401, 403, or 404
    /// `NotAuthorizedOrNotFound`): a policy missing or still propagating, or a secret not yet
    /// `ACTIVE`, which time may mend.
    pub fn denied_status(&self) -> Option<u16> {
        match self {
            SecretError::Oci(e) | SecretError::Crypto(e) => {
                e.status().filter(|s| matches!(s, 401 | 403 | 404))
            }
            SecretError::NotAHeader | SecretError::NoCrypto => None,
        }
    }

    /// The IAM statement that lets the functions do what failed.
    pub fn policy_to_check(&self) -> &'static str {
        match self {
            SecretError::Crypto(_) => {
                "Allow dynamic-group <functions> to use keys in compartment <vault compartment> where target.key.id = '<vault_key_ocid>'"
            }
            _ => "Allow dynamic-group <functions> to read secret-bundles in compartment <vault compartment>",
        }
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) token: HeaderValue,
    pub(crate) fetched: Instant,
}

pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Entry>>>;

/// The slot of `name`, made when absent. A new name may first drop the names with no live token
/// and no call holding their slot: a dropped name costs one Vault read if it comes back, which
/// its expired token costs anyway.
pub(crate) fn slot_of(slots: &mut PrunedMap<Slot>, name: &str, ttl: Duration) -> Slot {
    if let Some(slot) = slots.get(name) {
        return Arc::clone(slot);
    }
    let slot = Slot::default();
    slots.insert(name, Arc::clone(&slot), |slot| {
        // Held elsewhere: a call is fetching or using it. Locked: the same.
        Arc::strong_count(slot) > 1
            || slot.try_lock().map_or(true, |entry| {
                entry.as_ref().is_some_and(|e| e.fetched.elapsed() < ttl)
            })
    });
    slot
}

/// The cache. Cheap to clone (clones share the entries).
#[derive(Clone)]
pub struct SecretCache {
    secrets: SecretsClient,
    vault: String,
    ttl: Duration,
    slots: Arc<Mutex<PrunedMap<Slot>>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.slots.lock().map_or(0, |s| s.len());
        f.debug_struct("SecretCache")
            .field("vault", &self.vault)
            .field("ttl", &self.ttl)
            .field("names", &names)
            .finish()
    }
}

impl SecretCache {
    /// A cache reading secrets of `vault` through `secrets`, keeping each for `ttl`.
    pub fn new(secrets: SecretsClient, vault: impl Into<String>, ttl: Duration) -> Self {
        Self {
            secrets,
            vault: vault.into(),
            ttl,
            slots: Arc::default(),
        }
    }

    fn slot(&self, name: &str) -> Slot {
        match self.slots.lock() {
            Ok(mut slots) => slot_of(&mut slots, name, self.ttl),
            // A poisoned map only means another task panicked while inserting: use a fresh
            // slot (no caching) rather than failing the delivery.
            Err(_) => Arc::default(),
        }
    }

    /// The token of secret `name`: cached, or fetched (once, for all concurrent callers).
    ///
    /// # Errors
    /// [`SecretError`] when Vault cannot be read or the content is not a header value.
    pub async fn get(&self, name: &str) -> Result<HeaderValue, SecretError> {
        let slot = self.slot(name);
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref() {
            if e.fetched.elapsed() < self.ttl {
                return Ok(e.token.clone());
            }
        }
        let token = self.fetch(name).await?;
        *entry = Some(Entry {
            token: token.clone(),
            fetched: Instant::now(),
        });
        Ok(token)
    }

    /// After `stale` was refused (401/403): fetches the token again, unless another caller
    /// already replaced `stale`, in which case that newer token is returned.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn refresh(
        &self,
        name: &str,
        stale: &HeaderValue,
    ) -> Result<HeaderValue, SecretError> {
        let slot = self.slot(name);
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref() {
            if e.token != *stale {
                return Ok(e.token.clone());
            }
        }
        let token = self.fetch(name).await?;
        *entry = Some(Entry {
            token: token.clone(),
            fetched: Instant::now(),
        });
        Ok(token)
    }

    async fn fetch(&self, name: &str) -> Result<HeaderValue, SecretError> {
        let value = self
            .secrets
            .get_secret_bundle_by_name(name, &self.vault)
            .await?;
        let mut token =
            HeaderValue::from_bytes(value.content()).map_err(|_| SecretError::NotAHeader)?;
        token.set_sensitive(true);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::pruned_map::PRUNE_FLOOR;

    fn fill(slot: &Slot, fetched: Instant) {
        let mut entry = slot.try_lock().expect("unlocked");
        *entry = Some(Entry {
            token: HeaderValue::from_static("Bearer t"),
            fetched,
        });
    }

    #[test]
    fn names_seen_once_do_not_accumulate() {
        let mut slots = PrunedMap::default();
        let ttl = Duration::from_secs(300);
        for i in 0..100_000 {
            // Looked up, never filled (the fetch failed), and let go.
            drop(slot_of(&mut slots, &format!("secret-{i}"), ttl));
        }
        assert!(slots.len() < PRUNE_FLOOR, "{} names kept", slots.len());
    }

    #[test]
    fn live_tokens_and_slots_in_use_are_kept_and_expired_ones_dropped() {
        let mut slots = PrunedMap::default();
        let ttl = Duration::from_secs(60);
        let held = slot_of(&mut slots, "held", ttl);
        fill(
            &slot_of(&mut slots, "expired", ttl),
            Instant::now().checked_sub(2 * ttl).unwrap(),
        );
        fill(&slot_of(&mut slots, "live", ttl), Instant::now());
        let live = Arc::as_ptr(slots.get("live").unwrap());
        for i in 0..PRUNE_FLOOR {
            drop(slot_of(&mut slots, &format!("secret-{i}"), ttl));
        }
        assert!(slots.get("held").is_some());
        assert!(slots.get("live").is_some());
        assert!(slots.get("expired").is_none());
        // The same slot, not a new one: its token is not fetched again.
        assert_eq!(Arc::as_ptr(&slot_of(&mut slots, "live", ttl)), live);
        assert!(Arc::ptr_eq(&slot_of(&mut slots, "held", ttl), &held));
    }
}
