//! The third stage: one message's attempt. Its call is prepared, waits for its host's turn
//! (or for the deadline), carries the Vault token (fetched again once on 401/403), and its
//! result is classified into a [`Fate`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::classify::{
    classify, retry_or_exhaust, AttemptContext, AttemptOutcome, Decision, ErrorClass, Rules,
    TransportFailure,
};
use crate::message::{is_valid_traceparent, new_traceparent, Envelope};
use crate::metrics::Metrics;
use crate::oci::notifications::NotificationsClient;
use crate::sealed_cache::SealedCache;
use crate::secret_cache::{SecretCache, SecretError};
use crate::settings::Settings;
use crate::target::{AttemptRecord, TargetCall, TargetClient};
use crate::trace::{emit, snippet, TraceEvent, TraceKind};

use super::gate::{self, Pass};
use super::hosts::{HostHealth, Hosts};
use super::item::{Body, Item};
use super::limits::Limits;
use super::outcome::{Cause, Failure, Fate};
use super::prepare::{encode_body, prepare, Prepared};
use super::routed::CurrentRoutes;

/// An invocation's time: calls start only while they can finish before the deadline with
/// time left to write the failures.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    /// When delivery of the batch started (the hosts' time shares count from it).
    started: Instant,
    deadline: Instant,
    /// The whole time from the start of delivery to the deadline.
    budget: Duration,
}

impl Window {
    /// The window from now to `deadline`.
    pub(super) fn until(deadline: Instant) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline,
            budget: deadline.saturating_duration_since(started),
        }
    }

    /// The time kept free before the deadline for writing the failures.
    fn reserve(&self) -> Duration {
        routing_reserve(self.budget)
    }

    /// The last moment a call with `timeout` may start.
    fn start_by(&self, timeout: Duration) -> Instant {
        let margin = (timeout + self.reserve()).min(self.budget / 2);
        self.deadline.checked_sub(margin).unwrap_or(self.deadline)
    }

    /// The timeout of a call starting now: `timeout`, shortened to end before the reserve.
    fn call_timeout(&self, timeout: Duration) -> Duration {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        timeout
            .min(remaining.saturating_sub(self.reserve()))
            .max(Duration::from_millis(10))
    }
}

/// The time kept free before the deadline for writing the failures.
fn routing_reserve(budget: Duration) -> Duration {
    Duration::from_secs(2).min(budget / 4)
}

/// What attempts need: the rules, the target caller, the Vault tokens and the limits.
#[derive(Debug)]
pub(super) struct Attempts {
    pub(super) settings: Arc<Settings>,
    target: TargetClient,
    pub(super) secrets: SecretCache,
    sealed: Option<SealedCache>,
    limits: Limits,
    hosts: Hosts,
    pub(super) metrics: Metrics,
    /// The routes routed messages are delivered by (issue 21), refreshed once per batch.
    routes: std::sync::RwLock<CurrentRoutes>,
}

impl Attempts {
    pub(super) fn new(
        settings: Arc<Settings>,
        target: TargetClient,
        secrets: SecretCache,
        sealed: Option<SealedCache>,
        notifications: NotificationsClient,
        metrics: Metrics,
    ) -> Self {
        Self {
            metrics,
            limits: Limits::new(settings.max_concurrency),
            hosts: Hosts::new(&settings, notifications),
            settings,
            target,
            secrets,
            sealed,
            routes: std::sync::RwLock::new(Ok(crate::routes::RouteSet::default())),
        }
    }

    /// The routes now (a shared snapshot).
    fn routes(&self) -> CurrentRoutes {
        self.routes
            .read()
            .map_or_else(|p| p.into_inner().clone(), |r| r.clone())
    }

    /// Replaces the routes (once per batch, from the routes object).
    pub(super) fn set_routes(&self, routes: CurrentRoutes) {
        match self.routes.write() {
            Ok(mut r) => *r = routes,
            Err(p) => *p.into_inner() = routes,
        }
    }

