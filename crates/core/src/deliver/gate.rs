//! The isolation hooks of an attempt (`docs/isolation.md`): before a call, its host's pause,
//! retry budget and circuit breaker decide whether it goes, and its host's share of the
//! batch's time bounds when it must end; after it, the host learns from its result. A message
//! that may not go is a retryable failure, not attempted, so it is re-routed (and its key's
//! followers held behind it) like any other.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::classify::{
    retry_or_exhaust, AttemptContext, AttemptOutcome, ErrorClass, RetryAfter, Rules,
    TransportFailure,
};
use crate::message::Envelope;
use crate::target::AttemptRecord;

use super::breaker::Admission;
use super::concurrency::Signal;
use super::hosts::{Host, Hosts, Recorded};
use super::outcome::{Cause, Failure};
use super::prepare::Prepared;

/// A call may run this many times its host's mean latency (within a quarter of the host's
/// share and the share) before it is cut.
const CALL_LATENCIES: u32 = 16;

/// A call allowed to go, and what its host needs to learn from it.
#[derive(Debug)]
pub(super) struct Pass {
    pub(super) host: Arc<Host>,
    pub(super) probe: bool,
    pub(super) retry: bool,
    pub(super) share: Share,
}

/// A host's share of one batch's time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    /// When it ends: no call to the host starts after it, and calls still running are cut.
    pub(super) end: Instant,
    /// How long one call may run (its allowance).
    pub(super) per_call: Duration,
    /// The whole share: the most an allowance may grow to.
    pub(super) most: Duration,
}

impl Share {
    /// When a call starting now must end.
    pub(super) fn cut_at(&self, now: Instant) -> Instant {
        self.end.min(now + self.per_call)
    }

    /// Whether a call starting at `started` may run its whole allowance (rather than being
    /// cut short by the end of the share).
    pub(super) fn whole_allowance(&self, started: Instant) -> bool {
        started + self.per_call <= self.end
    }
}

/// A call cut by its host's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cut {
    /// It ran its whole allowance without an answer (rather than being cut short by the end
    /// of the share, which says less about the host).
    pub(super) whole_allowance: bool,
}

/// `host`'s share of the batch that started at `started`. In all, the host's calls may take
/// `host_time_share_ms` (or the host override's timeout when longer) from the start of the
/// batch; one call may take its [`allowance`].
pub(super) fn share(hosts: &Hosts, host: &Host, prepared: &Prepared, started: Instant) -> Share {
    let most = hosts
        .settings()
        .host_time_share
        .max(prepared.timeout_override.unwrap_or_default());
    let learns = !hosts.settings().breaker.cuts_open();
    Share {
        end: started + most,
        per_call: allowance(host.mean_latency(), host.cut_floor(), learns, most),
        most,
    }
}

/// How long one call to a host may run, out of its share `most`: [`CALL_LATENCIES`] times its
/// mean latency, at least a quarter of the share and at most all of it. A host that has not
/// answered yet gets the quarter, as a fast host does: a host that never answers then costs a
/// batch a quarter of the share, not all of it, and two such cuts open its breaker.
///
/// When `learns` (a half-open probe, or any call while cuts cannot open the breaker), the
/// allowance is also at least twice `floor`, the longest a call to the host ran before it was
/// cut since it last answered (a lower bound of its latency), up to the share: a host that
/// answers slowly but surely earns the time it needs over a few cuts.
pub(super) fn allowance(
    mean: Option<Duration>,
    floor: Option<Duration>,
    learns: bool,
    most: Duration,
) -> Duration {
    let least = most / 4;
    let by_mean = mean.map_or(least, |m| (m * CALL_LATENCIES).clamp(least, most));
    match floor {
        Some(f) if learns => by_mean.max((f * 2).min(most)),
        _ => by_mean,
    }
}

/// Waits for the end of the host's pause (`Retry-After`, `RateLimit-*`) when it comes before
/// `start_by`; otherwise the message is re-routed untried to wait for it.
pub(super) async fn await_pause(
    host: &Host,
    envelope: &Envelope,
    rules: &Rules,
    start_by: Instant,
) -> Result<(), Failure> {
    if let Some(until) = host.paused_until(Instant::now()) {
        if until >= start_by {
            return Err(untried(
                ErrorClass::TooManyRequests,
                envelope,
                rules,
                Some(until),
                "not attempted: the host asked for a pause (Retry-After or RateLimit)",
            ));
        }
        tokio::time::sleep_until(until.into()).await;
    }
    Ok(())
}

