//! Errors: [`ApiError`] is what an HTTP caller sees (OCI's `{"code","message"}` with the right
//! status); [`EmulatorError`] is what opening or serving the emulator can fail with.

use std::path::PathBuf;

use http::StatusCode;

/// An error answered to an API caller, shaped as OCI answers it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The OCI error code, e.g. `InvalidParameter`.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 InvalidParameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    /// 400 MissingParameter.
    pub fn missing(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            format!("the required parameter {name} is missing"),
        )
    }

    /// 400 CannotParseRequest: the body is not the JSON the operation takes.
    pub fn cannot_parse(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "CannotParseRequest", message)
    }

    /// 400 LimitExceeded.
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "LimitExceeded", message)
    }

    /// 401 NotAuthenticated.
    pub fn not_authenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NotAuthenticated", message)
    }

    /// 404 NotAuthorizedOrNotFound.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotAuthorizedOrNotFound",
            format!("{} not found or not authorized", what.into()),
        )
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the method is not allowed on this resource",
        )
    }

    /// 409 with the given code (`IncorrectState`, `NotAuthorizedOrResourceAlreadyExists`, ...).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 412 with the given code (`NoEtagMatch`, `IfNoneMatchFailed`).
    pub fn precondition(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, code, message)
    }

    /// 413 PayloadTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", message)
    }

    /// 429 TooManyRequests: the emulator's write queue is full.
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "too many requests: the write queue is full, back off and retry",
        )
    }

    /// 500 InternalServerError, for storage failures.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }

    /// 503 ServiceUnavailable: the database failed (a write it refused, a commit that failed,
    /// a page it could not read); the request may succeed later and changed nothing.
    pub fn storage(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("the emulator's database failed: {detail}"),
        )
    }

    /// 503 ServiceUnavailable: the emulator is shutting down.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the emulator is shutting down",
        )
    }
}

impl From<KeyError> for EmulatorError {
    fn from(source: KeyError) -> Self {
        Self::Key { path: None, source }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        Self::storage(err)
    }
}

/// Why the emulator could not be opened or served.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A file or directory in the data directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("the emulator database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A key in the data directory (or one being registered) is unusable.
    #[error("a key in the data directory{}: {source}", path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
    Key {
        /// The key's file, when the key came from one.
        path: Option<PathBuf>,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// The database is damaged (`PRAGMA quick_check` failed, or SQLite says it is corrupt).
    #[error(
        "the emulator database {} is damaged ({detail}). Nothing was started: what it holds cannot \
         be trusted. Stop everything using the data directory, move {} and its -wal and -shm \
         files aside (keep them: `sqlite3 <file> .recover` may save what is readable), then start \
         again: a new, empty database is made, and `datasync up --reset-checkpoints` resets the \
         connectors' positions in the old streams.",
        path.display(),
        path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What the check found.
        detail: String,
    },
    /// The data directory holds something inconsistent.
    #[error("the data directory is inconsistent: {0}")]
    Corrupt(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
    /// A request to [`crate::Emulator`]'s in-process API failed.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// What is wrong with a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A new RSA key could not be generated.
    #[error("generating an RSA key: {0}")]
    Generate(#[source] rsa::Error),
    /// A private key could not be encoded as PKCS#8 PEM.
    #[error("encoding a private key: {0}")]
    EncodePrivate(#[source] rsa::pkcs8::Error),
    /// A public key could not be encoded or decoded as SubjectPublicKeyInfo PEM.
    #[error("a public key's PEM: {0}")]
    PublicPem(#[source] rsa::pkcs8::spki::Error),
    /// A private key file could not be read as a key.
    #[error("reading a private key: {0}")]
    PrivatePem(#[source] datasync_core::oci::key::KeyError),
    /// The data key file does not hold the 32 bytes of an AES-256 key.
    #[error("the data key must hold 32 bytes, it holds {0}")]
    DataKeyLength(usize),
}

impl EmulatorError {
    /// A [`EmulatorError::Key`] error for the key in `path`.
    pub(crate) fn key_file(path: &std::path::Path) -> impl FnOnce(KeyError) -> Self + '_ {
        move |source| Self::Key {
            path: Some(path.to_owned()),
            source,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }
}
