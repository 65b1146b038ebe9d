//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the FDK outside a handler.
///
/// Handler failures never appear here: they become 502/504 responses (see [`crate::run`]).
/// Only listener, socket and agent-side transport failures are `Error`s.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `FN_LISTENER` is not set.
    #[error("FN_LISTENER is not set; the Fn agent sets it to `unix:/tmp/iofs/lsnr.sock`")]
    MissingListener,
    /// `FN_LISTENER` does not follow the agent's format.
    #[error("FN_LISTENER={value:?} is invalid: {reason}")]
    InvalidListener {
        /// The value found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `FN_FORMAT` names a format other than `http-stream`.
    #[error("FN_FORMAT={0:?} is not supported; only `http-stream` (or empty) is")]
    UnsupportedFormat(String),
    /// Binding, chmod-ing, linking or removing a socket file failed.
    #[error("socket {path}: {source}")]
    Socket {
        /// The file concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the SIGTERM/SIGINT handlers failed.
    #[error("installing the signal handlers failed: {0}")]
    Signal(#[source] std::io::Error),
    /// Connecting to a function's socket failed (agent side).
    #[error("connecting to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP transport error talking to a function (agent side).
    #[error("HTTP transport: {0}")]
    Http(#[from] hyper::Error),
    /// Building a request or response failed (an invalid header value, for example).
    #[error("invalid HTTP message: {0}")]
    InvalidMessage(#[from] http::Error),
    /// Serializing or deserializing JSON failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A body was larger than [`crate::protocol::MAX_BODY_BYTES`].
    #[error("the body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A call to a function did not complete in time (agent side).
    #[error("the call did not complete within {0:?}")]
    TimedOut(std::time::Duration),
    /// Reading a body failed.
    #[error("reading the body failed: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}