    /// The message's token: its sealed token decrypted, else the secret `name` read from
    /// Vault. Returns whether it can be fetched again after a 401/403 (a sealed token cannot).
    async fn token(
        &self,
        name: &str,
        envelope: &Envelope,
    ) -> Result<(http::HeaderValue, bool), SecretError> {
        match (&envelope.sealed_token, &self.sealed) {
            (Some(sealed), Some(cache)) => Ok((cache.open(name, sealed).await?, false)),
            (Some(_), None) => Err(SecretError::NoCrypto),
            (None, _) => Ok((self.secrets.get(name).await?, true)),
        }
    }

    /// Attempts `item` once (twice when its token is refreshed). Never fails: every problem
    /// is a fate.
    pub(super) async fn attempt(&self, item: &Item, window: Window) -> Fate {
        let (envelope, encoded) = match &item.body {
            Body::Envelope(e) => (&**e, None),
            Body::Encoded { envelope, base64 } => (&**envelope, Some(base64)),
            Body::Undecodable { error, .. } => {
                return Fate::Failed(Failure::permanent(
                    ErrorClass::Invalid,
                    Cause::Unexpected {
                        detail: error.clone(),
                    },
                ))
            }
        };
        let routes = match envelope.route {
            Some(_) => self.routes(),
            None => Ok(crate::routes::RouteSet::default()),
        };
        let prepared = match prepare(&self.settings, &routes, envelope) {
            Ok(p) => p,
            Err(f) => return Fate::Failed(f),
        };
        let host = self.hosts.get(&prepared.host, prepared.host_limit);
        let share = gate::share(&self.hosts, &host, &prepared, window.started);
        let deadline_start_by = window.start_by(prepared.timeout);
        let start_by = deadline_start_by.min(share.end);
        let late = || {
            gate::too_late(share.end < deadline_start_by, envelope, &prepared.rules)
                .unwrap_or_else(|| deadline_failure(envelope, &prepared.rules))
        };
        if Instant::now() >= start_by {
            return Fate::Failed(late());
        }
        let rules = &prepared.rules;
        if let Err(f) = gate::await_pause(&host, envelope, rules, start_by).await {
            return Fate::Failed(f);
        }
        if envelope.attempt > 0 {
            gate::await_retry_place(&host, start_by).await;
        }
        let Some(_turn) = self.limits.turn(&host.adaptive, start_by).await else {
            return Fate::Failed(late());
        };
        let pass = match gate::admit(&self.hosts, host, envelope, rules, share) {
            Ok(p) => p,
            Err(f) => return Fate::Failed(f),
        };
        let body = match &prepared.routed_body {
            Some(body) => Ok(body.clone()),
            None => encode_body(&prepared.method, envelope, encoded),
        };
        let body = match body {
            Ok(b) => b,
            Err(f) => {
                pass.host.forgo(pass.probe, pass.retry);
                return Fate::Failed(f);
            }
        };
        let call = Call {
            id: &item.id,
            key: item.key.as_deref(),
            envelope,
            prepared: &prepared,
            body,
        };
        self.call(call, window, &pass).await
    }

    /// Every target host's health in this instance.
    pub(super) fn hosts(&self) -> Vec<HostHealth> {
        self.hosts.report()
    }

