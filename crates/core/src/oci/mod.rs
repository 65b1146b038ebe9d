//! The OCI layer: request signing, auth providers, endpoints and typed service clients.
//!
//! Every service client is built from one [`client::OciClient`] (a cheap clone sharing one
//! connection pool, one auth provider and one retry policy) plus the [`endpoints::Endpoints`]:
//!
//! - [`streaming::StreamClient`] for PutMessages (split, limited, partial retries), cursors,
//!   GetMessages, commit, heartbeat and GetStream;
//! - [`secrets::SecretsClient`] for secret bundles by id or by name, content decoded;
//! - [`vault::VaultClient`] for CreateSecret, UpdateSecret and ListSecrets;
//! - [`crypto::CryptoClient`] for Encrypt and Decrypt with the vault's master key;
//! - [`notifications::NotificationsClient`] for PublishMessage;
//! - [`monitoring::MonitoringClient`] for PostMetricData (custom metrics);
//! - [`objectstorage::ObjectStorageClient`] for GetNamespace, PutObject, GetObject and
//!   ListObjects.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use datasync_core::oci::{auth::ResourcePrincipalAuth, client::OciClient};
//! use datasync_core::oci::endpoints::{Endpoints, Region};
//! use datasync_core::oci::streaming::{PutMessage, StreamClient};
//!
//! let auth = Arc::new(ResourcePrincipalAuth::from_env(|k| std::env::var(k).ok())?);
//! let endpoints = Endpoints::for_region(Region::new("us-phoenix-1"));
//! let streams = StreamClient::new(OciClient::new(auth)?, &endpoints)?;
//! let outcomes = streams
//!     .put_messages("ocid1.stream.oc1.phx.x", &[PutMessage::new(None, &b"{}"[..])])
//!     .await?;
//! assert!(outcomes.iter().all(Result::is_ok));
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod crypto;
pub mod endpoints;
pub mod key;
pub mod models;
pub mod monitoring;
pub mod notifications;
pub mod objectstorage;
pub mod secrets;
pub mod signer;
pub mod streaming;
pub mod vault;

use url::Url;

use self::client::OciError;
use self::endpoints::EndpointError;

/// `base` with `segments` appended to its path (each percent-encoded as one segment, so an
/// object name's `/` becomes `%2F`) and `query` pairs appended (form-encoded; `None` values
/// are skipped).
pub(crate) fn service_url(
    base: &Url,
    segments: &[&str],
    query: &[(&str, Option<&str>)],
) -> Result<Url, OciError> {
    let mut url = base.clone();
    {
        let mut path = url.path_segments_mut().map_err(|()| {
            OciError::Endpoint(EndpointError::BadUrl {
                url: base.to_string(),
                source: url::ParseError::RelativeUrlWithCannotBeABaseBase,
            })
        })?;
        path.pop_if_empty().extend(segments);
    }
    if query.iter().any(|(_, v)| v.is_some()) {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            if let Some(value) = value {
                pairs.append_pair(name, value);
            }
        }
    }
    Ok(url)
}

/// Parses a base URL the service handed back (a stream's `messagesEndpoint`).
pub(crate) fn parse_base(text: &str) -> Result<Url, OciError> {
    Url::parse(text.trim_end_matches('/')).map_err(|source| {
        OciError::Endpoint(EndpointError::BadUrl {
            url: text.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn segments_and_query_values_are_percent_encoded() {
        let base = Url::parse("http://127.0.0.1:8080").unwrap();
        let url = service_url(
            &base,
            &["n", "ns", "b", "bucket", "o", "dir/a b?#%.json"],
            &[("prefix", Some("a b&c=d+e")), ("start", None)],
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/n/ns/b/bucket/o/dir%2Fa%20b%3F%23%25.json?prefix=a+b%26c%3Dd%2Be"
        );
        let prefixed = Url::parse("http://h/emulator").unwrap();
        let url = service_url(&prefixed, &["20180418", "streams", "s"], &[]).unwrap();
        assert_eq!(url.as_str(), "http://h/emulator/20180418/streams/s");
        assert!(service_url(&Url::parse("mailto:x@y").unwrap(), &["a"], &[]).is_err());
    }
}
