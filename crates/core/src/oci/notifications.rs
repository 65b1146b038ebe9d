//! Notifications (API 20181201): PublishMessage (contracts/oci-platform.md section G).
//!
//! Messages are sent with `messageType: RAW_TEXT` (the service's default, stated explicitly):
//! the body is delivered as written to every subscription protocol. `JSON` would instead
//! require a body of per-protocol variants with a `default` entry, which datasync has no use
//! for.

use http::{HeaderValue, Method};
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{Endpoints, Service};
use super::models::{MessageDetails, PublishResult};
use super::service_url;

const API: &str = "20181201";

/// The Notifications client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NotificationsClient {
    client: OciClient,
    base: Url,
}

impl NotificationsClient {
    /// A client for the Notifications endpoint of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the endpoint is not configured.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        Ok(Self {
            client,
            base: endpoints.require(Service::Notifications)?,
        })
    }

    /// PublishMessage: `POST /20181201/topics/{topicId}/messages` with `messageType: RAW_TEXT`.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn publish_message(
        &self,
        topic_id: &str,
        message: &MessageDetails,
    ) -> Result<PublishResult, OciError> {
        let url = service_url(&self.base, &[API, "topics", topic_id, "messages"], &[])?;
        let mut request = OciRequest::new("PublishMessage", Method::POST, url).json(message)?;
        request
            .headers
            .insert("messagetype", HeaderValue::from_static("RAW_TEXT"));
        self.client.send_json(&request).await
    }
}
