//! `parked_keys_*`: where the parked keys live (see [`crate::parked`]).

use std::time::Duration;

use crate::function_config as key;
use crate::parked::ParkedLocation;

use super::keys::Keys;
use super::ConfigError;

/// The object holding the parked set, in `parked_keys_bucket`.
pub const PARKED_OBJECT: &str = "parked-keys.json";

/// Where the parked keys are and how long a blocker may block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedSettings {
    /// The bucket, its namespace and the object.
    pub location: ParkedLocation,
    /// A blocker older than this is dropped as gone (`parked_keys_max_age_seconds`).
    pub max_age: Duration,
}

/// The parked-keys settings, `None` without `parked_keys_bucket`.
pub(super) fn settings<F: Fn(&str) -> Option<String>>(
    keys: &Keys<F>,
) -> Result<Option<ParkedSettings>, ConfigError> {
    let Some(bucket) = keys.optional(key::PARKED_KEYS_BUCKET) else {
        return Ok(None);
    };
    let namespace = keys.required(key::PARKED_KEYS_NAMESPACE)?;
    let max_age = keys.seconds(
        key::PARKED_KEYS_MAX_AGE_SECONDS,
        Duration::from_secs(86_400),
        1..=7 * 86_400,
    )?;
    Ok(Some(ParkedSettings {
        location: ParkedLocation {
            namespace,
            bucket,
            object: PARKED_OBJECT.to_owned(),
        },
        max_age,
    }))
}
