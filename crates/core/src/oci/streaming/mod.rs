//! Streaming (API 20180418): PutMessages, cursors, GetMessages, consumer-group commit and
//! heartbeat, and GetStream (contracts/oci-platform.md section D).
//!
//! Data-plane calls go to [`Service::StreamingMessages`] when that endpoint is overridden (the
//! local emulator, tests); otherwise to the stream's own `messagesEndpoint`, read once per
//! stream with GetStream on the control plane and cached for the life of the client.
//!
//! PutMessages enforces the service limits before anything is sent: a message (key + value,
//! counted after base64 decoding, i.e. the raw bytes) may not exceed [`MAX_MESSAGE_BYTES`], and
//! a batch is split into requests of at most [`MAX_REQUEST_BYTES`] each. A request the service
//! answers with HTTP 200 and `failures > 0` has only its failed entries sent again, with the
//! client's backoff, up to its retry policy's attempts.
//!
//! The pieces live beside the client: the message types (`messages`), PutMessages' limits,
//! split, body and partial retries (`put`), and the connector batch encoder (`batch`).

mod batch;
mod messages;
mod put;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::Method;
use url::Url;

use super::client::{OciClient, OciError, OciRequest};
use super::endpoints::{EndpointError, Endpoints, Service};
use super::models::{CreateGroupCursorDetails, Cursor, Message, Stream};
use super::{parse_base, service_url};

pub use self::batch::encode_batch;
pub use self::messages::{
    message_key, message_value, CursorStart, FailedMessage, PutMessage, PutOutcome, StoredMessage,
};

/// The largest message PutMessages accepts: key + value, in bytes after base64 decoding (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The largest PutMessages request: the sum of keys and values after base64 decoding (1 MiB).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// The most messages one GetMessages call may ask for.
pub const MAX_GET_LIMIT: u32 = 10_000;

const API: &str = "20180418";

/// The Streaming client. Cheap to clone: clones share the connection pool and the cache of
/// stream endpoints.
#[derive(Debug, Clone)]
pub struct StreamClient {
    client: OciClient,
    control: Option<Url>,
    messages: Option<Url>,
    endpoints_by_stream: Arc<RwLock<HashMap<String, Url>>>,
}

impl StreamClient {
    /// A client for the control plane and data plane of `endpoints`.
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when neither a data-plane override nor a control plane (a region
    /// or an override) is configured, or an override is not a valid URL.
    pub fn new(client: OciClient, endpoints: &Endpoints) -> Result<Self, OciError> {
        let messages = endpoints.url(Service::StreamingMessages).ok().flatten();
        let control = match endpoints.url(Service::Streaming) {
            Ok(url) => url,
            Err(e) if messages.is_none() => return Err(e.into()),
            Err(_) => None,
        };
        Ok(Self {
            client,
            control,
            messages,
            endpoints_by_stream: Arc::new(RwLock::new(HashMap::new())),
        })
    }

    /// The shared transport.
    pub fn oci_client(&self) -> &OciClient {
        &self.client
    }

    /// GetStream: the stream's control-plane record (its `messagesEndpoint` among others).
    ///
    /// # Errors
    /// [`OciError::Endpoint`] when the control plane is not configured; otherwise as
    /// [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn get_stream(&self, stream_id: &str) -> Result<Stream, OciError> {
        let base = self
            .control
            .as_ref()
            .ok_or(OciError::Endpoint(EndpointError::Unconfigured("streaming")))?;
        let url = service_url(base, &[API, "streams", stream_id], &[])?;
        self.client
            .send_json(&OciRequest::new("GetStream", Method::GET, url))
            .await
    }

    /// The data-plane base URL for `stream_id`: the override, the cached `messagesEndpoint`,
    /// or GetStream's answer (then cached).
    ///
    /// # Errors
    /// As [`get_stream`](Self::get_stream), and [`OciError::Endpoint`] when the stream's
    /// `messagesEndpoint` is not a URL.
    pub async fn messages_endpoint(&self, stream_id: &str) -> Result<Url, OciError> {
        if let Some(url) = &self.messages {
            return Ok(url.clone());
        }
        if let Ok(cache) = self.endpoints_by_stream.read() {
            if let Some(url) = cache.get(stream_id) {
                return Ok(url.clone());
            }
        }
        let stream = self.get_stream(stream_id).await?;
        let url = parse_base(&stream.messages_endpoint)?;
        if let Ok(mut cache) = self.endpoints_by_stream.write() {
            cache.insert(stream_id.to_owned(), url.clone());
        }
        Ok(url)
    }

