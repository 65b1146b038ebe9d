//! The HTTP clients under an [`OciClient`](super::OciClient): reqwest over TCP (TLS for https)
//! for the real services, or hyper's pooled client over one Unix socket for the local stack's
//! emulator. Both send the same signed request; only the connection differs.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::{OciError, OciRequest, Timeouts, TransportError};

/// The user agent of OCI calls.
const USER_AGENT: &str = concat!("datasync/", env!("CARGO_PKG_VERSION"));

/// Idle connections are kept this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The HTTP client under an [`OciClient`](super::OciClient). Neither follows redirects: OCI
/// answers none a client should follow.
#[derive(Clone)]
pub(super) enum Http {
    /// TCP, TLS for https: the real services.
    Network(reqwest::Client),
    /// Every endpoint through one Unix socket: the local stack's emulator. hyper's pooled
    /// client directly, without reqwest's layers (URL conversions, the redirect and retry
    /// services): this is the path of every message populate stores.
    Unix {
        /// The pool of connections to the socket.
        client: Arc<PooledClient<UnixConnector, Full<Bytes>>>,
        /// The most a whole exchange may take (reqwest enforces its own for `Network`).
        total: Duration,
    },
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Http::Network(_) => f.write_str("Http::Network"),
            Http::Unix { .. } => f.write_str("Http::Unix"),
        }
    }
}

impl Http {
    /// reqwest over TCP with `timeouts`.
    ///
    /// # Errors
    /// [`OciError::Transport`] if the TLS backend cannot be initialised.
    pub(super) fn network(timeouts: Timeouts) -> Result<Self, OciError> {
        reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .map(Http::Network)
            .map_err(|source| OciError::Transport {
                operation: "build client",
                source: source.into(),
            })
    }

    /// hyper's pooled client, every connection to the Unix socket at `path`.
    pub(super) fn unix(path: &Path, timeouts: Timeouts) -> Self {
        let client = PooledClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(UnixConnector {
                path: Arc::from(path),
                timeout: timeouts.connect,
            });
        Http::Unix {
            client: Arc::new(client),
            total: timeouts.total,
        }
    }

    /// One HTTP exchange: the signed `headers` and the request's method, URL and body out, the
    /// status, headers and whole body back.
    pub(super) async fn exchange(
        &self,
        request: &OciRequest,
        headers: HeaderMap,
    ) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
        match self {
            Http::Network(client) => {
                let response = client
                    .request(request.method.clone(), request.url.clone())
                    .headers(headers)
                    .body(request.body.clone())
                    .send()
                    .await?;
                let (status, headers) = (response.status(), response.headers().clone());
                Ok((status, headers, response.bytes().await?))
            }
            Http::Unix { client, total } => {
                tokio::time::timeout(*total, unix_exchange(client, request, headers))
                    .await
                    .unwrap_or(Err(TransportError::TimedOut(*total)))
            }
        }
    }
}

/// [`Http::exchange`] over the Unix socket, without the total timeout.
async fn unix_exchange(
    client: &PooledClient<UnixConnector, Full<Bytes>>,
    request: &OciRequest,
    headers: HeaderMap,
) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
    // The URL was parsed already; its text is a valid URI (hyper-util uses only the path and
    // query on the wire, and the authority for `Host`).
    let uri: http::Uri = request.url.as_str().parse().map_err(TransportError::Uri)?;
    let mut outgoing = http::Request::new(Full::new(request.body.clone()));
    *outgoing.method_mut() = request.method.clone();
    *outgoing.uri_mut() = uri;
    *outgoing.headers_mut() = headers;
    outgoing
        .headers_mut()
        .entry(http::header::USER_AGENT)
        .or_insert(HeaderValue::from_static(USER_AGENT));
    let response = client
        .request(outgoing)
        .await
        .map_err(TransportError::Socket)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(TransportError::SocketBody)?
        .to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// A connector that opens every connection to one Unix socket, whatever the URI's host.
#[derive(Debug, Clone)]
pub(super) struct UnixConnector {
    path: Arc<Path>,
    timeout: Duration,
}

impl tower::Service<http::Uri> for UnixConnector {
    type Response = TokioIo<tokio::net::UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let (path, timeout) = (Arc::clone(&self.path), self.timeout);
        Box::pin(async move {
            // The error names the socket: the operator's first question.
            match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(&*path)).await {
                Ok(Ok(stream)) => Ok(TokioIo::new(stream)),
                Ok(Err(e)) => Err(std::io::Error::new(
                    e.kind(),
                    format!("connecting to {}: {e}", path.display()),
                )),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {} timed out", path.display()),
                )),
            }
        })
    }
}
