//! The transport every service client shares: sign, send, retry, and turn OCI errors into one
//! typed error.
//!
//! One [`OciClient`] holds one connection pool and one auth provider; service clients borrow it
//! through an `Arc`, so no client is built per call. The pool is reqwest's over TCP (TLS for
//! https), or hyper's over a Unix socket when the local stack routes OCI calls to its emulator
//! so ([`OciClient::via_unix_socket`]). Retries are bounded: 429, 500,
//! 502, 503, 504 and connection errors are retried with capped exponential backoff and full
//! jitter (honouring `Retry-After` up to the cap); a 401 makes the auth provider re-read its
//! credentials once (a rotated resource-principal token) and the request is sent again.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use url::Url;

use super::auth::{AuthError, AuthProvider};
use super::models::ErrorBody;
use super::signer::{BodySigning, SignError};

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
    Endpoint(#[from] super::endpoints::EndpointError),
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

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff ceiling; doubled per attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling (and the most `Retry-After` is honoured).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };

    /// The delay before retry number `retry` (1-based): full jitter under a capped exponential
    /// ceiling, or `retry_after` when the service asked for it (capped too). `unit` is a random
    /// number in [0, 1).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_delay);
        }
        let exp = self.base_delay.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        exp.min(self.max_delay).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Timeouts of the HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To establish a connection.
    pub connect: Duration,
    /// For a whole request and response.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(60),
        }
    }
}

/// A request to an OCI service, before signing.
#[derive(Debug, Clone)]
pub struct OciRequest {
    /// The operation's name, for errors and logs.
    pub operation: &'static str,
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: Url,
    /// Extra headers (content-type, opc-meta-*, ...).
    pub headers: HeaderMap,
    /// The body (empty for none).
    pub body: Bytes,
    /// Whether the body headers are signed.
    pub body_signing: BodySigning,
}

impl OciRequest {
    /// A request without a body.
    pub fn new(operation: &'static str, method: Method, url: Url) -> Self {
        Self {
            operation,
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            body_signing: BodySigning::Include,
        }
    }

    /// Sets a JSON body.
    ///
    /// # Errors
    /// [`OciError::Decode`] if `value` cannot be serialised (which does not happen for the
    /// model types).
    pub fn json(mut self, value: &impl serde::Serialize) -> Result<Self, OciError> {
        let body = serde_json::to_vec(value).map_err(|e| OciError::Decode {
            operation: self.operation,
            detail: e.to_string(),
        })?;
        self.body = Bytes::from(body);
        self.headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(self)
    }

