//! Notifications (20181201): topics, and PublishMessage, which records each message so tests
//! and the status page can list what was sent.
//!
//! OCI's limits are enforced as OCI states them (contracts/oci-round2.md section D, the Python
//! SDK's `publish_message` docstring): at most 64 KB per message (413 `PayloadTooLarge` above,
//! the status the hardening issue observed; OCI does not document it), and 60 messages a minute
//! per topic (429 `TooManyRequests` above; [`EmulatorOptions::notifications_per_minute`]).
//! A topic's `apiEndpoint` is the emulator's own base URL.
//!
//! [`EmulatorOptions::notifications_per_minute`]: crate::EmulatorOptions::notifications_per_minute

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use datasync_core::oci::models;
use http::{Method, StatusCode};
use rusqlite::{Connection, OptionalExtension as _};

use crate::clock::{now_ms, rfc3339_ms};
use crate::emulator::Inner;
use crate::error::ApiError;
use crate::request::{new_ocid, parse_json, Call};
use crate::response::ok;

/// The API's first path segment.
pub(crate) const API: &str = "20181201";

/// The most a published message may hold (OCI's limit is 64 KB).
pub const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// A message published to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedNotification {
    /// The topic's OCID.
    pub topic_id: String,
    /// The message id returned to the publisher.
    pub message_id: String,
    /// The title, when given.
    pub title: Option<String>,
    /// The body.
    pub body: String,
    /// The `messageType` header (`JSON` or `RAW_TEXT`), when given.
    pub message_type: Option<String>,
    /// When it was published, RFC 3339.
    pub time: String,
}

/// Routes a Notifications call: CreateTopic, GetTopic, PublishMessage.
///
/// # Errors
/// The operation's [`ApiError`]; 404 for any other path.
pub(crate) async fn route(inner: &Arc<Inner>, call: &Call) -> Result<Response, ApiError> {
    match (&call.method, call.segments().as_slice()) {
        (&Method::POST, [API, "topics"]) => {
            ok(&with_endpoint(inner, create(inner, &call.body).await?))
        }
        (&Method::GET, [API, "topics", id]) => ok(&with_endpoint(inner, get(inner, id).await?)),
        (&Method::POST, [API, "topics", id, "messages"]) => {
            let kind = call.header("messagetype").map(str::to_owned);
            ok(&publish(inner, id, kind, &call.body).await?)
        }
        _ => Err(call.not_found()),
    }
}

fn load(conn: &Connection, id: &str) -> Result<models::NotificationTopic, ApiError> {
    conn.query_row(
        "SELECT ocid, name, compartment, description, created FROM topics WHERE ocid=?1",
        [id],
        |r| {
            Ok(models::NotificationTopic {
                topic_id: r.get(0)?,
                name: r.get(1)?,
                compartment_id: r.get(2)?,
                description: r.get(3)?,
                time_created: r.get(4)?,
                lifecycle_state: "ACTIVE".into(),
                api_endpoint: None,
            })
        },
    )
    .optional()?
    .ok_or_else(|| ApiError::not_found(format!("topic {id}")))
}

/// `topic` with its `apiEndpoint`: where the emulator serves.
fn with_endpoint(inner: &Inner, mut topic: models::NotificationTopic) -> models::NotificationTopic {
    let base = inner.base_url();
    if !base.is_empty() {
        topic.api_endpoint = Some(base);
    }
    topic
}

/// PublishMessage calls accepted per topic in the last minute.
#[derive(Debug, Default)]
pub(crate) struct TopicRates(Mutex<HashMap<String, VecDeque<Instant>>>);

impl TopicRates {
    /// Records a call to `topic` at `now` if fewer than `per_minute` were accepted in the
    /// minute before; false (nothing recorded) otherwise.
    fn admit(&self, topic: &str, per_minute: u32, now: Instant) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        let calls = map.entry(topic.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
        {
            calls.pop_front();
        }
        if calls.len() >= per_minute as usize {
            return false;
        }
        calls.push_back(now);
        true
    }
}

