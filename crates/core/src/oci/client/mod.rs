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
//!
//! The pieces live beside it: [`OciError`] and [`TransportError`] (`error`), [`RetryPolicy`] and
//! [`Timeouts`] (`retry`), [`OciRequest`] and [`OciResponse`] (`request`), the request counters
//! (`counters`) and the two HTTP clients (`transport`).

mod counters;
mod error;
mod request;
mod retry;
mod transport;

use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::auth::AuthProvider;

pub use self::counters::{oci_requests_sent, oci_requests_sent_by_resource_principals};
pub use self::error::{error_chain, OciError, TransportError};
pub use self::request::{OciRequest, OciResponse};
pub use self::retry::{RetryPolicy, Timeouts};
use self::transport::Http;

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
            http: Http::network(timeouts)?,
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
                http: Http::unix(path, self.timeouts),
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
            counters::count_request(signer.key_id());
            let outcome = match self.http.exchange(request, headers).await {
                Ok((status, headers, body)) => {
                    request::answer(request.operation, status, headers, body)
                }
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
