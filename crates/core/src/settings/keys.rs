//! [`Keys`]: one function's configuration keys read through a lookup, each typed on the way
//! out (OCIDs, flags, numbers, durations), each failure a [`ConfigError`] naming the key.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ConfigError;
use crate::function_config::{keys_for, Function};

/// The keys `function` reads, through `lookup`. A value is trimmed; a blank one is absent.
pub(super) struct Keys<F> {
    function: Function,
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Keys<F> {
    pub(super) fn new(function: Function, lookup: F) -> Self {
        Self { function, lookup }
    }

    /// The function whose keys these are.
    pub(super) fn function(&self) -> Function {
        self.function
    }

    /// `key`'s value, whichever function reads it (the environment variables too).
    pub(super) fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `key`'s value when this function reads it: a key set for another is ignored.
    pub(super) fn optional(&self, key: &str) -> Option<String> {
        if keys_for(self.function).any(|k| k.name == key) {
            self.get(key)
        } else {
            None
        }
    }

    /// Refuses the first required key of this function that is not set.
    pub(super) fn check_required(&self) -> Result<(), ConfigError> {
        match keys_for(self.function).find(|k| k.required && self.get(k.name).is_none()) {
            Some(key) => Err(ConfigError::missing(key.name)),
            None => Ok(()),
        }
    }

    /// `key`'s value, which must be set.
    pub(super) fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.get(key).ok_or_else(|| ConfigError::missing(key))
    }

    /// `key`'s OCID when this function reads it and it is set.
    pub(super) fn ocid(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.optional(key).map(|v| ocid(key, v)).transpose()
    }

    /// `key`'s OCID, which must be set.
    pub(super) fn required_ocid(&self, key: &str) -> Result<String, ConfigError> {
        ocid(key, self.required(key)?)
    }

    /// A flag, false when absent.
    pub(super) fn flag(&self, key: &str) -> Result<bool, ConfigError> {
        let value = self.optional(key).map(|v| v.to_ascii_lowercase());
        match value.as_deref() {
            None | Some("false") | Some("0") | Some("no") => Ok(false),
            Some("true") | Some("1") | Some("yes") => Ok(true),
            Some(_) => Err(ConfigError::NotAFlag {
                key: key.to_owned(),
            }),
        }
    }

    /// A whole number in `range`, `default` when absent.
    pub(super) fn number(
        &self,
        key: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        self.whole(key, default, &range)
            .ok_or_else(|| ConfigError::NotANumber {
                key: key.to_owned(),
                min: *range.start(),
                max: *range.end(),
            })
    }

    /// A duration in milliseconds within `range`, `default` when absent.
    pub(super) fn millis(
        &self,
        key: &str,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
        self.whole(key, default, &range)
            .map(Duration::from_millis)
            .ok_or_else(|| not_a_duration(key, "ms", &range))
    }

    /// A duration in seconds within `range`, `default` when absent.
    pub(super) fn seconds(
        &self,
        key: &str,
        default: Duration,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.whole(key, default.as_secs(), &range)
            .map(Duration::from_secs)
            .ok_or_else(|| not_a_duration(key, "s", &range))
    }

    /// `key` as a whole number in `range` (`default` when absent), or `None`.
    fn whole(&self, key: &str, default: u64, range: &RangeInclusive<u64>) -> Option<u64> {
        match self.optional(key) {
            None => Some(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)),
        }
    }
}

fn ocid(key: &str, value: String) -> Result<String, ConfigError> {
    if value.starts_with("ocid1.") {
        Ok(value)
    } else {
        Err(ConfigError::NotAnOcid {
            key: key.to_owned(),
        })
    }
}

fn not_a_duration(key: &str, unit: &'static str, range: &RangeInclusive<u64>) -> ConfigError {
    ConfigError::NotADuration {
        key: key.to_owned(),
        unit,
        min: *range.start(),
        max: *range.end(),
    }
}
