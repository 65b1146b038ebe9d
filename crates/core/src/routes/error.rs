//! [`RouteError`]: why routes could not be loaded, or why a route could not handle a message.
//! Every variant names the route (when one is known) and carries jaq's message; none carries
//! a header value.

use super::program::EvalError;

/// Which of a route's programs (or fields) an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `name`
    Name,
    /// `target`
    Target,
    /// `operation`
    Operation,
    /// `headers`
    Headers,
    /// `vault_secret`
    VaultSecret,
    /// `vault_secret_header`
    VaultSecretHeader,
    /// `filter`
    Filter,
    /// `transform`
    Transform,
    /// `key`
    Key,
    /// `path`
    Path,
    /// `status_callback`
    StatusCallback,
}

impl Field {
    /// The key as written in a route definition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Target => "target",
            Self::Operation => "operation",
            Self::Headers => "headers",
            Self::VaultSecret => "vault_secret",
            Self::VaultSecretHeader => "vault_secret_header",
            Self::Filter => "filter",
            Self::Transform => "transform",
            Self::Key => "key",
            Self::Path => "path",
            Self::StatusCallback => "status_callback",
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why routes could not be loaded, or a route could not handle a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The routes document is not TOML/JSON of the route schema (unknown keys included).
    #[error("routes: {0}")]
    Syntax(String),
    /// Two routes share a name.
    #[error("route {route:?}: defined twice")]
    Duplicate {
        /// The name.
        route: String,
    },
    /// A field breaks a rule (name pattern, target URL, header rules, secret names).
    #[error("route {route:?}: {field}: {rule}")]
    Invalid {
        /// The route's name (as written, even when it is the name that is invalid).
        route: String,
        /// The field.
        field: Field,
        /// The rule it breaks.
        rule: String,
    },
    /// A jq program does not parse or compile.
    #[error("route {route:?}: {field} does not compile: {message}")]
    Compile {
        /// The route.
        route: String,
        /// The program's field.
        field: Field,
        /// jaq's message.
        message: String,
    },
    /// A jq program failed on a message, or broke a bound.
    #[error("route {route:?}: {field} failed: {source}")]
    Eval {
        /// The route.
        route: String,
        /// The program's field.
        field: Field,
        /// jaq's error or the bound broken.
        #[source]
        source: EvalError,
    },
    /// A program's output is not what its field needs (a path escaping the target, an
    /// operation that is not POST/PUT/PATCH/DELETE, a key that is not a string, ...).
    #[error("route {route:?}: {field}: {rule}")]
    Output {
        /// The route.
        route: String,
        /// The program's field.
        field: Field,
        /// What the output should have been.
        rule: String,
    },
    /// The message's data is not JSON.
    #[error("route {route:?}: data is not JSON: {message}")]
    Data {
        /// The route.
        route: String,
        /// The JSON reader's message.
        message: String,
    },
}

impl RouteError {
    /// The route the error is about, when one is known.
    pub fn route(&self) -> Option<&str> {
        match self {
            Self::Syntax(_) => None,
            Self::Duplicate { route }
            | Self::Invalid { route, .. }
            | Self::Compile { route, .. }
            | Self::Eval { route, .. }
            | Self::Output { route, .. }
            | Self::Data { route, .. } => Some(route),
        }
    }

    /// The field the error is about, when one is known.
    pub fn field(&self) -> Option<Field> {
        match self {
            Self::Invalid { field, .. }
            | Self::Compile { field, .. }
            | Self::Eval { field, .. }
            | Self::Output { field, .. } => Some(*field),
            _ => None,
        }
    }
}