    /// Calls the target, with the token when the message names a secret; on 401/403, fetches
    /// the token again and calls once more.
    async fn call(&self, call: Call<'_>, window: Window, pass: &Pass) -> Fate {
        let Call {
            id,
            key,
            envelope,
            prepared,
            body,
        } = call;
        // The Vault and target calls are boxed: their futures are large, and every message of
        // a batch waits in its own task, which would otherwise reserve that size from the start.
        let mut token = None;
        // A sealed token is the one the message was sent with: nothing newer to fetch.
        let mut refreshed = false;
        if let Some(name) = &prepared.secret {
            match Box::pin(self.token(name, envelope)).await {
                Ok((t, refreshable)) => {
                    token = Some(t);
                    refreshed = !refreshable;
                }
                Err(e) => {
                    pass.host.forgo(pass.probe, pass.retry);
                    return Fate::Failed(secret_failure(&e, envelope, &prepared.rules));
                }
            }
        }
        let traceparent = envelope
            .traceparent
            .clone()
            .filter(|t| is_valid_traceparent(t))
            .unwrap_or_else(new_traceparent);
        loop {
            // The call ends with its host's share of the batch, when that comes first.
            let timeout = window.call_timeout(prepared.timeout);
            let now = Instant::now();
            let share_left = pass.share.cut_at(now).saturating_duration_since(now);
            let cut_by_share = share_left < timeout;
            let target_call = TargetCall {
                method: prepared.method.clone(),
                url: &prepared.url,
                body: body.clone(),
                headers: &prepared.headers,
                secret: token.as_ref().map(|t| (&prepared.secret_header, t)),
                idempotency_key: id,
                traceparent: Some(&traceparent),
                timeout: Some(timeout.min(share_left).max(Duration::from_millis(1))),
            };
            let record = Box::pin(self.target.call(&target_call)).await;
            let cut = (cut_by_share
                && record.outcome == AttemptOutcome::Transport(TransportFailure::Timeout))
            .then(|| gate::Cut {
                whole_allowance: pass.share.whole_allowance(now),
            });
            let hold = gate::observe(&self.hosts, pass, &record, cut, &prepared.rules);
            if !hold.is_zero() {
                // Keeps the host's place (the caller's turn) for the rest of the round trip.
                tokio::time::sleep(hold.min(window.call_timeout(hold))).await;
            }
            if cut.is_some() {
                return Fate::Failed(gate::cut(envelope, &prepared.rules));
            }
            let ctx = AttemptContext {
                used_secret: token.is_some(),
                secret_refreshed: refreshed,
                ..gate::context(envelope, envelope.attempt.saturating_add(1))
            };
            let decision = classify(record.outcome, &ctx, &prepared.rules);
            let delivered = decision == Decision::Delivered;
            self.metrics
                .target_call(&prepared.host, record.latency, delivered);
            if delivered {
                self.metrics
                    .delivered(&prepared.host, None, envelope.received_at());
            }
            trace_attempt(&call_facts(id, key, envelope, prepared), &record, &decision);
            if decision == Decision::RefreshSecretAndRetry {
                if let (Some(name), Some(stale)) = (&prepared.secret, &token) {
                    refreshed = true;
                    match Box::pin(self.secrets.refresh(name, stale)).await {
                        Ok(t) => {
                            token = Some(t);
                            continue;
                        }
                        Err(e) => {
                            return Fate::Failed(secret_failure(&e, envelope, &prepared.rules))
                        }
                    }
                }
            }
            let cause = Cause::of_call(&record.outcome, record.detail);
            let status = cause.status();
            return match Failure::decided(decision, cause) {
                Some(f) => Fate::Failed(f),
                None => Fate::Delivered {
                    status: status.unwrap_or(200),
                },
            };
        }
    }
}

/// A prepared call, its body encoded.
struct Call<'a> {
    id: &'a str,
    key: Option<&'a [u8]>,
    envelope: &'a Envelope,
    prepared: &'a Prepared,
    body: Option<Bytes>,
}

/// The trace line of one call's facts: the message, its host and the attempt's number.
fn call_facts(
    id: &str,
    key: Option<&[u8]>,
    envelope: &Envelope,
    prepared: &Prepared,
) -> TraceEvent {
    let mut event = TraceEvent::new(TraceKind::Attempt, id).key(key);
    event.target_host = Some(prepared.host.clone());
    event.attempt = Some(envelope.attempt.saturating_add(1));
    event
}

/// Emits the trace line of a call: its status or transport error, its class and its
/// duration. A call that delivered is the message's `delivered` line (class `ok`): its final
/// outcome and its last attempt are one line.
fn trace_attempt(event: &TraceEvent, record: &AttemptRecord, decision: &Decision) {
    let mut event = event.clone().duration(record.latency);
    if *decision == Decision::Delivered {
        event.event = TraceKind::Delivered;
    }
    match record.outcome {
        AttemptOutcome::Status { status, .. } => {
            event.status = Some(status);
            // Only ever set for an answer other than 2xx (`TargetClient::call`).
            event.body = record.body.clone();
        }
        AttemptOutcome::Transport(_) => event.error = Some(snippet(&record.detail)),
    }
    event.class = Some(match decision {
        Decision::Delivered => "ok".to_owned(),
        Decision::RefreshSecretAndRetry => ErrorClass::Unauthorized.as_str().to_owned(),
        Decision::Retry { class, .. } | Decision::Permanent { class, .. } => {
            class.as_str().to_owned()
        }
    });
    if let Decision::Retry { not_before, .. } = decision {
        event = event.not_before(Some(*not_before));
    }
    emit(&event);
}

