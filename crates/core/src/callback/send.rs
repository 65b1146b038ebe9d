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

/// Callbacks sent, queued for the retry function and abandoned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackCounts {
    /// Callbacks a receiver accepted (2xx).
    pub sent: u64,
    /// Callbacks not sent this time: queued or abandoned (every try failed, the budget ran
    /// out, the host is cooling down, or the caller has no signing secret).
    pub failed: u64,
    /// Of those, callbacks written to the callback stream to be tried again later.
    pub queued: u64,
    /// Of those, callbacks abandoned for good (their tries or age used up, a refusal no try
    /// can change, or no callback stream).
    pub abandoned: u64,
}

impl CallbackCounts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: CallbackCounts) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.queued += other.queued;
        self.abandoned += other.abandoned;
    }
}

/// What became of one callback in one invocation.
#[derive(Debug, Clone)]
pub(super) struct Attempted {
    /// Whether a receiver took it.
    pub(super) sent: bool,
    /// Calls made.
    pub(super) calls: u32,
    /// Whether a later try may succeed (else it is abandoned).
    pub(super) retry: bool,
    /// Why it was not sent.
    pub(super) reason: String,
}

impl Attempted {
    fn sent(calls: u32) -> Self {
        Self {
            sent: true,
            calls,
            retry: false,
            reason: String::new(),
        }
    }

    fn failed(calls: u32, retry: bool, reason: impl Into<String>) -> Self {
        Self {
            sent: false,
            calls,
            retry,
            reason: reason.into(),
        }
    }
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
    pub(super) queued: AtomicU64,
    pub(super) abandoned: AtomicU64,
}

impl Sender {
    /// Sends every callback of `pending`, each tried up to `tries` times, returning by `end`
    /// (the tasks bound themselves; a stuck one is dropped 100 ms later). What became of
    /// each, in order; one still running at the guard is reported as not sent, worth a retry.
    pub(super) async fn send_all(
        self: &Arc<Self>,
        pending: &[Pending],
        end: Instant,
        tries: u32,
    ) -> Vec<Attempted> {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let done: Arc<Mutex<Vec<Option<Attempted>>>> =
            Arc::new(Mutex::new(vec![None; pending.len()]));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, p) in pending.iter().enumerate() {
            let (me, permits, done, p) = (
                Arc::clone(self),
                Arc::clone(&permits),
                Arc::clone(&done),
                p.clone(),
            );
            tasks.spawn(async move {
                let attempted =
                    match tokio::time::timeout_at(end.into(), permits.acquire_owned()).await {
                        Ok(Ok(_permit)) => me.send_one(&p, end, tries).await,
                        _ => Attempted::failed(
                            0,
                            true,
                            "the batch's callback budget ran out before it was sent",
                        ),
                    };
                if let Ok(mut done) = done.lock() {
                    done[i] = Some(attempted);
                }
            });
        }
        let guard = end + Duration::from_millis(100);
        let joined = tokio::time::timeout_at(guard.into(), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!(callbacks = pending.len(), "callbacks outran their budget");
            tasks.abort_all();
        }
        let done = done.lock().map(|d| d.clone()).unwrap_or_default();
        let out: Vec<Attempted> = (0..pending.len())
            .map(|i| {
                done.get(i).cloned().flatten().unwrap_or_else(|| {
                    Attempted::failed(0, true, "still running when the callback budget ran out")
                })
            })
            .collect();
        let sent = out.iter().filter(|a| a.sent).count() as u64;
        self.sent.fetch_add(sent, Ordering::Relaxed);
        self.failed
            .fetch_add(out.len() as u64 - sent, Ordering::Relaxed);
        out
    }

    /// One callback, tried up to `tries` times before `end`.
    async fn send_one(&self, p: &Pending, end: Instant, tries: u32) -> Attempted {
        let host = host_of(&p.url);
        if self.cooling(&host) {
            return Attempted::failed(
                0,
                true,
                "not tried: its host timed out or refused a connection moments ago",
            );
        }
        let secret = match self.secret(&p.caller).await {
            Ok(secret) => secret,
            // Worth a later try: the operator may store the secret meanwhile.
            Err(reason) => return Attempted::failed(0, true, reason),
        };
        let Ok(body) = serde_json::to_vec(&p.body) else {
            return Attempted::failed(0, false, "the body could not be encoded");
        };
        let body = Bytes::from(body);
        let id = webhook_id(&p.body.id, p.body.status.as_str(), p.body.attempts);
        let mut calls = 0;
        for attempt in 1..=tries {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            calls += 1;
            let outcome = self
                .try_once(
                    p,
                    &secret,
                    &id,
                    &body,
                    p.tries + attempt,
                    left.min(self.settings.timeout),
                )
                .await;
            match verdict(&outcome) {
                Verdict::Sent => return Attempted::sent(calls),
                Verdict::GiveUp => {
                    return Attempted::failed(calls, false, "refused in a way no retry can change")
                }
                Verdict::HostDown => {
                    self.cool_down(host);
                    break;
                }
                Verdict::Again if attempt == tries => {
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
        Attempted::failed(calls, true, "not taken within this invocation")
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
                let body = record.body.as_deref();
                tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, status, attempt, duration_ms, error = %record.detail, body, "callback failed");
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

/// The trace event of a callback abandoned for good.
pub(super) fn abandon(p: &Pending, tries: u32, reason: &str) {
    let key = p.body.stream_key.as_deref();
    tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, attempt = tries, error = reason, detail = "abandoned", "callback abandoned");
}

/// The trace event of a callback queued for a later try.
pub(super) fn queued(p: &Pending, tries: u32, not_before: &str, reason: &str) {
    let key = p.body.stream_key.as_deref();
    tracing::warn!(target: "datasync_trace", event = "callback", id = %p.body.id, key, caller = %p.caller, attempt = tries, error = reason, not_before, detail = "queued", "callback queued");
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
