//! A circuit breaker per target host (after Envoy's outlier detection and Convoy's breaker):
//! closed, open after a failure pattern (failures in a row, or a failure share over at least a
//! minimum number of calls in a window), half-open after a cool-down with a few probes, closed
//! again when they succeed. While it is open the host's messages are not attempted.
//!
//! The state machine is pure: the caller passes `now`, so every path is tested on exact times.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::settings::BreakerSettings;

/// The most cool-downs one opening waits (Envoy's `max_ejection_time` is ten times its base
/// ejection time by default): with the default 30 s, a host that stays down is probed every
/// 5 minutes at the least.
const MAX_COOL_DOWNS: u32 = 10;

/// A breaker's state, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// No calls: the host failed; probes after the cool-down.
    Open,
    /// A few probe calls decide whether it closes or opens again.
    HalfOpen,
}

impl BreakerState {
    /// The state's name as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "halfOpen",
        }
    }
}

/// Whether a call may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// A normal call.
    Call,
    /// A half-open probe: its result closes or reopens the breaker.
    Probe,
    /// Not now: the breaker is open (or its probes are taken) until `until`.
    Reject {
        /// When a probe may go next.
        until: Instant,
    },
}

/// A state change, to be logged and announced once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transition {
    /// The state left.
    pub(super) from: BreakerState,
    /// The state entered.
    pub(super) to: BreakerState,
}

/// One host's breaker.
#[derive(Debug, Clone)]
pub(super) struct Breaker {
    settings: BreakerSettings,
    state: BreakerState,
    /// Failures in a row.
    consecutive: u32,
    /// Calls and failures in the current window, and when it began.
    calls: u32,
    failures: u32,
    window_start: Instant,
    /// When it last opened.
    opened_at: Instant,
    /// How many times it opened since it was last closed: each cool-down is that many times
    /// `cool_down` (at most [`MAX_COOL_DOWNS`] times), so a host that stays down is probed
    /// less and less often, as Envoy lengthens an ejection each time a host is ejected again.
    openings: u32,
    /// Probes handed out and not yet reported, and probes that succeeded.
    probes_out: u32,
    probes_ok: u32,
}

impl Breaker {
    /// A closed breaker.
    pub(super) fn new(settings: BreakerSettings, now: Instant) -> Self {
        Self {
            settings,
            state: BreakerState::Closed,
            consecutive: 0,
            calls: 0,
            failures: 0,
            window_start: now,
            opened_at: now,
            openings: 0,
            probes_out: 0,
            probes_ok: 0,
        }
    }

