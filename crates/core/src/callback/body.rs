//! What a callback says ([`CallbackBody`], one schema for both outcomes) and which messages of
//! a routed batch get one ([`settled`]): those delivered, and those dead-lettered (their own
//! failure, or held behind a message of their key that was).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::classify::ErrorClass;
use crate::deliver::{Body, Failure, Fate, Outcome, Outcomes};
use crate::message::{rfc3339, truncate_utf8, Envelope, MAX_ERROR_DETAIL};

/// A message's final outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallbackStatus {
    /// The target accepted it.
    Delivered,
    /// It failed permanently, or ran out of attempts or age, and went to the dead-letter
    /// stream.
    DeadLettered,
}

impl CallbackStatus {
    /// As the body writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStatus::Delivered => "delivered",
            CallbackStatus::DeadLettered => "deadLettered",
        }
    }
}

/// Why a dead-lettered message failed: every key always present (`null` when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackError {
    /// The class, e.g. `exhausted`, `badRequest`.
    pub class: ErrorClass,
    /// The target's last HTTP status, when it answered.
    pub status: Option<u16>,
    /// A short, secret-free explanation (at most 512 bytes).
    pub detail: Option<String>,
}

/// The body POSTed to a message's `statusCallback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackBody {
    /// The message id populate answered with.
    pub id: String,
    /// Its `streamKey` (`null` without one).
    pub stream_key: Option<String>,
    /// `delivered` or `deadLettered`.
    pub status: CallbackStatus,
    /// Calls made to the target, this last one included.
    pub attempts: u32,
    /// Why it was dead-lettered; `null` when delivered.
    pub last_error: Option<CallbackError>,
    /// When the outcome was decided, RFC 3339.
    pub at: String,
}

/// One callback to send.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Where to.
    pub url: url::Url,
    /// The caller whose signing secret signs it (the envelope's `source`).
    pub caller: String,
    /// The message's trace context, passed on.
    pub traceparent: Option<String>,
    /// What to say.
    pub body: CallbackBody,
    /// Calls made to it before (by earlier invocations).
    pub tries: u32,
}

/// The callbacks a routed batch owes, in batch order: one per message with a `statusCallback`
/// whose fate is final. Messages re-routed to be tried again owe none yet.
pub fn settled(outcomes: &Outcomes, now: SystemTime) -> Vec<Pending> {
    let at = rfc3339(now);
    outcomes
        .list()
        .iter()
        .filter_map(|o| pending(outcomes, o, &at))
        .collect()
}

fn envelope(outcome: &Outcome) -> Option<&Envelope> {
    match &outcome.item.body {
        Body::Envelope(e) | Body::Encoded { envelope: e, .. } => Some(e),
        Body::Undecodable { .. } => None,
    }
}

fn pending(outcomes: &Outcomes, outcome: &Outcome, at: &str) -> Option<Pending> {
    let envelope = envelope(outcome)?;
    let text = envelope.status_callback.as_deref()?;
    let caller = envelope.source.clone()?;
    let (status, tried, last_error) = match &outcome.fate {
        Fate::Delivered { .. } => (CallbackStatus::Delivered, true, None),
        Fate::Failed(Failure::Held { blocker }) => {
            let (held_behind, failure) = outcomes.blocker(*blocker)?;
            let class = dead_lettered(failure)?;
            let detail = format!(
                "not attempted: held behind {} ({}) to keep the order of its key",
                held_behind.item.id,
                class.as_str()
            );
            (
                CallbackStatus::DeadLettered,
                false,
                Some(error(class, None, Some(detail))),
            )
        }
        Fate::Failed(failure) => {
            let class = dead_lettered(failure)?;
            let detail = failure.detail().map(|d| d.into_owned());
            let tried = failure.cause().is_some_and(|c| c.tried());
            (
                CallbackStatus::DeadLettered,
                tried,
                Some(error(class, failure.status(), detail)),
            )
        }
    };
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(_) => {
            tracing::warn!(target: "datasync_trace", event = "callback", id = %outcome.item.id, error = "statusCallback is not a URL; not sent", "callback");
            return None;
        }
    };
    Some(Pending {
        url,
        caller,
        traceparent: envelope.traceparent.clone(),
        tries: 0,
        body: CallbackBody {
            id: outcome.item.id.clone(),
            stream_key: outcome
                .item
                .key
                .as_ref()
                .map(|k| String::from_utf8_lossy(k).into_owned()),
            status,
            attempts: envelope.attempt.saturating_add(u32::from(tried)),
            last_error,
            at: at.to_owned(),
        },
    })
}

