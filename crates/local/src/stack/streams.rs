//! The streams the stack creates, one [`StreamRole`] each, with every name people use for them:
//! the Terraform name suffix (`errors-service-unavailable`, the stream being
//! `<name_prefix>-<suffix>` as `datasync status` prints it), the short name the README and
//! `datasync retry --help` use (`service-unavailable`), and the class in the function
//! configuration key (`serviceUnavailable` of `serviceUnavailable_error_stream_ocid`).
//! [`StreamRole::is_named`] accepts any of them; [`StreamRole::error_stream_named`] finds the
//! error stream a name names.

use datasync_core::function_config as fn_keys;

/// One stream the stack creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRole {
    /// The name suffix, as in `terraform/`: the stream is `<name_prefix>-<suffix>`.
    pub suffix: &'static str,
    /// The short name (README, `datasync retry --stream`).
    pub short: &'static str,
    /// The function configuration key holding its OCID.
    pub config_key: &'static str,
    /// Whether it is an error stream the functions route to (and `datasync retry` replays).
    pub error_stream: bool,
    /// Whether the retry schedule replays it.
    pub scheduled_retry: bool,
    /// Its archive connector and object prefix, as `terraform/connectors.tf` names them.
    pub archive: Option<Archive>,
}

/// A stream's archive connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Archive {
    /// The connector's name.
    pub connector: &'static str,
    /// The object name prefix in the archive bucket.
    pub prefix: &'static str,
}

/// The data stream.
pub const DATA: StreamRole = StreamRole {
    suffix: "data",
    short: "data",
    config_key: fn_keys::DATA_STREAM,
    error_stream: false,
    scheduled_retry: false,
    archive: None,
};

/// The dead-letter stream.
pub const DEAD_LETTER: StreamRole = StreamRole {
    suffix: "dead-letter",
    short: "dead-letter",
    config_key: fn_keys::DEAD_LETTER_STREAM,
    error_stream: true,
    scheduled_retry: false,
    archive: Some(Archive {
        connector: "archive-dead-letter",
        prefix: "dead-letter",
    }),
};

/// The callback stream: callbacks that failed within their invocation, waiting for the retry
/// schedule (`docs/callbacks.md`). Not an error stream: it holds callbacks, not messages.
pub const CALLBACKS: StreamRole = StreamRole {
    suffix: "callbacks",
    short: "callbacks",
    config_key: fn_keys::CALLBACK_STREAM,
    error_stream: false,
    scheduled_retry: true,
    archive: None,
};

/// Every stream, the data stream first.
pub const ROLES: [StreamRole; 7] = [
    DATA,
    StreamRole {
        suffix: "errors-service-unavailable",
        short: "service-unavailable",
        config_key: fn_keys::SERVICE_UNAVAILABLE_STREAM,
        error_stream: true,
        scheduled_retry: true,
        archive: Some(Archive {
            connector: "archive-service-unavailable",
            prefix: "errors/service-unavailable",
        }),
    },
    StreamRole {
        suffix: "errors-internal-server",
        short: "internal-server",
        config_key: fn_keys::INTERNAL_SERVER_STREAM,
        error_stream: true,
        scheduled_retry: true,
        archive: Some(Archive {
            connector: "archive-internal-server",
            prefix: "errors/internal-server",
        }),
    },
    StreamRole {
        suffix: "errors-unrecoverable",
        short: "unrecoverable",
        config_key: fn_keys::UNRECOVERABLE_STREAM,
        error_stream: true,
        scheduled_retry: false,
        archive: Some(Archive {
            connector: "archive-unrecoverable",
            prefix: "errors/unrecoverable",
        }),
    },
    StreamRole {
        suffix: "errors-default",
        short: "default",
        config_key: fn_keys::DEFAULT_ERROR_STREAM,
        error_stream: true,
        scheduled_retry: true,
        archive: Some(Archive {
            connector: "archive-default",
            prefix: "errors/default",
        }),
    },
    DEAD_LETTER,
    CALLBACKS,
];