    /// Signs only `date (request-target) host`, as the SDKs do for PutMessages and PutObject.
    pub fn exclude_body_from_signature(mut self) -> Self {
        self.body_signing = BodySigning::Exclude;
        self
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct OciResponse {
    /// The operation it answers.
    pub operation: &'static str,
    /// The status (2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl OciResponse {
    /// The `opc-request-id` header.
    pub fn request_id(&self) -> Option<&str> {
        self.header("opc-request-id")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    ///
    /// # Errors
    /// [`OciError::Decode`] when it is not the expected shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, OciError> {
        serde_json::from_slice(&self.body).map_err(|e| OciError::Decode {
            operation: self.operation,
            detail: e.to_string(),
        })
    }
}

/// HTTP requests sent to OCI by every [`OciClient`] of this process (retries included).
static OCI_REQUESTS_SENT: AtomicU64 = AtomicU64::new(0);

/// A metric: the number of HTTP requests (attempts, retries included) every [`OciClient`] of
/// this process has sent to OCI since it started. Process-wide because the functions build
/// their own clients; read it twice and subtract to count the calls of a piece of work (the
/// benchmark reports calls per 1,000 messages this way). Costs one relaxed atomic add per
/// request.
pub fn oci_requests_sent() -> u64 {
    OCI_REQUESTS_SENT.load(Ordering::Relaxed)
}

/// The part of [`oci_requests_sent`] signed with a resource-principal session token (keyId
/// `ST$...`): the calls the functions made, as opposed to those of API-key clients (in the
/// local stack, the Service Connector emulation and the tools).
static OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS: AtomicU64 = AtomicU64::new(0);

/// A metric: the requests of [`oci_requests_sent`] signed by a resource principal (keyId
/// `ST$...`), i.e. made by functions.
pub fn oci_requests_sent_by_resource_principals() -> u64 {
    OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS.load(Ordering::Relaxed)
}

/// The shared transport: one connection pool, one auth provider, one retry policy.
#[derive(Debug, Clone)]
pub struct OciClient {
    http: Http,
    auth: Arc<dyn AuthProvider>,
    retry: RetryPolicy,
    timeouts: Timeouts,
}

impl OciClient {
    /// A client with default timeouts and retries.
    ///
    /// # Errors
    /// [`OciError::Transport`] if the TLS backend cannot be initialised.
    pub fn new(auth: Arc<dyn AuthProvider>) -> Result<Self, OciError> {
        Self::with_settings(auth, Timeouts::default(), RetryPolicy::default())
    }

    /// A client with the given timeouts and retry policy.
    ///
    /// # Errors
    /// [`OciError::Transport`] if the TLS backend cannot be initialised.
    pub fn with_settings(
        auth: Arc<dyn AuthProvider>,
        timeouts: Timeouts,
        retry: RetryPolicy,
    ) -> Result<Self, OciError> {
        Ok(Self {
            http: Http::Network(network_client(timeouts)?),
            auth,
            retry,
            timeouts,
        })
    }

    /// The same client, reaching every endpoint through the Unix socket at `path` instead of
    /// TCP (with `None`, the client unchanged). URLs, the `Host` header and signatures stay the
    /// same: only the connection differs. The local stack's functions and connector pump reach
    /// the emulator so (`DATASYNC_OCI_UNIX_SOCKET`), which spares each call the kernel's
    /// loopback TCP path.
    ///
    /// # Errors
    /// [`OciError::Transport`] if the client cannot be built.
    pub fn via_unix_socket(self, path: Option<&std::path::Path>) -> Result<Self, OciError> {
        match path {
            None => Ok(self),
            Some(path) => Ok(Self {
                http: Http::Unix(Arc::new(unix_client(path, self.timeouts.connect))),
                ..self
            }),
        }
    }

    /// The auth provider.
    pub fn auth(&self) -> &Arc<dyn AuthProvider> {
        &self.auth
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Sends `request`, retrying as the policy says, and returns the first 2xx answer.
    ///
    /// # Errors
    /// [`OciError::Service`] for the final error status, [`OciError::Transport`] when the
    /// service could not be reached, [`OciError::Auth`]/[`OciError::Sign`] before sending.
    pub async fn send(&self, request: &OciRequest) -> Result<OciResponse, OciError> {
        let mut signer = self.auth.signer()?;
        let mut refreshed = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut headers = request.headers.clone();
            signer.sign(
                &request.method,
                &request.url,
                &mut headers,
                &request.body,
                request.body_signing,
                SystemTime::now(),
            )?;
            OCI_REQUESTS_SENT.fetch_add(1, Ordering::Relaxed);
            if signer.key_id().starts_with("ST$") {
                OCI_REQUESTS_SENT_BY_RESOURCE_PRINCIPALS.fetch_add(1, Ordering::Relaxed);
            }
            let outcome = match self.exchange(request, headers).await {
                Ok((status, headers, body)) => answer(request.operation, status, headers, body),
                Err(source) => Err((
                    OciError::Transport {
                        operation: request.operation,
                        source,
                    },
                    None,
                )),
            };
            let (error, retry_after) = match outcome {
                Ok(ok) => return Ok(ok),
                Err((error, retry_after)) => (error, retry_after),
            };
            if error.status() == Some(401) && !refreshed {
                refreshed = true;
                signer = self.auth.refresh()?;
                tracing::debug!(
                    operation = request.operation,
                    "401: credentials re-read, sending again"
                );
                continue;
            }
            if !error.is_retryable() || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            let delay = self
                .retry
                .delay(attempt, retry_after, rand::random::<f64>());
            tracing::debug!(
                operation = request.operation,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One HTTP exchange: the signed `headers` and the request's method, URL and body out, the
    /// status, headers and whole body back.
    async fn exchange(
        &self,
        request: &OciRequest,
        headers: HeaderMap,
    ) -> Result<(StatusCode, HeaderMap, Bytes), TransportError> {
        match &self.http {
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
            Http::Unix(client) => {
                let exchange = async {
                    // The URL was parsed already; its text is a valid URI (hyper-util uses
                    // only the path and query on the wire, and the authority for `Host`).
                    let uri: http::Uri =
                        request.url.as_str().parse().map_err(TransportError::Uri)?;
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
                };
                tokio::time::timeout(self.timeouts.total, exchange)
                    .await
                    .unwrap_or(Err(TransportError::TimedOut(self.timeouts.total)))
            }
        }
    }

    /// Sends `request` and decodes the JSON answer.
    ///
    /// # Errors
    /// As [`send`](Self::send), and [`OciError::Decode`] for an unexpected body.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: &OciRequest,
    ) -> Result<T, OciError> {
        self.send(request).await?.json()
    }
}

/// The user agent of OCI calls.
const USER_AGENT: &str = concat!("datasync/", env!("CARGO_PKG_VERSION"));

/// The HTTP client under an [`OciClient`]. Neither follows redirects: OCI answers none a client
/// should follow.
#[derive(Clone)]
enum Http {
    /// TCP, TLS for https: the real services.
    Network(reqwest::Client),
    /// Every endpoint through one Unix socket: the local stack's emulator. hyper's pooled
    /// client directly, without reqwest's layers (URL conversions, the redirect and retry
    /// services): this is the path of every message populate stores.
    Unix(Arc<PooledClient<UnixConnector, Full<Bytes>>>),
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Http::Network(_) => f.write_str("Http::Network"),
            Http::Unix(_) => f.write_str("Http::Unix"),
        }
    }
}

/// Idle connections are kept this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

fn network_client(timeouts: Timeouts) -> Result<reqwest::Client, OciError> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .pool_idle_timeout(POOL_IDLE)
        .build()
        .map_err(|source| OciError::Transport {
            operation: "build client",
            source: source.into(),
        })
}

fn unix_client(path: &Path, connect_timeout: Duration) -> PooledClient<UnixConnector, Full<Bytes>> {
    PooledClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(UnixConnector {
            path: Arc::from(path),
            timeout: connect_timeout,
        })
}

/// A connector that opens every connection to one Unix socket, whatever the URI's host.
#[derive(Debug, Clone)]
struct UnixConnector {
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

type Failed = (OciError, Option<Duration>);

/// A 2xx answer, or the service error it carries and the `Retry-After` it asked for.
fn answer(
    operation: &'static str,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<OciResponse, Failed> {
    if status.is_success() {
        return Ok(OciResponse {
            operation,
            status,
            headers,
            body,
        });
    }
    let retry_after = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let (code, message): (String, String) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => (e.code, e.message),
        Err(_) => (
            status
                .canonical_reason()
                .unwrap_or("Error")
                .replace(' ', ""),
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        ),
    };
    let error = OciError::Service {
        operation,
        status: status.as_u16(),
        code,
        message,
        opc_request_id: headers
            .get("opc-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    Err((error, retry_after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(
            p.delay(1, None, 0.999_999),
            Duration::from_millis(100).mul_f64(0.999_999)
        );
        assert_eq!(p.delay(3, None, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(30, None, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(2, None, 0.0), Duration::ZERO);
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(1)), 0.0),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60)), 0.0),
            Duration::from_secs(2)
        );
    }

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
