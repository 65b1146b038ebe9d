//! Sending the callbacks of one batch: all at once (at most [`MAX_IN_FLIGHT`] in flight),
//! each call bounded by the callback timeout and all of them by the batch's callback budget;
//! a few quick tries each; a host that timed out or refused a connection is left alone for a
//! cool-down. Every try is one `datasync_trace` event (`event = "callback"`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use serde::Serialize;

use crate::classify::{AttemptOutcome, TransportFailure};
use crate::secret_cache::SecretCache;
use crate::settings::CallbackSettings;
use crate::target::{TargetCall, TargetClient};

use super::body::Pending;
use super::callback_secret_name;
use super::sign::{sign, webhook_id, SigningSecret};

/// Tries of one callback within an invocation.
pub const TRIES: u32 = 3;
/// Callback calls in flight at once, per batch.
pub const MAX_IN_FLIGHT: usize = 64;
/// The pause before the second try (doubled before the third).
const PAUSE: Duration = Duration::from_millis(100);

/// Callbacks sent and given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackCounts {
    /// Callbacks a receiver accepted (2xx).
    pub sent: u64,
    /// Callbacks given up: every try failed, the budget ran out, the host is cooling down, or
    /// the caller has no signing secret.
    pub failed: u64,
}

/// What one try calls for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The receiver took it.
    Sent,
    /// Worth another quick try (5xx but 501, 408, 429, a reset, a refused connection).
    Again,
    /// Not worth another try (3xx, other 4xx, 410 included, a blocked address).
    GiveUp,
    /// The host did not answer in time: give up and leave the host alone for a while.
    HostDown,
}

/// The verdict on one try's outcome; a refused connection is tried again, then cools the
/// host down ([`Sender::cool_down`]).
pub(super) fn verdict(outcome: &AttemptOutcome) -> Verdict {
    match outcome {
        AttemptOutcome::Status { status, .. } => match status {
            200..=299 => Verdict::Sent,
            408 | 429 => Verdict::Again,
            501 => Verdict::GiveUp,
            500..=599 => Verdict::Again,
            _ => Verdict::GiveUp,
        },
        AttemptOutcome::Transport(TransportFailure::Timeout) => Verdict::HostDown,
        AttemptOutcome::Transport(TransportFailure::Connect | TransportFailure::Reset) => {
            Verdict::Again
        }
        AttemptOutcome::Transport(TransportFailure::Blocked | TransportFailure::InvalidRequest) => {
            Verdict::GiveUp
        }
    }
}

/// The sending half of [`Callbacks`](super::Callbacks): shared by every batch of an instance.
pub(super) struct Sender {
    pub(super) client: TargetClient,
    pub(super) secrets: SecretCache,
    pub(super) settings: CallbackSettings,
    /// Hosts (`host:port`) left alone until the instant given.
    pub(super) down: Mutex<HashMap<String, Instant>>,
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
}

impl Sender {
    /// Sends every callback of `pending`, returning by `end` (the tasks bound themselves; the
    /// caller adds a last guard). The counts of this batch.
    pub(super) async fn send_all(
        self: &Arc<Self>,
        pending: Vec<Pending>,
        end: Instant,
    ) -> CallbackCounts {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for p in pending {
            let (me, permits) = (Arc::clone(self), Arc::clone(&permits));
            tasks.spawn(async move {
                let Ok(Ok(_permit)) =
                    tokio::time::timeout_at(end.into(), permits.acquire_owned()).await
                else {
                    give_up(&p, "the batch's callback budget ran out before it was sent");
                    return false;
                };
                me.send_one(&p, end).await
            });
        }
        let mut counts = CallbackCounts::default();
        while let Some(done) = tasks.join_next().await {
            if matches!(done, Ok(true)) {
                counts.sent += 1;
            } else {
                counts.failed += 1;
            }
        }
        self.sent.fetch_add(counts.sent, Ordering::Relaxed);
        self.failed.fetch_add(counts.failed, Ordering::Relaxed);
        counts
    }

