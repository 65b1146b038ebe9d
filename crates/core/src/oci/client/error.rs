//! The one error every OCI call returns, and whether it is worth another attempt.

use std::time::Duration;

use crate::oci::auth::AuthError;
use crate::oci::endpoints::EndpointError;
use crate::oci::signer::SignError;

/// An OCI call that failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The service answered with an error status.
    #[error("{operation}: {status} {code}: {message} (opc-request-id {})", opc_request_id.as_deref().unwrap_or("none"))]
    Service {
        /// The operation, e.g. `PutMessages`.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The OCI error code, e.g. `NotAuthorizedOrNotFound`.
        code: String,
        /// The service's message.
        message: String,
        /// The request id, for Oracle support and the service's logs.
        opc_request_id: Option<String>,
    },
    /// The request could not be sent or its answer not read.
    #[error("{operation}: {source}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// Why.
        #[source]
        source: TransportError,
    },
    /// The credentials could not be loaded or renewed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request could not be signed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The service's answer is not what the API documents.
    #[error("{operation}: unexpected response body: {detail}")]
    Decode {
        /// The operation.
        operation: &'static str,
        /// Why.
        detail: String,
    },
    /// A request was refused before sending because it breaks a service limit.
    #[error("{operation}: {detail}")]
    Limit {
        /// The operation.
        operation: &'static str,
        /// Which limit.
        detail: String,
    },
    /// The endpoint is not configured or not valid.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

impl OciError {
    /// The HTTP status of a service error.
    pub fn status(&self) -> Option<u16> {
        match self {
            OciError::Service { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call may succeed if made again later (429, 5xx, connection errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            OciError::Service { status, .. } => retryable_status(*status),
            OciError::Transport { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

/// Why a request could not be sent or its answer not read.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Over TCP (and TLS): reqwest's error.
    #[error(transparent)]
    Network(#[from] reqwest::Error),
    /// Over the Unix socket: connecting or sending failed, or the connection closed before the
    /// answer.
    #[error("over the Unix socket: {}", error_chain(.0))]
    Socket(#[source] hyper_util::client::legacy::Error),
    /// Over the Unix socket: the answer's body could not be read.
    #[error("reading the answer over the Unix socket: {0}")]
    SocketBody(#[source] hyper::Error),
    /// Over the Unix socket: the URL is not a valid HTTP URI.
    #[error("the URL is not a valid HTTP request target: {0}")]
    Uri(#[source] http::uri::InvalidUri),
    /// Over the Unix socket: no whole answer within the total timeout.
    #[error("no answer within {} ms", .0.as_millis())]
    TimedOut(Duration),
}

impl TransportError {
    /// Whether sending again may succeed: the request may not have arrived (connect errors,
    /// timeouts, a connection closed before the answer). A body cut short is not retried, as
    /// before with reqwest.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Network(e) => e.is_connect() || e.is_timeout() || e.is_request(),
            TransportError::Socket(_) | TransportError::TimedOut(_) => true,
            TransportError::SocketBody(_) | TransportError::Uri(_) => false,
        }
    }
}

/// An error and its sources, joined by `: `, for messages that must say why (hyper-util's and
/// reqwest's own texts only name the kind). A source whose text the message already ends with
/// is left out: many errors print their source themselves (`"{what}: {source}"`) and also
/// return it from `source()`, which would otherwise say the same thing twice.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let cause = e.to_string();
        if !text.ends_with(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = e.source();
    }
    text
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        /// Prints its source and returns it too, as `#[error("{what}: {source}")]` does.
        #[error("binding {what}: {source}")]
        Repeats {
            what: &'static str,
            source: std::io::Error,
        },
        /// Prints only what it was doing.
        #[error("reading {0}")]
        Quiet(&'static str, #[source] std::io::Error),
    }

    #[test]
    fn error_chain_names_each_cause_once() {
        let busy = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let repeats = Outer::Repeats {
            what: "the gateway",
            source: busy(),
        };
        assert_eq!(error_chain(&repeats), "binding the gateway: address in use");
        let quiet = Outer::Quiet("the key", busy());
        assert_eq!(error_chain(&quiet), "reading the key: address in use");
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 412, 413, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