    async fn data_url(
        &self,
        stream_id: &str,
        op: &str,
        query: &[(&str, Option<&str>)],
    ) -> Result<Url, OciError> {
        let base = self.messages_endpoint(stream_id).await?;
        service_url(&base, &[API, "streams", stream_id, op], query)
    }

    /// CreateCursor: a cursor on one partition.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn create_cursor(
        &self,
        stream_id: &str,
        partition: &str,
        start: &CursorStart,
    ) -> Result<String, OciError> {
        let url = self.data_url(stream_id, "cursors", &[]).await?;
        let request =
            OciRequest::new("CreateCursor", Method::POST, url).json(&start.details(partition))?;
        Ok(self.client.send_json::<Cursor>(&request).await?.value)
    }

    /// CreateGroupCursor: a cursor for a consumer-group instance.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn create_group_cursor(
        &self,
        stream_id: &str,
        details: &CreateGroupCursorDetails,
    ) -> Result<String, OciError> {
        let url = self.data_url(stream_id, "groupCursors", &[]).await?;
        let request = OciRequest::new("CreateGroupCursor", Method::POST, url).json(details)?;
        Ok(self.client.send_json::<Cursor>(&request).await?.value)
    }

    /// GetMessages: up to `limit` messages (1..=[`MAX_GET_LIMIT`]; `None` lets the service
    /// decide) from `cursor`, and the next cursor from `opc-next-cursor` (present even when no
    /// message is returned).
    ///
    /// # Errors
    /// [`OciError::Limit`] for a `limit` outside 1..=10000 (nothing is sent); as
    /// [`OciClient::send`]; [`OciError::Decode`] for an unexpected body or a missing
    /// `opc-next-cursor`.
    pub async fn get_messages(
        &self,
        stream_id: &str,
        cursor: &str,
        limit: Option<u32>,
    ) -> Result<(Vec<Message>, String), OciError> {
        if let Some(limit) = limit {
            if !(1..=MAX_GET_LIMIT).contains(&limit) {
                return Err(OciError::Limit {
                    operation: "GetMessages",
                    detail: format!("limit {limit} is outside 1..={MAX_GET_LIMIT}"),
                });
            }
        }
        let limit_text = limit.map(|l| l.to_string());
        let url = self
            .data_url(
                stream_id,
                "messages",
                &[("cursor", Some(cursor)), ("limit", limit_text.as_deref())],
            )
            .await?;
        let response = self
            .client
            .send(&OciRequest::new("GetMessages", Method::GET, url))
            .await?;
        let next = response
            .header("opc-next-cursor")
            .ok_or_else(|| OciError::Decode {
                operation: "GetMessages",
                detail: "no opc-next-cursor header".into(),
            })?
            .to_owned();
        Ok((response.json()?, next))
    }

    /// ConsumerCommit: commits the offsets in a group cursor; returns the updated cursor.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn consumer_commit(&self, stream_id: &str, cursor: &str) -> Result<String, OciError> {
        self.cursor_action("ConsumerCommit", "commit", stream_id, cursor)
            .await
    }

    /// ConsumerHeartbeat: extends a group cursor's partition reservations; returns the
    /// updated cursor.
    ///
    /// # Errors
    /// As [`OciClient::send`], and [`OciError::Decode`] for an unexpected body.
    pub async fn consumer_heartbeat(
        &self,
        stream_id: &str,
        cursor: &str,
    ) -> Result<String, OciError> {
        self.cursor_action("ConsumerHeartbeat", "heartbeat", stream_id, cursor)
            .await
    }

    async fn cursor_action(
        &self,
        operation: &'static str,
        op: &str,
        stream_id: &str,
        cursor: &str,
    ) -> Result<String, OciError> {
        let url = self
            .data_url(stream_id, op, &[("cursor", Some(cursor))])
            .await?;
        // No body, but a POST: signed with content-length 0 and the empty-body hash.
        let request = OciRequest::new(operation, Method::POST, url);
        Ok(self.client.send_json::<Cursor>(&request).await?.value)
    }
}