/// Waits (until `start_by` at most) while the host's retry budget is taken only by retries
/// still in flight: they give their places back as they succeed, so a recovered host's backlog
/// is not refused for want of places that free up within a round trip.
pub(super) async fn await_retry_place(host: &Host, start_by: Instant) {
    while host.retry_must_wait(Instant::now()) && Instant::now() < start_by {
        tokio::time::sleep(RETRY_PLACE_POLL).await;
    }
}

/// How often a waiting retry looks for a free budget place.
const RETRY_PLACE_POLL: Duration = Duration::from_millis(5);

/// Decides whether the message may be attempted now that it has its turn: its host's retry
/// budget, then its breaker (announcing a change). Asked after the turn, so that messages
/// waiting for the host's slots see the failures of those before them.
pub(super) fn admit(
    hosts: &Hosts,
    host: Arc<Host>,
    envelope: &Envelope,
    rules: &Rules,
    share: Share,
) -> Result<Pass, Failure> {
    let now = Instant::now();
    let retry = envelope.attempt > 0;
    if retry && !host.take_retry(now) {
        return Err(untried(
            ErrorClass::ServiceUnavailable,
            envelope,
            rules,
            None,
            "not attempted: the host's retry budget is spent; waiting for the schedule",
        ));
    }
    let (admission, change) = host.admit(now);
    if let Some(change) = change {
        hosts.announce(host.name(), change);
    }
    let mut share = share;
    let probe = match admission {
        Admission::Call => false,
        Admission::Probe => {
            // A probe learns: it may run twice as long as the calls cut before it.
            share.per_call = allowance(host.mean_latency(), host.cut_floor(), true, share.most);
            true
        }
        Admission::Reject { until } => {
            host.forgo(false, retry);
            return Err(untried(
                ErrorClass::ServiceUnavailable,
                envelope,
                rules,
                Some(until),
                "not attempted: the host's circuit breaker is open",
            ));
        }
    };
    Ok(Pass {
        host,
        probe,
        retry,
        share,
    })
}

/// A message whose call could not start before `start_by`: `slow` when its host's share
/// ended first, else `deadline`.
pub(super) fn too_late(share_bound: bool, envelope: &Envelope, rules: &Rules) -> Option<Failure> {
    share_bound.then(|| {
        untried(
            ErrorClass::Slow,
            envelope,
            rules,
            None,
            "not attempted: its host's share of the batch's time ran out",
        )
    })
}

/// A call cut at the end of its host's share: retryable with class `slow` (an attempt).
pub(super) fn cut(envelope: &Envelope, rules: &Rules) -> Failure {
    let ctx = context(envelope, envelope.attempt.saturating_add(1));
    let cause = Cause::Unreachable {
        detail: "cancelled: did not finish within its host's share of the batch's time".into(),
    };
    Failure::decided(
        retry_or_exhaust(ErrorClass::Slow, None, &ctx, rules),
        cause.clone(),
    )
    .unwrap_or_else(|| Failure::permanent(ErrorClass::Slow, cause))
}

/// What a finished call teaches its host; announces a breaker change it causes. Returns how
/// long the call should keep its place under the host's limit: a call answered "back off" (429,
/// 503, a timeout) faster than the host's mean round trip keeps it for the rest of that round
/// trip, so a host that throttles quickly gets at most its limit of calls per round trip rather
/// than a stream of calls that are refused at once.
pub(super) fn observe(
    hosts: &Hosts,
    pass: &Pass,
    record: &AttemptRecord,
    cut: Option<Cut>,
    rules: &Rules,
) -> Duration {
    let now = Instant::now();
    let (failed, signal) = match record.outcome {
        AttemptOutcome::Status {
            status,
            retry_after,
        } => {
            if let Some(asked) = retry_after {
                let delay = match asked {
                    RetryAfter::Delay(d) => d,
                    RetryAfter::At(t) => t.duration_since(SystemTime::now()).unwrap_or_default(),
                };
                pass.host.pause(delay.min(rules.max_delay), now);
            }
            let failed = status != 429 && rules.retry_statuses.contains(status);
            let signal = if status == 429 || status == 503 {
                Signal::BackOff
            } else {
                Signal::Answered(record.latency)
            };
            (failed, signal)
        }
        AttemptOutcome::Transport(TransportFailure::Timeout) => (true, Signal::BackOff),
        AttemptOutcome::Transport(TransportFailure::Connect | TransportFailure::Reset) => {
            (true, Signal::Neutral)
        }
        AttemptOutcome::Transport(_) => (false, Signal::Neutral),
    };
    let recorded = Recorded {
        probe: pass.probe,
        retry: pass.retry,
        failed,
        signal,
        answered: matches!(record.outcome, AttemptOutcome::Status { .. }),
        cut,
        latency: record.latency,
    };
    let backed_off = matches!(recorded.signal, Signal::BackOff);
    if let Some(change) = pass.host.record(recorded, now) {
        hosts.announce(pass.host.name(), change);
    }
    match pass.host.mean_latency() {
        Some(mean) if backed_off => mean.saturating_sub(record.latency).min(MAX_HOLD),
        _ => Duration::ZERO,
    }
}

