//! OCI's limit on a Functions configuration map, applied to the map `datasync up` gives the
//! functions: all keys and values together at most 4 KB, counted as UTF-8 octets (contracts
//! round2 §F; the limit holds for the application's and each function's map). OCI refuses a
//! larger map when the application is created or updated, so the local stack refuses to start
//! with one, naming the size and the limit, rather than run a configuration OCI would not take.
//!
//! Only the keys a deployment puts in the map count (`function_config::KEYS`, as
//! `terraform/functions.tf` sets them); the variables the runtime adds (`FN_*`, the resource
//! principal, the local emulator's address) are not part of it on OCI either.

use std::collections::BTreeMap;

use datasync_core::function_config::KEYS;

/// The most octets of keys and values a configuration map may hold.
pub const MAX_CONFIG_MAP_BYTES: usize = 4096;

/// A configuration map over [`MAX_CONFIG_MAP_BYTES`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the functions' configuration map holds {size} bytes of keys and values; OCI Functions allows at most {MAX_CONFIG_MAP_BYTES} (largest: {largest}); keep long settings short or move them out of the configuration"
)]
pub struct ConfigMapTooLarge {
    /// Octets of keys and values.
    pub size: usize,
    /// The key with the longest value, to say where to look.
    pub largest: String,
}

/// The octets of the configuration-map keys of `vars`.
pub fn config_map_size(vars: &BTreeMap<String, String>) -> usize {
    map_entries(vars).map(|(k, v)| k.len() + v.len()).sum()
}

fn map_entries(vars: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    vars.iter()
        .filter(|(k, _)| KEYS.iter().any(|key| key.name == k.as_str()))
}

/// Refuses `vars` when its configuration map is over OCI's limit.
pub fn check_config_map(vars: &BTreeMap<String, String>) -> Result<(), ConfigMapTooLarge> {
    let size = config_map_size(vars);
    if size <= MAX_CONFIG_MAP_BYTES {
        return Ok(());
    }
    let largest = map_entries(vars)
        .max_by_key(|(_, v)| v.len())
        .map(|(k, _)| k.clone())
        .unwrap_or_default();
    Err(ConfigMapTooLarge { size, largest })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use datasync_core::function_config as fn_keys;

    use super::*;

    fn map(entries: &[(&str, String)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn a_map_of_exactly_4_kb_is_taken_and_one_octet_more_is_refused() {
        let key = fn_keys::TARGET_ALLOW_LIST;
        let at_limit = map(&[(key, "a".repeat(MAX_CONFIG_MAP_BYTES - key.len()))]);
        assert_eq!(config_map_size(&at_limit), MAX_CONFIG_MAP_BYTES);
        check_config_map(&at_limit).unwrap();
        let over = map(&[(key, "a".repeat(MAX_CONFIG_MAP_BYTES - key.len() + 1))]);
        let e = check_config_map(&over).unwrap_err();
        assert_eq!(
            (e.size, e.largest.as_str()),
            (MAX_CONFIG_MAP_BYTES + 1, key)
        );
        assert!(e.to_string().contains("at most 4096"), "{e}");
    }

    #[test]
    fn octets_count_not_characters_and_runtime_variables_do_not_count() {
        let key = fn_keys::CLASSIFICATION_OVERRIDES;
        // 'é' is two octets: half as many characters reach the limit.
        let value = "é".repeat((MAX_CONFIG_MAP_BYTES - key.len()) / 2 + 1);
        assert!(check_config_map(&map(&[(key, value)])).is_err());
        let runtime = map(&[
            ("FN_FORMAT", "x".repeat(10_000)),
            ("DATASYNC_OCI_ENDPOINT", "x".repeat(10_000)),
        ]);
        assert_eq!(config_map_size(&runtime), 0);
        check_config_map(&runtime).unwrap();
    }
}
