//! Where a connector delivers: a function, a Notifications topic, or the archive bucket.
//!
//! A function or the archive gets the batch until it takes it (the connector retries it,
//! never skipping it). A Notifications topic gets each message with bounded tries instead
//! ([`PUBLISH_TRIES`]): a message it keeps refusing (413 `PayloadTooLarge` above 64 KB, any
//! other 4xx at once; 429 and 5xx after the tries) is given up on and counted
//! ([`ConnectorStats::given_up`]), so it never holds back the messages behind it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use datasync_core::oci::models::{Message, MessageDetails};
use datasync_core::oci::notifications::NotificationsClient;
use datasync_core::oci::objectstorage::ObjectStorageClient;

use super::backoff::Backoff;
use super::ConnectorStats;
use crate::stack::host::{deadline, Pool};

/// Where a connector delivers.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Invoke a function with the batch (a JSON array of messages).
    Function(Arc<Pool>),
    /// Publish each message to a topic.
    Notifications {
        /// The client.
        client: NotificationsClient,
        /// The topic.
        topic: String,
    },
    /// Write the batch as one object.
    Archive {
        /// The client.
        client: ObjectStorageClient,
        /// Namespace.
        namespace: String,
        /// Bucket.
        bucket: String,
        /// Object name prefix.
        prefix: String,
    },
}

/// Tries per message a Notifications topic refuses for a reason that may pass (429, 5xx, a
/// transport error) before it is given up on.
pub const PUBLISH_TRIES: u32 = 5;

/// The longest wait between those tries.
const PUBLISH_BACKOFF_CAP: Duration = Duration::from_secs(4);

/// A failed hand-over: how many messages at the front were taken (a target that takes a batch
/// in parts), and why.
pub(super) type Refused = (usize, String);

impl Sink {
    /// Hands `batch` (read from `partition`) to the target.
    pub(super) async fn deliver(
        &self,
        partition: u32,
        batch: &[Message],
        stats: &ConnectorStats,
    ) -> Result<(), Refused> {
        match self {
            Sink::Function(pool) => invoke(pool, batch).await,
            Sink::Notifications { client, topic } => {
                publish(client, topic, batch, stats).await;
                Ok(())
            }
            Sink::Archive {
                client,
                namespace,
                bucket,
                prefix,
            } => {
                let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                    return Ok(());
                };
                let name = format!(
                    "{prefix}/{partition}/{:020}-{:020}.jsonl",
                    first.offset, last.offset
                );
                archive(client, namespace, bucket, &name, batch).await?;
                stats.objects.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}

/// Invokes the function with the batch as Connector Hub does; taken when it answers 200.
async fn invoke(pool: &Pool, batch: &[Message]) -> Result<(), Refused> {
    let body = datasync_core::oci::streaming::encode_batch(batch);
    let call_id = uuid::Uuid::now_v7().simple().to_string();
    let request = fdk::agent::invoke_request(
        &call_id,
        deadline(),
        Some("application/json"),
        Bytes::from(body),
    )
    .map_err(|e| (0, e.to_string()))?;
    match pool.call(request).await {
        Ok(r) if r.status() == http::StatusCode::OK => Ok(()),
        Ok(r) => Err((
            0,
            format!(
                "{} answered {}: {}",
                pool.name(),
                r.status(),
                String::from_utf8_lossy(&r.body()[..r.body().len().min(300)])
            ),
        )),
        Err(e) => Err((0, format!("{}: {e}", pool.name()))),
    }
}

/// Publishes each message to `topic` whole, titled with where it was read from, as Connector
/// Hub sends a stream's messages to a topic (no task can trim them).
async fn publish(
    client: &NotificationsClient,
    topic: &str,
    batch: &[Message],
    stats: &ConnectorStats,
) {
    for m in batch {
        let body = datasync_core::oci::streaming::message_value(m)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_else(|_| m.value.clone());
        let details = MessageDetails {
            title: Some(format!(
                "{}: message {}/{}",
                m.stream, m.partition, m.offset
            )),
            body,
        };
        publish_one(client, topic, &details, stats, m).await;
    }
}

/// Publishes one message with bounded tries; gives it up (counted) when the topic refuses it
/// for good or keeps failing.
async fn publish_one(
    client: &NotificationsClient,
    topic: &str,
    details: &MessageDetails,
    stats: &ConnectorStats,
    m: &Message,
) {
    let mut backoff = Backoff::new(PUBLISH_BACKOFF_CAP);
    for tried in 1..=PUBLISH_TRIES {
        let e = match client.publish_message(topic, details).await {
            Ok(_) => return,
            Err(e) => e,
        };
        stats.failures.fetch_add(1, Ordering::Relaxed);
        let for_good = e
            .status()
            .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429);
        if for_good || tried == PUBLISH_TRIES {
            stats.given_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                stream = %m.stream, partition = %m.partition, offset = m.offset,
                status = ?e.status(), tries = tried, error = %e,
                "connector: the topic refused a dead-letter message; given up (it stays in the dead-letter stream and the archive)"
            );
            return;
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Writes the batch as one object of JSON lines, one message each.
async fn archive(
    client: &ObjectStorageClient,
    namespace: &str,
    bucket: &str,
    name: &str,
    batch: &[Message],
) -> Result<(), Refused> {
    let mut body = Vec::with_capacity(batch.len() * 256);
    for m in batch {
        serde_json::to_writer(&mut body, m).map_err(|e| (0, e.to_string()))?;
        body.push(b'\n');
    }
    client
        .put_object(
            namespace,
            bucket,
            name,
            Bytes::from(body),
            Some("application/x-ndjson"),
        )
        .await
        .map(|_| ())
        .map_err(|e| (0, e.to_string()))
}