/// `name` lower-cased without `-`, `_` and spaces: `serviceUnavailable`, `service-unavailable`
/// and `service_unavailable` compare equal.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

impl StreamRole {
    /// The stream's name under `prefix` (`datasync-errors-default`).
    pub fn stream_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.suffix)
    }

    /// The class in its configuration key: `serviceUnavailable` of
    /// `serviceUnavailable_error_stream_ocid`, `dead_letter` of `dead_letter_stream_ocid`.
    pub fn config_class(&self) -> &'static str {
        let key = self.config_key;
        key.strip_suffix("_error_stream_ocid")
            .or_else(|| key.strip_suffix("_stream_ocid"))
            .unwrap_or(key)
    }

    /// Whether `name` is one of this stream's names: short, suffix or configuration class, in
    /// any case and with `-`, `_` or spaces between words.
    pub fn is_named(&self, name: &str) -> bool {
        let name = folded(name);
        [self.short, self.suffix, self.config_class()]
            .iter()
            .any(|n| folded(n) == name)
    }

    /// The error stream `name` names (see [`StreamRole::is_named`]).
    pub fn error_stream_named(name: &str) -> Option<&'static StreamRole> {
        ROLES.iter().find(|r| r.error_stream && r.is_named(name))
    }

    /// The names of the error streams as people write them, for messages:
    /// `service-unavailable (serviceUnavailable, errors-service-unavailable), ...`.
    pub fn error_stream_names() -> String {
        ROLES
            .iter()
            .filter(|r| r.error_stream)
            .map(|r| {
                // The other spellings, unless they differ from the short name only in case
                // or `_` for `-`.
                let plain = |n: &str| n.to_ascii_lowercase().replace('_', "-");
                let mut also: Vec<&str> = Vec::new();
                for n in [r.config_class(), r.suffix] {
                    if plain(n) != plain(r.short) && !also.contains(&n) {
                        also.push(n);
                    }
                }
                if also.is_empty() {
                    r.short.to_owned()
                } else {
                    format!("{} ({})", r.short, also.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_form_people_see_names_its_stream() {
        let cases = [
            ("service-unavailable", "errors-service-unavailable"),
            ("serviceUnavailable", "errors-service-unavailable"),
            ("errors-service-unavailable", "errors-service-unavailable"),
            ("SERVICE_UNAVAILABLE", "errors-service-unavailable"),
            ("internal-server", "errors-internal-server"),
            ("internalserver", "errors-internal-server"),
            ("errors-internal-server", "errors-internal-server"),
            ("default", "errors-default"),
            ("errors-default", "errors-default"),
            ("unrecoverable", "errors-unrecoverable"),
            ("errors-unrecoverable", "errors-unrecoverable"),
            ("dead-letter", "dead-letter"),
            ("dead_letter", "dead-letter"),
        ];
        for (name, suffix) in cases {
            let role = StreamRole::error_stream_named(name);
            assert_eq!(role.map(|r| r.suffix), Some(suffix), "{name}");
        }
        for name in ["data", "errors", "service", "nope", ""] {
            assert_eq!(StreamRole::error_stream_named(name), None, "{name}");
        }
    }

    #[test]
    fn the_names_listed_are_the_names_accepted() {
        let listed = StreamRole::error_stream_names();
        assert_eq!(
            listed,
            "service-unavailable (serviceUnavailable, errors-service-unavailable), \
             internal-server (internalserver, errors-internal-server), \
             unrecoverable (errors-unrecoverable), default (errors-default), dead-letter"
        );
        for name in listed.split([',', '(', ')', ' ']).filter(|n| !n.is_empty()) {
            assert!(StreamRole::error_stream_named(name).is_some(), "{name}");
        }
    }

    #[test]
    fn configuration_classes_come_from_the_keys() {
        let classes: Vec<&str> = ROLES.iter().map(StreamRole::config_class).collect();
        assert_eq!(
            classes,
            [
                "data",
                "serviceUnavailable",
                "internalserver",
                "unrecoverable",
                "default",
                "dead_letter",
                "callback"
            ]
        );
    }
}
