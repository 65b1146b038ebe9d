//! A map by name for caches whose names come from callers (Vault secret names): stale entries
//! are dropped as new names arrive, so memory follows the names in use, not every name ever
//! seen. Process and retry's [`SecretCache`](crate::secret_cache::SecretCache) and populate's
//! token digests keep their entries in one.

use std::collections::HashMap;

/// The least number of names kept before stale ones are looked for.
pub const PRUNE_FLOOR: usize = 1024;

/// When a new name would make the map reach `prune_at`, the entries the caller calls stale are
/// dropped first, and `prune_at` becomes twice what is left (at least [`PRUNE_FLOOR`]): each
/// prune is paid for by as many insertions as it scanned.
#[derive(Debug)]
pub struct PrunedMap<V> {
    map: HashMap<String, V>,
    prune_at: usize,
}

impl<V> Default for PrunedMap<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            prune_at: PRUNE_FLOOR,
        }
    }
}

impl<V> PrunedMap<V> {
    /// The entry of `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.map.get(name)
    }

    /// Names held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no name is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sets the entry of `name`. When `name` is new and the map has reached its bound, the
    /// entries for which `keep` is false are dropped first.
    pub fn insert(&mut self, name: &str, value: V, mut keep: impl FnMut(&V) -> bool) {
        if !self.map.contains_key(name) && self.map.len() + 1 >= self.prune_at {
            self.map.retain(|_, v| keep(v));
            self.prune_at = (2 * self.map.len()).max(PRUNE_FLOOR);
        }
        self.map.insert(name.to_owned(), value);
    }
}