/// CreateTopic.
pub async fn create(
    inner: &Arc<Inner>,
    body: &[u8],
) -> Result<models::NotificationTopic, ApiError> {
    let details: models::CreateTopicDetails = parse_json(body)?;
    let valid = !details.name.is_empty()
        && details.name.len() <= 256
        && details
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(ApiError::invalid(
            "name must be 1 to 256 letters, digits, '-' or '_'",
        ));
    }
    let id = new_ocid("onstopic");
    inner
        .store
        .write(move |conn, _| {
            let taken = conn
                .query_row("SELECT 1 FROM topics WHERE name=?1", [&details.name], |_| Ok(()))
                .optional()?
                .is_some();
            if taken {
                return Err(ApiError::conflict(
                    "NotAuthorizedOrResourceAlreadyExists",
                    format!("a topic named {} already exists", details.name),
                ));
            }
            conn.execute(
                "INSERT INTO topics(ocid, name, compartment, description, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id, details.name, details.compartment_id, details.description, rfc3339_ms(now_ms())],
            )?;
            load(conn, &id)
        })
        .await
}

/// GetTopic.
pub async fn get(inner: &Arc<Inner>, id: &str) -> Result<models::NotificationTopic, ApiError> {
    let id = id.to_owned();
    inner.store.read(move |conn| load(conn, &id)).await
}

/// PublishMessage.
pub async fn publish(
    inner: &Arc<Inner>,
    topic: &str,
    message_type: Option<String>,
    body: &[u8],
) -> Result<models::PublishResult, ApiError> {
    let details: models::MessageDetails = parse_json(body)?;
    if details.body.len() + details.title.as_ref().map_or(0, String::len) > MAX_NOTIFICATION_BYTES {
        return Err(ApiError::too_large(format!(
            "a message may hold at most {MAX_NOTIFICATION_BYTES} bytes"
        )));
    }
    if let Some(kind) = &message_type {
        if kind != "JSON" && kind != "RAW_TEXT" {
            return Err(ApiError::invalid("messageType must be JSON or RAW_TEXT"));
        }
    }
    let per_minute = inner.options.notifications_per_minute;
    if !inner.topic_rates.admit(topic, per_minute, Instant::now()) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!("a topic accepts at most {per_minute} messages a minute"),
        ));
    }
    let topic = topic.to_owned();
    let message_id = uuid::Uuid::new_v4().to_string();
    let time = rfc3339_ms(now_ms());
    let result = models::PublishResult {
        message_id: message_id.clone(),
        time_stamp: Some(time.clone()),
    };
    inner
        .store
        .write(move |conn, _| {
            load(conn, &topic)?;
            conn.execute(
                "INSERT INTO notifications(topic, message_id, title, body, message_type, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![topic, message_id, details.title, details.body, message_type, time],
            )?;
            Ok(())
        })
        .await?;
    Ok(result)
}

/// Every published message, oldest first.
pub fn list_published(conn: &Connection) -> Result<Vec<PublishedNotification>, ApiError> {
    Ok(conn
        .prepare(&format!(
            "SELECT {PUBLISHED_COLUMNS} FROM notifications ORDER BY id"
        ))?
        .query_map([], published_from_row)?
        .collect::<Result<_, _>>()?)
}

/// How many messages were published in all, and the last `limit`, oldest first: a bounded
/// read, whatever the history.
pub fn recent_published(
    conn: &Connection,
    limit: usize,
) -> Result<(u64, Vec<PublishedNotification>), ApiError> {
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM notifications", [], |r| r.get(0))?;
    let mut newest_first: Vec<PublishedNotification> = conn
        .prepare(&format!(
            "SELECT {PUBLISHED_COLUMNS} FROM notifications ORDER BY id DESC LIMIT ?1"
        ))?
        .query_map([limit as i64], published_from_row)?
        .collect::<Result<_, _>>()?;
    newest_first.reverse();
    Ok((total.max(0) as u64, newest_first))
}

const PUBLISHED_COLUMNS: &str = "topic, message_id, title, body, message_type, time";

fn published_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PublishedNotification> {
    Ok(PublishedNotification {
        topic_id: r.get(0)?,
        message_id: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        message_type: r.get(4)?,
        time: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_admits_its_rate_per_minute_and_others_are_separate() {
        let rates = TopicRates::default();
        let t0 = Instant::now();
        assert!((0..3).all(|_| rates.admit("a", 3, t0)));
        assert!(!rates.admit("a", 3, t0 + Duration::from_secs(59)));
        assert!(rates.admit("b", 3, t0));
        assert!(rates.admit("a", 3, t0 + Duration::from_secs(60)));
    }
}