    /// One callback, tried up to [`TRIES`] times before `end`; whether a receiver took it.
    async fn send_one(&self, p: &Pending, end: Instant) -> bool {
        let host = host_of(&p.url);
        if self.cooling(&host) {
            give_up(
                p,
                "not tried: its host timed out or refused a connection moments ago",
            );
            return false;
        }
        let secret = match self.secret(&p.caller).await {
            Ok(secret) => secret,
            Err(reason) => {
                give_up(p, &reason);
                return false;
            }
        };
        let Ok(body) = serde_json::to_vec(&p.body) else {
            give_up(p, "the body could not be encoded");
            return false;
        };
        let body = Bytes::from(body);
        let id = webhook_id(&p.body.id, p.body.status.as_str(), p.body.attempts);
        for attempt in 1..=TRIES {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let outcome = self
                .try_once(
                    p,
                    &secret,
                    &id,
                    &body,
                    attempt,
                    left.min(self.settings.timeout),
                )
                .await;
            match verdict(&outcome) {
                Verdict::Sent => return true,
                Verdict::GiveUp => break,
                Verdict::HostDown => {
                    self.cool_down(host);
                    break;
                }
                Verdict::Again if attempt == TRIES => {
                    if matches!(outcome, AttemptOutcome::Transport(_)) {
                        self.cool_down(host);
                    }
                    break;
                }
                Verdict::Again => {
                    let pause = PAUSE * attempt;
                    if Instant::now() + pause >= end {
                        break;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        }
        give_up(p, "given up for this invocation");
        false
    }

    /// One signed call; its outcome, traced.
    async fn try_once(
        &self,
        p: &Pending,
        secret: &SigningSecret,
        id: &str,
        body: &Bytes,
        attempt: u32,
        timeout: Duration,
    ) -> AttemptOutcome {
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let signature = sign(secret, id, timestamp, body);
        let headers: Vec<(HeaderName, HeaderValue)> = [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ]
        .into_iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).ok()?,
            ))
        })
        .collect();
        let call = TargetCall {
            method: Method::POST,
            url: &p.url,
            body: Some(body.clone()),
            headers: &headers,
            secret: None,
            idempotency_key: id,
            traceparent: p.traceparent.as_deref(),
            timeout: Some(timeout),
        };
        let record = self.client.call(&call).await;
        let duration_ms = u64::try_from(record.latency.as_millis()).unwrap_or(u64::MAX);
        let key = p.body.stream_key.as_deref();
        match record.outcome {
            AttemptOutcome::Status { status, .. } if (200..300).contains(&status) => {
                tracing::info!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, status, attempt, duration_ms, detail = p.body.status.as_str(), "callback");
            }
            AttemptOutcome::Status { status, .. } => {
                tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, status, attempt, duration_ms, error = %record.detail, "callback failed");
            }
            AttemptOutcome::Transport(_) => {
                tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, attempt, duration_ms, error = %record.detail, "callback failed");
            }
        }
        record.outcome
    }

    /// The caller's signing secret from Vault (cached), or why there is none. The reason names
    /// the secret, never its content.
    async fn secret(&self, caller: &str) -> Result<SigningSecret, String> {
        let name = callback_secret_name(caller);
        let value = self
            .secrets
            .get(&name)
            .await
            .map_err(|e| format!("no signing secret {name} could be read: {e}"))?;
        let text = value
            .to_str()
            .map_err(|_| format!("the signing secret {name} is not text"))?;
        SigningSecret::parse(text).map_err(|e| format!("{e} ({name})"))
    }

    fn cooling(&self, host: &str) -> bool {
        let Ok(mut down) = self.down.lock() else {
            return false;
        };
        let now = Instant::now();
        down.retain(|_, until| *until > now);
        down.contains_key(host)
    }

    fn cool_down(&self, host: String) {
        if let Ok(mut down) = self.down.lock() {
            down.insert(host, Instant::now() + self.settings.host_cool_down);
        }
    }
}

/// `host:port` of a callback URL, as the cool-down keys it.
fn host_of(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// The trace event of a callback given up.
fn give_up(p: &Pending, reason: &str) {
    let key = p.body.stream_key.as_deref();
    tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, error = reason, detail = "given up", "callback given up");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_the_standard_s_status_advice() {
        let status = |status| AttemptOutcome::Status {
            status,
            retry_after: None,
        };
        for (s, v) in [
            (200, Verdict::Sent),
            (204, Verdict::Sent),
            (301, Verdict::GiveUp),
            (400, Verdict::GiveUp),
            (410, Verdict::GiveUp),
            (408, Verdict::Again),
            (429, Verdict::Again),
            (500, Verdict::Again),
            (501, Verdict::GiveUp),
            (502, Verdict::Again),
            (504, Verdict::Again),
        ] {
            assert_eq!(verdict(&status(s)), v, "{s}");
        }
        let t = |f| verdict(&AttemptOutcome::Transport(f));
        assert_eq!(t(TransportFailure::Timeout), Verdict::HostDown);
        assert_eq!(t(TransportFailure::Connect), Verdict::Again);
        assert_eq!(t(TransportFailure::Blocked), Verdict::GiveUp);
    }
}