/// The longest a backed-off call keeps its place (a slow host's round trip can be seconds).
const MAX_HOLD: Duration = Duration::from_secs(1);

/// The classifier's view of `envelope` now, as its attempt number `attempts`, before any token
/// was used (callers that used one say so).
pub(super) fn context(envelope: &Envelope, attempts: u32) -> AttemptContext {
    let now = SystemTime::now();
    AttemptContext {
        attempts,
        received_at: envelope
            .received_at()
            .or_else(|| envelope.first_failed_at())
            .unwrap_or(now),
        now,
        used_secret: false,
        secret_refreshed: false,
        jitter: rand::random::<f64>(),
    }
}

/// A retryable failure of `class` found before any call, to be tried again no earlier than
/// `until` (else after the usual backoff), or exhausted when out of bounds.
fn untried(
    class: ErrorClass,
    envelope: &Envelope,
    rules: &Rules,
    until: Option<Instant>,
    detail: &str,
) -> Failure {
    let ctx = context(envelope, envelope.attempt);
    let asked = until.map(|u| {
        RetryAfter::Delay(
            u.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        )
    });
    let cause = Cause::NotAttempted {
        detail: detail.to_owned(),
    };
    Failure::decided(retry_or_exhaust(class, asked, &ctx, rules), cause.clone())
        .unwrap_or_else(|| Failure::permanent(class, cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARE: Duration = Duration::from_secs(5);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_host_that_never_answered_gets_a_quarter_of_the_share() {
        assert_eq!(allowance(None, None, false, SHARE), ms(1250));
        assert_eq!(allowance(None, None, true, SHARE), ms(1250));
    }

    #[test]
    fn a_host_that_answered_gets_sixteen_mean_latencies_within_the_quarter_and_the_share() {
        assert_eq!(allowance(Some(ms(20)), None, false, SHARE), ms(1250));
        assert_eq!(allowance(Some(ms(100)), None, false, SHARE), ms(1600));
        assert_eq!(allowance(Some(ms(2000)), None, false, SHARE), SHARE);
    }

    #[test]
    fn only_a_learning_call_grows_from_the_cuts_doubling_up_to_the_share() {
        // A normal call keeps the allowance: a hung host costs a batch a quarter each time.
        assert_eq!(allowance(None, Some(ms(1250)), false, SHARE), ms(1250));
        // A probe gets twice the longest cut: a host answering in 2 s is reached by the
        // first probe after one cut.
        assert_eq!(allowance(None, Some(ms(1250)), true, SHARE), ms(2500));
        assert_eq!(allowance(None, Some(ms(2500)), true, SHARE), SHARE);
        assert_eq!(allowance(None, Some(ms(4000)), true, SHARE), SHARE);
        // A cut shorter than the allowance (the share ended first) does not shrink it.
        assert_eq!(
            allowance(Some(ms(100)), Some(ms(300)), true, SHARE),
            ms(1600)
        );
    }

    #[test]
    fn a_call_starting_late_is_cut_short_by_the_end_of_the_share() {
        let t0 = Instant::now();
        let share = Share {
            end: t0 + SHARE,
            per_call: ms(1250),
            most: SHARE,
        };
        assert!(share.whole_allowance(t0));
        assert!(share.whole_allowance(t0 + ms(3750)));
        assert!(!share.whole_allowance(t0 + ms(4000)));
        assert_eq!(share.cut_at(t0 + ms(4000)), t0 + SHARE);
        assert_eq!(share.cut_at(t0), t0 + ms(1250));
    }
}
