//! A retry budget per target host: failing retries are capped at a share of the host's first
//! attempts over a window (at least a few per window), so an outage cannot become a retry
//! storm. A retry that succeeds costs nothing: once the host recovers, its backlog drains at
//! full speed. Beyond the budget, a retry is not attempted; it waits for the schedule.
//!
//! A retry takes its place in the budget when it is let through (so that retries running at
//! once cannot all pass before the first fails) and gives it back when it succeeds or is not
//! made after all. A retry that finds every remaining place taken by retries still in flight
//! waits for one of them ([`Budget::must_wait`]) rather than being refused: only failed
//! retries spend the budget.

use std::time::Instant;

use crate::settings::BudgetSettings;

/// One host's budget, counted over tumbling windows.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    settings: BudgetSettings,
    window_start: Instant,
    /// First attempts (messages never attempted before) in the window.
    firsts: u32,
    /// Retries (messages attempted before) that failed in the window.
    failed: u32,
    /// Retries let through and not yet finished (kept across windows).
    in_flight: u32,
}

impl Budget {
    /// A fresh budget.
    pub(super) fn new(settings: BudgetSettings, now: Instant) -> Self {
        Self {
            settings,
            window_start: now,
            firsts: 0,
            failed: 0,
            in_flight: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= self.settings.window {
            self.window_start = now;
            self.firsts = 0;
            self.failed = 0;
        }
    }

    /// The failing retries this window allows.
    fn allowance(&self) -> u32 {
        let share = (self.settings.ratio * f64::from(self.firsts)).floor() as u32;
        share.max(self.settings.min_per_window)
    }

    /// Whether a retry may be attempted at `now`; if so, it takes its place in the budget.
    pub(super) fn take_retry(&mut self, now: Instant) -> bool {
        self.roll(now);
        let allowed = self.failed.saturating_add(self.in_flight) < self.allowance();
        if allowed {
            self.in_flight += 1;
        }
        allowed
    }

    /// Whether a retry at `now` should wait rather than be refused: the budget is not spent by
    /// failures, only taken by retries in flight, which give their places back as they end.
    pub(super) fn must_wait(&mut self, now: Instant) -> bool {
        self.roll(now);
        let allowance = self.allowance();
        self.failed < allowance
            && self.in_flight > 0
            && self.failed.saturating_add(self.in_flight) >= allowance
    }

    /// A retry that was let through gives its place back: it was not made after all.
    pub(super) fn give_back(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Records an attempt: a first attempt adds to the budget; a retry that succeeded gives its
    /// place back.
    pub(super) fn record(&mut self, retry: bool, failed: bool, now: Instant) {
        self.roll(now);
        if !retry {
            self.firsts = self.firsts.saturating_add(1);
            return;
        }
        self.give_back();
        if failed {
            self.failed = self.failed.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::Duration;

    use super::*;

    fn budget(now: Instant) -> Budget {
        Budget::new(
            BudgetSettings {
                ratio: 0.2,
                min_per_window: 2,
                window: Duration::from_secs(60),
            },
            now,
        )
    }

    #[test]
    fn failed_retries_are_capped_by_the_floor_then_by_the_share_of_first_attempts() {
        let t0 = Instant::now();
        let mut b = budget(t0);
        assert!(b.take_retry(t0));
        assert!(b.take_retry(t0), "taken before either failed");
        assert!(!b.take_retry(t0), "the floor of 2 is spent");
        b.record(true, true, t0);
        b.record(true, true, t0);
        assert!(!b.take_retry(t0), "failures do not give places back");
        // 20 first attempts allow 4 failing retries.
        for _ in 0..20 {
            b.record(false, true, t0);
        }
        assert!(b.take_retry(t0));
        assert!(b.take_retry(t0));
        assert!(!b.take_retry(t0));
        // One not made after all gives its place back.
        b.give_back();
        assert!(b.take_retry(t0));
    }

    #[test]
    fn successful_retries_cost_nothing() {
        let t0 = Instant::now();
        let mut b = budget(t0);
        for _ in 0..1000 {
            assert!(b.take_retry(t0));
            b.record(true, false, t0);
        }
    }

    #[test]
    fn a_new_window_starts_afresh() {
        let t0 = Instant::now();
        let mut b = budget(t0);
        assert!(b.take_retry(t0));
        assert!(b.take_retry(t0));
        b.record(true, true, t0);
        b.record(true, true, t0);
        assert!(!b.take_retry(t0 + Duration::from_secs(59)));
        assert!(b.take_retry(t0 + Duration::from_secs(60)));
    }

    #[test]
    fn a_retry_waits_for_places_taken_in_flight_but_not_for_spent_ones() {
        let t0 = Instant::now();
        let mut b = budget(t0);
        assert!(b.take_retry(t0));
        assert!(b.take_retry(t0));
        assert!(b.must_wait(t0), "both places are in flight: wait for one");
        b.record(true, false, t0);
        assert!(!b.must_wait(t0));
        assert!(b.take_retry(t0));
        b.record(true, true, t0);
        b.record(true, true, t0);
        assert!(
            !b.must_wait(t0),
            "spent by failures: refused, not kept waiting"
        );
        assert!(!b.take_retry(t0));
    }
}
