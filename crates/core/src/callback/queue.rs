//! Callbacks that failed within their invocation wait in the callback stream
//! (`callback_stream_ocid`) as [`QueuedCallback`] records, until the retry function's schedule
//! sends them again ([`Callbacks::redeliver`](super::Callbacks::redeliver)).
//!
//! A record holds what the next try needs and nothing secret: the URL, the caller (whose
//! signing secret is read from Vault at each try), the trace context, the body (so the
//! `webhook-id`, derived from it, stays the same across tries and receivers can dedupe), the
//! calls made so far, when it first failed and when it is next due.
//!
//! The wait before the next try is three times the callback's age (the time since its first
//! failure), at least `callback_retry_backoff_ms` and at most [`MAX_CALLBACK_BACKOFF`]: with
//! the defaults the tries fall about 1, 4, 16, 64, 256 and 1024 minutes after the first
//! failure, then every 6 h, and the last is due no later than `callback_retry_max_age_seconds`
//! after it. A callback is abandoned when a try fails and it has had
//! `callback_retry_max_tries` calls or reached that age.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::{parse_rfc3339, rfc3339};
use crate::oci::client::OciError;
use crate::oci::streaming::{PutMessage, StreamClient};
use crate::settings::{CallbackRetrySettings, MAX_CALLBACK_BACKOFF};

use super::body::{CallbackBody, Pending};

/// The value of a record in the callback stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueuedCallback {
    /// The `statusCallback` URL.
    pub url: String,
    /// The caller whose signing secret signs it (never the secret).
    pub caller: String,
    /// The message's trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What is sent, unchanged across tries.
    pub body: CallbackBody,
    /// Calls made so far.
    pub tries: u32,
    /// When its first invocation gave it up, RFC 3339.
    pub first_failed_at: String,
    /// When it is next due, RFC 3339.
    pub not_before: String,
}

/// Why queued callbacks could not be written.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The record could not be encoded.
    #[error("encoding a queued callback: {0}")]
    Encode(#[from] serde_json::Error),
    /// PutMessages failed as a whole.
    #[error("writing {count} callbacks to the callback stream: {source}")]
    Put {
        /// How many records were to be written.
        count: usize,
        /// The error.
        #[source]
        source: Box<OciError>,
    },
    /// Some records were not stored.
    #[error("{failed} of {count} callbacks not stored in the callback stream: {code}")]
    NotStored {
        /// How many records were to be written.
        count: usize,
        /// How many were not stored.
        failed: usize,
        /// The first entry's error code.
        code: String,
    },
}

impl QueuedCallback {
    /// The record of `p` after `tries` calls, first failed at `now`.
    pub fn first(p: &Pending, tries: u32, now: SystemTime, retry: &CallbackRetrySettings) -> Self {
        Self {
            url: p.url.to_string(),
            caller: p.caller.clone(),
            traceparent: p.traceparent.clone(),
            body: p.body.clone(),
            tries,
            first_failed_at: rfc3339(now),
            not_before: rfc3339(next_try(now, now, retry)),
        }
    }

    /// The callback to send, or why it cannot be sent.
    pub fn pending(&self) -> Result<Pending, url::ParseError> {
        Ok(Pending {
            url: url::Url::parse(&self.url)?,
            caller: self.caller.clone(),
            traceparent: self.traceparent.clone(),
            body: self.body.clone(),
            tries: self.tries,
        })
    }

    /// When it first failed (now, when the record's time is unreadable: the age bound then
    /// counts from here).
    pub fn first_failed(&self, now: SystemTime) -> SystemTime {
        parse_rfc3339(&self.first_failed_at).unwrap_or(now)
    }

    /// Whether it is due at `now` (an unreadable time is due).
    pub fn is_due(&self, now: SystemTime) -> bool {
        parse_rfc3339(&self.not_before).is_none_or(|t| t <= now)
    }

    /// This record after a try that failed at `now` (`tried`: whether a call was made), or
    /// `None` when it is exhausted.
    pub fn after_failure(
        mut self,
        tried: bool,
        now: SystemTime,
        retry: &CallbackRetrySettings,
    ) -> Option<Self> {
        self.tries = self.tries.saturating_add(u32::from(tried));
        let first = self.first_failed(now);
        if exhausted(self.tries, first, now, retry) {
            return None;
        }
        self.not_before = rfc3339(next_try(first, now, retry));
        Some(self)
    }

    /// The stream message: keyed by the message id, so one message's callback stays in one
    /// partition.
    pub fn message(&self) -> Result<PutMessage, serde_json::Error> {
        Ok(PutMessage::keyed(
            Bytes::from(self.body.id.clone().into_bytes()),
            serde_json::to_vec(self)?,
        ))
    }
}

