//! Adaptive concurrency per target host, as Vector's adaptive request concurrency does:
//! additive increase while the host keeps up at the limit, multiplicative decrease on a
//! throttling or failing answer (429, 503, a timeout) or a latency far above its running mean,
//! within `[1, max]`. It starts at `max`, so a healthy host runs as fast as before.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The factor a back-off signal multiplies the limit by.
const DECREASE: f64 = 0.9;
/// How much the running mean latency moves towards each new sample.
const MEAN_WEIGHT: f64 = 0.1;
/// A latency above `LATENCY_FACTOR` x the mean, plus [`LATENCY_SLACK`], is a back-off signal
/// (the slack keeps a fast host's jitter from counting).
const LATENCY_FACTOR: f64 = 3.0;
const LATENCY_SLACK: Duration = Duration::from_millis(50);

/// What a finished call says about the host's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Signal {
    /// It answered (not a back-off status), in this time.
    Answered(Duration),
    /// It asked to slow down (429, 503) or did not answer in time.
    BackOff,
    /// Nothing to learn (not made, or an error that says nothing about load).
    Neutral,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    /// Running mean latency of answered calls, in seconds.
    mean: Option<f64>,
    last_decrease: Option<Instant>,
}

/// One host's adaptive limit.
#[derive(Debug)]
pub(super) struct Adaptive {
    max: usize,
    state: Mutex<State>,
    freed: Notify,
}

/// A call's place under its host's limit, given back when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    adaptive: Arc<Adaptive>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.adaptive.lock().in_flight -= 1;
        self.adaptive.freed.notify_one();
    }
}

impl Adaptive {
    /// A limit starting at (and never above) `max`.
    pub(super) fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(State {
                limit: max as f64,
                in_flight: 0,
                mean: None,
                last_decrease: None,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while it was held cannot leave it inconsistent beyond a count.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit (whole calls).
    pub(super) fn limit(&self) -> usize {
        (self.lock().limit.floor() as usize).clamp(1, self.max)
    }

    /// The running mean latency of answered calls, once there is one.
    pub(super) fn mean_latency(&self) -> Option<Duration> {
        self.lock().mean.map(Duration::from_secs_f64)
    }

    /// Waits for a place under the limit.
    pub(super) async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut s = self.lock();
                let limit = (s.limit.floor() as usize).clamp(1, self.max);
                if s.in_flight < limit {
                    s.in_flight += 1;
                    return Slot {
                        adaptive: Arc::clone(self),
                    };
                }
            }
            freed.await;
        }
    }

    /// Learns from a finished call.
    pub(super) fn observe(&self, signal: Signal, now: Instant) {
        let mut s = self.lock();
        match signal {
            Signal::Neutral => {}
            Signal::Answered(latency) => {
                let secs = latency.as_secs_f64();
                let slow = s
                    .mean
                    .is_some_and(|m| secs > m * LATENCY_FACTOR + LATENCY_SLACK.as_secs_f64());
                s.mean = Some(match s.mean {
                    Some(m) => m + (secs - m) * MEAN_WEIGHT,
                    None => secs,
                });
                if slow {
                    decrease(&mut s, now);
                } else if s.in_flight + 1 >= s.limit.floor() as usize {
                    // Busy up to its limit and keeping up: one more per `limit` answers.
                    let grown = s.limit + 1.0 / s.limit.max(1.0);
                    let before = s.limit.floor();
                    s.limit = grown.min(self.max as f64);
                    if s.limit.floor() > before {
                        drop(s);
                        self.freed.notify_one();
                    }
                }
            }
            Signal::BackOff => decrease(&mut s, now),
        }
    }
}

/// Multiplies the limit by [`DECREASE`], at most once per mean latency (the answers of one
/// round trip share one cause).
fn decrease(s: &mut State, now: Instant) {
    let spacing = Duration::from_secs_f64(s.mean.unwrap_or(0.0)).max(Duration::from_millis(10));
    if s.last_decrease
        .is_some_and(|t| now.saturating_duration_since(t) < spacing)
    {
        return;
    }
    s.last_decrease = Some(now);
    s.limit = (s.limit * DECREASE).max(1.0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn back_off_signals_shrink_it_to_one_at_most_once_per_round_trip() {
        let a = Arc::new(Adaptive::new(10));
        let t0 = Instant::now();
        a.observe(Signal::Answered(Duration::from_millis(100)), t0);
        a.observe(Signal::BackOff, t0);
        assert_eq!(a.limit(), 9);
        // The same round trip: ignored.
        a.observe(Signal::BackOff, t0 + Duration::from_millis(50));
        assert_eq!(a.limit(), 9);
        let mut t = t0;
        for _ in 0..100 {
            t += Duration::from_millis(200);
            a.observe(Signal::BackOff, t);
        }
        assert_eq!(a.limit(), 1);
    }

    #[tokio::test]
    async fn answers_at_the_limit_grow_it_back_to_the_max() {
        let a = Arc::new(Adaptive::new(4));
        let t0 = Instant::now();
        let mut t = t0;
        for _ in 0..20 {
            t += Duration::from_millis(20);
            a.observe(Signal::BackOff, t);
        }
        assert_eq!(a.limit(), 1);
        // One call in flight at a limit of one: each answer adds 1/limit.
        let slot = a.acquire().await;
        for _ in 0..100 {
            a.observe(Signal::Answered(Duration::from_millis(5)), t);
        }
        drop(slot);
        assert!(a.limit() >= 2, "{}", a.limit());
        let slots: Vec<Slot> = futures_slots(&a, a.limit()).await;
        for _ in 0..100 {
            a.observe(Signal::Answered(Duration::from_millis(5)), t);
        }
        drop(slots);
        assert_eq!(a.limit(), 4);
    }

    async fn futures_slots(a: &Arc<Adaptive>, n: usize) -> Vec<Slot> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(a.acquire().await);
        }
        v
    }

    #[tokio::test]
    async fn a_latency_far_above_the_mean_is_a_back_off_signal() {
        let a = Arc::new(Adaptive::new(10));
        let t0 = Instant::now();
        for _ in 0..10 {
            a.observe(Signal::Answered(Duration::from_millis(20)), t0);
        }
        assert_eq!(a.limit(), 10);
        a.observe(Signal::Answered(Duration::from_millis(40)), t0);
        assert_eq!(a.limit(), 10, "jitter within the slack");
        a.observe(Signal::Answered(Duration::from_millis(500)), t0);
        assert_eq!(a.limit(), 9);
    }

    #[tokio::test]
    async fn waiters_get_a_place_when_one_is_freed() {
        let a = Arc::new(Adaptive::new(1));
        let first = a.acquire().await;
        let waiter = tokio::spawn({
            let a = Arc::clone(&a);
            async move { a.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        drop(second);
    }
}
