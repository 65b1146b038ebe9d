//! A minimal signed HTTP client for the emulator (or OCI): signs each request with
//! [`datasync_core::oci::signer::Signer`] exactly as the service clients do. For tests, the
//! benchmark and tools; the functions use the typed clients in `datasync-core`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use datasync_core::oci::key::PrivateKey;
use datasync_core::oci::signer::{BodySigning, SignError, Signer};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Why a call failed before an HTTP answer arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is malformed.
    #[error("bad URL: {0}")]
    Url(#[from] url::ParseError),
    /// The request could not be signed.
    #[error("signing: {0}")]
    Sign(#[from] SignError),
    /// The transport failed.
    #[error("transport: {0}")]
    Http(#[from] reqwest::Error),
    /// The key file could not be read.
    #[error("reading the key file {}: {source}", path.display())]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key file does not hold a usable private key.
    #[error("key: {0}")]
    Key(#[from] datasync_core::oci::key::KeyError),
    /// The request body could not be encoded as JSON.
    #[error("encoding the body: {0}")]
    Encode(#[from] serde_json::Error),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body parsed as JSON.
    ///
    /// # Errors
    /// When the body is not that JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client that signs every request.
#[derive(Debug, Clone)]
pub struct SignedClient {
    http: reqwest::Client,
    base: url::Url,
    signer: Arc<Signer>,
}

impl SignedClient {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) signing with `signer`.
    ///
    /// # Errors
    /// When `base` is not a URL or the HTTP client cannot be built.
    pub fn new(base: &str, signer: Signer) -> Result<Self, ClientError> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()?,
            base: url::Url::parse(base)?,
            signer: Arc::new(signer),
        })
    }

    /// A client signing with the emulator's `LOCAL` profile.
    ///
    /// # Errors
    /// When the profile's key cannot be read.
    pub fn for_profile(base: &str, profile: &crate::LocalProfile) -> Result<Self, ClientError> {
        let pem =
            std::fs::read_to_string(&profile.key_file).map_err(|source| ClientError::KeyFile {
                path: profile.key_file.clone(),
                source,
            })?;
        let key = PrivateKey::from_pem(&pem, None)?;
        Self::new(base, Signer::new(profile.key_id(), key))
    }

    /// Sends `method path_and_query` with `body`, signed (`body_signing` as the operation
    /// requires), with extra `headers` set before signing.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP answer arrives.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        body_signing: BodySigning,
        headers: HeaderMap,
    ) -> Result<Answer, ClientError> {
        let url = self.base.join(path_and_query)?;
        let mut headers = headers;
        if !body.is_empty() && !headers.contains_key(http::header::CONTENT_TYPE) {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        self.signer.sign(
            &method,
            &url,
            &mut headers,
            &body,
            body_signing,
            SystemTime::now(),
        )?;
        let response = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// GET.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP answer arrives.
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, ClientError> {
        self.send(
            Method::GET,
            path_and_query,
            Vec::new(),
            BodySigning::Include,
            HeaderMap::new(),
        )
        .await
    }

    /// A request with a JSON body, body signed.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP answer arrives.
    pub async fn json<T: serde::Serialize>(
        &self,
        method: Method,
        path_and_query: &str,
        body: &T,
    ) -> Result<Answer, ClientError> {
        let bytes = serde_json::to_vec(body)?;
        self.send(
            method,
            path_and_query,
            bytes,
            BodySigning::Include,
            HeaderMap::new(),
        )
        .await
    }
}

impl SignedClient {
    /// PutMessages with raw keys and values (base64-encoded here), signed without the body as
    /// the SDKs sign it.
    ///
    /// # Errors
    /// [`ClientError`] when no HTTP answer arrives.
    pub async fn put_messages(
        &self,
        stream_id: &str,
        messages: &[(Option<&[u8]>, &[u8])],
    ) -> Result<Answer, ClientError> {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let details = datasync_core::oci::models::PutMessagesDetails {
            messages: messages
                .iter()
                .map(
                    |(k, v)| datasync_core::oci::models::PutMessagesDetailsEntry {
                        key: k.map(|k| engine.encode(k)),
                        value: engine.encode(v),
                    },
                )
                .collect(),
        };
        let body = serde_json::to_vec(&details)?;
        self.send(
            Method::POST,
            &format!("/20180418/streams/{stream_id}/messages"),
            body,
            BodySigning::Exclude,
            HeaderMap::new(),
        )
        .await
    }
}

/// The decoded value of a message GetMessages returned; `None` when it is not valid base64.
pub fn message_value(message: &datasync_core::oci::models::Message) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(&message.value)
        .ok()
}