    /// The state at `now` (an open breaker whose cool-down is over reads as half-open).
    pub(super) fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            BreakerState::Open if now >= self.reopens_at() => BreakerState::HalfOpen,
            s => s,
        }
    }

    fn reopens_at(&self) -> Instant {
        self.opened_at + self.cool_down()
    }

    /// The current cool-down: `cool_down` times the openings in a row, capped.
    fn cool_down(&self) -> Duration {
        self.settings.cool_down * self.openings.clamp(1, MAX_COOL_DOWNS)
    }

    /// Whether a call may go at `now`, and the transition to half-open if the cool-down ended.
    pub(super) fn admit(&mut self, now: Instant) -> (Admission, Option<Transition>) {
        let mut change = None;
        if self.state == BreakerState::Open && now >= self.reopens_at() {
            change = self.enter(BreakerState::HalfOpen, now);
        }
        let admission = match self.state {
            BreakerState::Closed => Admission::Call,
            BreakerState::Open => Admission::Reject {
                until: self.reopens_at(),
            },
            BreakerState::HalfOpen => {
                if self.probes_out + self.probes_ok < self.settings.probes {
                    self.probes_out += 1;
                    Admission::Probe
                } else {
                    // The probes are out: the rest wait a cool-down (they are re-routed).
                    Admission::Reject {
                        until: now + self.cool_down(),
                    }
                }
            }
        };
        (admission, change)
    }

    /// Records a call's result (`failed`: a transport error, a timeout or a retryable status).
    pub(super) fn record(&mut self, probe: bool, failed: bool, now: Instant) -> Option<Transition> {
        self.record_weighted(probe, failed, 1, now)
    }

    /// Records a call that ran its whole allowance of its host's share without an answer. It
    /// counts as half of `consecutive_failures` (rounded up) failures in a row, so two such
    /// cuts in a row open the breaker: each cost a batch its wait, and a host that does not
    /// answer must not cost the batches behind it more than twice. In the failure share it
    /// counts once, as any failure.
    pub(super) fn record_cut(&mut self, probe: bool, now: Instant) -> Option<Transition> {
        let weight = self.settings.consecutive_failures.div_ceil(2).max(1);
        self.record_weighted(probe, true, weight, now)
    }

    fn record_weighted(
        &mut self,
        probe: bool,
        failed: bool,
        weight: u32,
        now: Instant,
    ) -> Option<Transition> {
        if probe {
            self.probes_out = self.probes_out.saturating_sub(1);
            if self.state != BreakerState::HalfOpen {
                return None;
            }
            if failed {
                return self.enter(BreakerState::Open, now);
            }
            self.probes_ok += 1;
            if self.probes_ok >= self.settings.probes {
                return self.enter(BreakerState::Closed, now);
            }
            return None;
        }
        if self.state != BreakerState::Closed {
            // A call admitted before the breaker opened: it changes nothing now.
            return None;
        }
        if now.saturating_duration_since(self.window_start) >= self.settings.window {
            self.calls = 0;
            self.failures = 0;
            self.window_start = now;
        }
        self.calls += 1;
        if failed {
            self.failures += 1;
            self.consecutive = self.consecutive.saturating_add(weight);
        } else {
            self.consecutive = 0;
        }
        let s = &self.settings;
        let in_a_row = s.consecutive_failures > 0 && self.consecutive >= s.consecutive_failures;
        let share = s.failure_ratio > 0.0
            && self.calls >= s.min_calls
            && f64::from(self.failures) >= s.failure_ratio * f64::from(self.calls);
        if in_a_row || share {
            return self.enter(BreakerState::Open, now);
        }
        None
    }

    /// A probe that was handed out but never made (its message's turn did not come).
    pub(super) fn forgo_probe(&mut self) {
        self.probes_out = self.probes_out.saturating_sub(1);
    }

    fn enter(&mut self, to: BreakerState, now: Instant) -> Option<Transition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        self.probes_out = 0;
        self.probes_ok = 0;
        match to {
            BreakerState::Open => {
                self.opened_at = now;
                self.openings = self.openings.saturating_add(1);
            }
            BreakerState::Closed => {
                self.openings = 0;
                self.consecutive = 0;
                self.calls = 0;
                self.failures = 0;
                self.window_start = now;
            }
            BreakerState::HalfOpen => {}
        }
        Some(Transition { from, to })
    }

    /// How long it has been in its state's cool-down, for reports: the time until probes.
    pub(super) fn probes_in(&self, now: Instant) -> Option<Duration> {
        (self.state == BreakerState::Open).then(|| self.reopens_at().saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            min_calls: 10,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
            probes: 2,
        }
    }

    #[test]
    fn failures_in_a_row_open_it_and_a_success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        assert_eq!(b.record(false, true, t0), None);
        assert_eq!(b.record(false, true, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record(false, true, t0), None);
        assert_eq!(b.record(false, true, t0), None);
        let t = b.record(false, true, t0).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(
            b.admit(t0 + Duration::from_secs(29)).0,
            Admission::Reject {
                until: t0 + Duration::from_secs(30)
            }
        );
        assert_eq!(b.probes_in(t0), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_failure_share_over_enough_calls_opens_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        // Alternating: never three in a row; 4 of 9 failed, and 9 calls are too few anyway.
        for i in 0..9 {
            assert_eq!(b.record(false, i % 2 == 1, t0), None, "call {i}");
        }
        // The tenth call makes ten calls, five failed: half.
        let t = b.record(false, true, t0).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
    }

    #[test]
    fn a_share_under_the_ratio_keeps_it_closed() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        // 4 of 10, never three in a row.
        for i in 0..10 {
            assert_eq!(b.record(false, i % 5 < 2, t0), None, "call {i}");
        }
        assert_eq!(b.state(t0), BreakerState::Closed);
    }

    #[test]
    fn the_window_forgets_old_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for i in 0..9 {
            b.record(false, i % 2 == 0, t0);
        }
        // A minute later the count starts again: one failure of one call is too few calls.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(b.record(false, true, later), None);
    }

    #[test]
    fn after_the_cool_down_probes_go_and_their_success_closes_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            b.record(false, true, t0);
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        let (a, change) = b.admit(t1);
        assert_eq!(a, Admission::Probe);
        assert_eq!(change.unwrap().to, BreakerState::HalfOpen);
        assert_eq!(b.admit(t1).0, Admission::Probe);
        // Two probes out: the rest wait.
        assert!(matches!(b.admit(t1).0, Admission::Reject { .. }));
        assert_eq!(b.record(true, false, t1), None);
        let t = b.record(true, false, t1).unwrap();
        assert_eq!(
            (t.from, t.to),
            (BreakerState::HalfOpen, BreakerState::Closed)
        );
        assert_eq!(b.admit(t1).0, Admission::Call);
        // Closed again, with a clean count.
        assert_eq!(b.record(false, true, t1), None);
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_another_cool_down() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            b.record(false, true, t0);
        }
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(b.admit(t1).0, Admission::Probe);
        let t = b.record(true, true, t1).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
        // Opened twice in a row: two cool-downs.
        assert_eq!(
            b.admit(t1 + Duration::from_secs(1)).0,
            Admission::Reject {
                until: t1 + Duration::from_secs(60)
            }
        );
        assert_eq!(b.probes_in(t1), Some(Duration::from_secs(60)));
        // Results of calls admitted before it opened change nothing.
        assert_eq!(b.record(false, false, t1), None);
        assert_eq!(b.state(t1), BreakerState::Open);
    }

    #[test]
    fn each_opening_in_a_row_waits_one_more_cool_down_up_to_ten_and_closing_resets_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(
            BreakerSettings {
                probes: 1,
                ..settings()
            },
            t0,
        );
        for _ in 0..3 {
            b.record(false, true, t0);
        }
        let mut t = t0;
        for openings in 1..=12u32 {
            let wait = Duration::from_secs(30) * openings.min(10);
            assert_eq!(b.probes_in(t), Some(wait), "opening {openings}");
            t += wait;
            assert_eq!(b.admit(t).0, Admission::Probe);
            b.record(true, true, t);
        }
        t += Duration::from_secs(300);
        assert_eq!(b.admit(t).0, Admission::Probe);
        assert_eq!(b.record(true, false, t).unwrap().to, BreakerState::Closed);
        for _ in 0..3 {
            b.record(false, true, t);
        }
        assert_eq!(b.probes_in(t), Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_forgone_probe_frees_its_place() {
        let t0 = Instant::now();
        let mut b = Breaker::new(
            BreakerSettings {
                probes: 1,
                ..settings()
            },
            t0,
        );
        for _ in 0..3 {
            b.record(false, true, t0);
        }
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.admit(t1).0, Admission::Probe);
        assert!(matches!(b.admit(t1).0, Admission::Reject { .. }));
        b.forgo_probe();
        assert_eq!(b.admit(t1).0, Admission::Probe);
    }

    #[test]
    fn two_cuts_in_a_row_open_it_and_an_answer_between_resets_the_count() {
        let t0 = Instant::now();
        for consecutive_failures in [1, 2, 3, 5, 8] {
            let s = BreakerSettings {
                consecutive_failures,
                failure_ratio: 0.0,
                ..settings()
            };
            let mut b = Breaker::new(s, t0);
            if consecutive_failures > 1 {
                assert_eq!(b.record_cut(false, t0), None, "{consecutive_failures}");
            }
            let t = b.record_cut(false, t0).unwrap();
            assert_eq!((t.from, t.to), (BreakerState::Closed, BreakerState::Open));
        }
        let mut b = Breaker::new(
            BreakerSettings {
                consecutive_failures: 5,
                ..settings()
            },
            t0,
        );
        assert_eq!(b.record_cut(false, t0), None);
        assert_eq!(b.record(false, false, t0), None);
        assert_eq!(b.record_cut(false, t0), None);
        // A cut and two plain failures: 3 + 2 of 5.
        assert_eq!(b.record(false, true, t0), None);
        assert!(b.record(false, true, t0).is_some());
    }

    #[test]
    fn a_cut_probe_opens_it_again() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        b.record_cut(false, t0);
        b.record_cut(false, t0);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(b.admit(t1).0, Admission::Probe);
        let t = b.record_cut(true, t1).unwrap();
        assert_eq!((t.from, t.to), (BreakerState::HalfOpen, BreakerState::Open));
    }

    #[test]
    fn zero_turns_a_trigger_off() {
        let t0 = Instant::now();
        let mut b = Breaker::new(
            BreakerSettings {
                consecutive_failures: 0,
                failure_ratio: 0.0,
                ..settings()
            },
            t0,
        );
        for _ in 0..100 {
            assert_eq!(b.record(false, true, t0), None);
            assert_eq!(b.record_cut(false, t0), None);
        }
    }
}