/// Whether a callback with `tries` calls, first failed at `first`, is to be abandoned at `now`.
pub fn exhausted(
    tries: u32,
    first: SystemTime,
    now: SystemTime,
    retry: &CallbackRetrySettings,
) -> bool {
    let age = now.duration_since(first).unwrap_or_default();
    tries >= retry.max_tries || age >= retry.max_age
}

/// When a callback first failed at `first` is next tried after a failure at `now`: three times
/// its age later, within `[backoff, 6 h]`, and never after its age bound.
pub fn next_try(first: SystemTime, now: SystemTime, retry: &CallbackRetrySettings) -> SystemTime {
    let age = now.duration_since(first).unwrap_or_default();
    let wait = age
        .saturating_mul(3)
        .clamp(retry.backoff, MAX_CALLBACK_BACKOFF.max(retry.backoff));
    let last = first + retry.max_age;
    (now + wait).min(last).max(now)
}

/// Writes `records` to `stream` with one PutMessages.
pub async fn put(
    streams: &StreamClient,
    stream: &str,
    records: &[QueuedCallback],
) -> Result<(), QueueError> {
    if records.is_empty() {
        return Ok(());
    }
    let messages = records
        .iter()
        .map(QueuedCallback::message)
        .collect::<Result<Vec<_>, _>>()?;
    let count = messages.len();
    let stored = streams
        .put_messages(stream, &messages)
        .await
        .map_err(|source| QueueError::Put {
            count,
            source: Box::new(source),
        })?;
    let failed: Vec<_> = stored.iter().filter_map(|r| r.as_ref().err()).collect();
    match failed.first() {
        Some(first) => Err(QueueError::NotStored {
            count,
            failed: failed.len(),
            code: first.code.clone(),
        }),
        None => Ok(()),
    }
}

/// The wait before the try after one at `age` (for docs and tests).
pub fn wait_at(age: Duration, retry: &CallbackRetrySettings) -> Duration {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    next_try(now - age, now, retry)
        .duration_since(now)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::callback::CallbackStatus;

    fn pending() -> Pending {
        Pending {
            url: url::Url::parse("https://app.example.com/cb?x=1").unwrap(),
            caller: "app".into(),
            traceparent: None,
            tries: 0,
            body: CallbackBody {
                id: "m1".into(),
                stream_key: Some("k".into()),
                status: CallbackStatus::Delivered,
                attempts: 1,
                last_error: None,
                at: "2026-01-01T00:00:00.000Z".into(),
            },
        }
    }

    #[test]
    fn waits_grow_threefold_with_age_within_their_bounds() {
        let r = CallbackRetrySettings::default();
        let min = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(wait_at(Duration::ZERO, &r), min(1));
        assert_eq!(wait_at(min(1), &r), min(3));
        assert_eq!(wait_at(min(4), &r), min(12));
        assert_eq!(wait_at(min(64), &r), min(192));
        assert_eq!(wait_at(min(256), &r), min(360), "capped at 6 h");
        // Never past the age bound: the last try is due when it is reached.
        assert_eq!(wait_at(min(23 * 60), &r), min(60));
    }

    #[test]
    fn a_record_is_abandoned_after_its_tries_or_its_age() {
        let r = CallbackRetrySettings {
            max_tries: 5,
            max_age: Duration::from_secs(3600),
            backoff: Duration::from_secs(10),
        };
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let q = QueuedCallback::first(&pending(), 3, t0, &r);
        assert_eq!(q.tries, 3);
        assert!(!q.is_due(t0) && q.is_due(t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(10);
        let q = q.after_failure(true, later, &r).unwrap();
        assert_eq!(q.tries, 4);
        assert!(q.is_due(later + Duration::from_secs(30)));
        assert!(!q.is_due(later + Duration::from_secs(29)));
        // Not tried (its host cooling down): no call counted.
        let q = q.after_failure(false, later, &r).unwrap();
        assert_eq!(q.tries, 4);
        assert!(
            q.clone().after_failure(true, later, &r).is_none(),
            "5 tries"
        );
        let old = t0 + Duration::from_secs(3600);
        assert!(q.after_failure(false, old, &r).is_none(), "an hour old");
    }

    #[test]
    fn the_record_round_trips_and_keeps_no_secret_and_the_webhook_id() {
        let r = CallbackRetrySettings::default();
        let q = QueuedCallback::first(&pending(), 3, SystemTime::UNIX_EPOCH, &r);
        let m = q.message().unwrap();
        let text = String::from_utf8(m.value.to_vec()).unwrap();
        assert!(text.contains(r#""caller":"app""#), "{text}");
        assert!(!text.contains("whsec_"), "{text}");
        let back: QueuedCallback = serde_json::from_str(&text).unwrap();
        assert_eq!(back, q);
        let p = back.pending().unwrap();
        assert_eq!(p.url.as_str(), "https://app.example.com/cb?x=1");
        assert_eq!(p.body, pending().body);
    }
}
