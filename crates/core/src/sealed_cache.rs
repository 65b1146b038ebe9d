//! The tokens messages carry sealed ([`SealedToken`]), decrypted with Key Management and cached
//! by ciphertext.
//!
//! - One Decrypt per distinct ciphertext per TTL (5 minutes by default), however many messages
//!   carry it: concurrent lookups wait for a single Decrypt (single-flight), as in
//!   [`SecretCache`](crate::secret_cache::SecretCache).
//! - The cache key is SHA-256 of the key, the scoped name and the ciphertext; the token is a
//!   [`HeaderValue`] marked sensitive. `Debug` prints the TTL and how many entries are held.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use sha2::{Digest as _, Sha256};

use crate::message::{sealed_context, SealedToken};
use crate::oci::crypto::CryptoClient;
use crate::pruned_map::PrunedMap;
use crate::secret_cache::{slot_of, Entry, SecretError, Slot};

/// The cache. Cheap to clone (clones share the entries).
#[derive(Clone)]
pub struct SealedCache {
    crypto: CryptoClient,
    ttl: Duration,
    slots: Arc<Mutex<PrunedMap<Slot>>>,
}

impl std::fmt::Debug for SealedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.slots.lock().map_or(0, |s| s.len());
        f.debug_struct("SealedCache")
            .field("ttl", &self.ttl)
            .field("entries", &entries)
            .finish()
    }
}

/// The cache key of `sealed` opened for `scoped_name`.
fn digest(scoped_name: &str, sealed: &SealedToken) -> String {
    let mut h = Sha256::new();
    for part in [&sealed.key_id, scoped_name, &sealed.ciphertext] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl SealedCache {
    /// A cache decrypting through `crypto`, keeping each token for `ttl`.
    pub fn new(crypto: CryptoClient, ttl: Duration) -> Self {
        Self {
            crypto,
            ttl,
            slots: Arc::default(),
        }
    }

    /// The token `sealed` holds, sealed for `scoped_name`: cached, or decrypted (once, for all
    /// concurrent callers).
    ///
    /// # Errors
    /// [`SecretError::Crypto`] when Decrypt fails; [`SecretError::NotAHeader`] when the token
    /// is not a header value.
    pub async fn open(
        &self,
        scoped_name: &str,
        sealed: &SealedToken,
    ) -> Result<HeaderValue, SecretError> {
        let key = digest(scoped_name, sealed);
        let slot = match self.slots.lock() {
            Ok(mut slots) => slot_of(&mut slots, &key, self.ttl),
            Err(_) => Arc::default(),
        };
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref() {
            if e.fetched.elapsed() < self.ttl {
                return Ok(e.token.clone());
            }
        }
        let plain = self
            .crypto
            .decrypt(
                &sealed.key_id,
                &sealed.ciphertext,
                &sealed_context(scoped_name),
            )
            .await
            .map_err(SecretError::Crypto)?;
        let mut token =
            HeaderValue::from_bytes(plain.bytes()).map_err(|_| SecretError::NotAHeader)?;
        token.set_sensitive(true);
        *entry = Some(Entry {
            token: token.clone(),
            fetched: Instant::now(),
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_binds_key_name_and_ciphertext() {
        let s = |k: &str, c: &str| SealedToken {
            key_id: k.into(),
            ciphertext: c.into(),
        };
        let a = digest("ds-a-x", &s("k", "c"));
        assert_ne!(a, digest("ds-b-x", &s("k", "c")));
        assert_ne!(a, digest("ds-a-x", &s("k2", "c")));
        assert_ne!(a, digest("ds-a-x", &s("k", "c2")));
        // Lengths are part of the key: moving a boundary changes it.
        assert_ne!(digest("ab", &s("k", "c")), digest("a", &s("k", "bc")));
    }
}