/// The class a failure is dead-lettered with, when it is.
fn dead_lettered(failure: &Failure) -> Option<ErrorClass> {
    match failure.is_dead_letter() {
        Some(true) => failure.class(),
        _ => None,
    }
}

fn error(class: ErrorClass, status: Option<u16>, detail: Option<String>) -> CallbackError {
    let detail = detail.map(|mut d| {
        truncate_utf8(&mut d, MAX_ERROR_DETAIL);
        d
    });
    CallbackError {
        class,
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::deliver::{Cause, Item};

    fn item(n: i64, callback: Option<&str>, attempt: u32) -> Item {
        let mut env = serde_json::json!({
            "targetRestApi": "https://a.example/x", "targetRestApiOperation": "POST",
            "id": format!("m{n}"), "source": "app", "attempt": attempt,
        });
        if let Some(cb) = callback {
            env["statusCallback"] = serde_json::json!(cb);
        }
        let key = Some(Bytes::from_static(b"k"));
        Item::decode("s", "0", n, key, Bytes::from(env.to_string()))
    }

    fn outcome(item: Item, fate: Fate) -> Outcome {
        Outcome { item, fate }
    }

    #[test]
    fn final_fates_with_a_callback_owe_one_and_retries_owe_none() {
        let cb = Some("https://app.example.com/cb");
        let answered = |status| Cause::Answered {
            status,
            detail: format!("HTTP {status}"),
        };
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(60);
        let outcomes = Outcomes::new(vec![
            outcome(item(0, cb, 0), Fate::Delivered { status: 200 }),
            outcome(item(1, None, 0), Fate::Delivered { status: 200 }),
            outcome(
                item(2, cb, 4),
                Fate::Failed(Failure::exhausted(
                    ErrorClass::ServiceUnavailable,
                    answered(503),
                )),
            ),
            outcome(item(3, cb, 0), Fate::Failed(Failure::held(2))),
            outcome(
                item(4, cb, 0),
                Fate::Failed(Failure::transient(
                    ErrorClass::ServiceUnavailable,
                    later,
                    answered(503),
                )),
            ),
            outcome(item(5, cb, 0), Fate::Failed(Failure::held(4))),
            outcome(
                item(6, cb, 2),
                Fate::Failed(Failure::permanent(
                    ErrorClass::Invalid,
                    Cause::NotAttempted {
                        detail: "bad".into(),
                    },
                )),
            ),
        ]);
        let owed = settled(&outcomes, SystemTime::UNIX_EPOCH);
        let ids: Vec<&str> = owed.iter().map(|p| p.body.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m2", "m3", "m6"]);
        let [delivered, exhausted, held, invalid] = &owed[..] else {
            unreachable!()
        };
        assert_eq!(delivered.body.status, CallbackStatus::Delivered);
        assert_eq!(
            (delivered.body.attempts, delivered.caller.as_str()),
            (1, "app")
        );
        assert_eq!(delivered.body.stream_key.as_deref(), Some("k"));
        assert_eq!(exhausted.body.status, CallbackStatus::DeadLettered);
        assert_eq!(exhausted.body.attempts, 5);
        let e = exhausted.body.last_error.as_ref().unwrap();
        assert_eq!((e.class, e.status), (ErrorClass::Exhausted, Some(503)));
        let h = held.body.last_error.as_ref().unwrap();
        assert_eq!(
            (held.body.attempts, h.class, h.status),
            (0, ErrorClass::Exhausted, None)
        );
        assert!(
            h.detail.as_deref().unwrap().contains("held behind m2"),
            "{h:?}"
        );
        assert_eq!(invalid.body.attempts, 2, "not attempted: no call counted");
    }

    #[test]
    fn the_body_always_has_every_key_in_one_schema() {
        let delivered = CallbackBody {
            id: "m1".into(),
            stream_key: None,
            status: CallbackStatus::Delivered,
            attempts: 1,
            last_error: None,
            at: "2026-01-01T00:00:00Z".into(),
        };
        assert_eq!(
            serde_json::to_string(&delivered).unwrap(),
            r#"{"id":"m1","streamKey":null,"status":"delivered","attempts":1,"lastError":null,"at":"2026-01-01T00:00:00Z"}"#
        );
        let dead = CallbackBody {
            stream_key: Some("k".into()),
            status: CallbackStatus::DeadLettered,
            last_error: Some(error(ErrorClass::Exhausted, Some(503), None)),
            ..delivered
        };
        let text = serde_json::to_string(&dead).unwrap();
        assert!(
            text.contains(r#""status":"deadLettered""#)
                && text.contains(r#""lastError":{"class":"exhausted","status":503,"detail":null}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<CallbackBody>(&text).unwrap(), dead);
    }
}