/// A failure of retryable `class` found before any call: to be retried later, or exhausted
/// when the bounds are reached.
fn not_attempted(class: ErrorClass, ctx: &AttemptContext, rules: &Rules, detail: &str) -> Failure {
    let cause = Cause::NotAttempted {
        detail: detail.to_owned(),
    };
    // `retry_or_exhaust` never answers Delivered: the fallback is never taken.
    Failure::decided(retry_or_exhaust(class, None, ctx, rules), cause.clone())
        .unwrap_or_else(|| Failure::permanent(class, cause))
}

/// The deadline came before the message's turn: re-routed untried with class `deadline`
/// (which never counts against the attempt bound, only against the age bound).
fn deadline_failure(envelope: &Envelope, rules: &Rules) -> Failure {
    let now = SystemTime::now();
    let ctx = AttemptContext {
        attempts: envelope.attempt,
        received_at: envelope
            .received_at()
            .or_else(|| envelope.first_failed_at())
            .unwrap_or(now),
        now,
        used_secret: false,
        secret_refreshed: false,
        jitter: 0.0,
    };
    not_attempted(
        ErrorClass::Deadline,
        &ctx,
        rules,
        "not attempted: the function's deadline was near",
    )
}

/// The message's token could not be had. Vault throttled or unavailable: retried as
/// `retryableStatus`. Vault or Key Management answering 404/403 (a missing or
/// still-propagating policy, a secret still `CREATING`): retried as `secretUnavailable`, with a
/// log line naming the policy to check. Anything else: permanent.
fn secret_failure(e: &SecretError, envelope: &Envelope, rules: &Rules) -> Failure {
    let ctx = gate::context(envelope, envelope.attempt.max(1));
    if e.is_retryable() {
        // Not the message's fault: re-routed untried to the default error stream.
        return not_attempted(
            ErrorClass::RetryableStatus,
            &ctx,
            rules,
            "the vault could not be read; not attempted",
        );
    }
    if let Some(status) = e.denied_status() {
        let policy = e.policy_to_check();
        tracing::warn!(
            id = envelope.id.as_deref().unwrap_or_default(),
            status,
            policy,
            "the message's token could not be had (Vault answered {status}): check that the \
             policy `{policy}` exists for the functions' dynamic group and matches, and that the \
             secret exists; retried until max_message_age_seconds"
        );
        let detail = format!(
            "the token could not be had (Vault answered {status}; check the policy `{policy}`); not attempted"
        );
        return not_attempted(ErrorClass::SecretUnavailable, &ctx, rules, &detail);
    }
    // The status says what went wrong; the name is not repeated.
    let detail = match e {
        SecretError::Oci(oci) => match oci.status() {
            Some(s) => format!("the secret could not be read (Vault answered {s})"),
            None => "the secret could not be read".to_owned(),
        },
        other => other.to_string(),
    };
    Failure::permanent(
        ErrorClass::SecretUnavailable,
        Cause::NotAttempted { detail },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_routing_reserve_is_bounded() {
        assert_eq!(
            routing_reserve(Duration::from_secs(30)),
            Duration::from_secs(2)
        );
        assert_eq!(
            routing_reserve(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_deadline_failure_waits_or_is_exhausted_by_age() {
        let rules = Rules::default();
        let envelope = Envelope::decode(
            br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","attempt":30}"#,
        )
        .unwrap();
        // Attempts do not exhaust a deadline re-route.
        let f = deadline_failure(&envelope, &rules);
        assert_eq!(f.class(), Some(ErrorClass::Deadline));
        assert!(!f.cause().unwrap().tried());
        // Age does.
        let old = Envelope::decode(
            br#"{"targetRestApi":"https://a.example/x","targetRestApiOperation":"POST","receivedAt":"2001-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let f = deadline_failure(&old, &rules);
        assert_eq!(
            f,
            Failure::exhausted(ErrorClass::Deadline, f.cause().unwrap().clone())
        );
        assert_eq!(
            f.detail().as_deref(),
            Some("not attempted: the function's deadline was near (out of attempts or age after deadline)")
        );
    }
}
