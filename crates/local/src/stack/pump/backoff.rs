//! The pump's waits: capped exponential backoff with full jitter, and sleeps that end early
//! when the pump stops.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sleeps `d`; false if `stop` fired first.
pub(super) async fn sleep_or_stop(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Capped exponential backoff with full jitter, from 50 ms.
pub(super) struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    /// Backoff up to `cap`.
    pub(super) fn new(cap: Duration) -> Self {
        Self {
            next: Duration::from_millis(50),
            cap,
        }
    }

    /// Back to the first delay.
    pub(super) fn reset(&mut self) {
        self.next = Duration::from_millis(50);
    }

    /// The next delay: from half to all of the current step, which then doubles.
    pub(super) fn next(&mut self) -> Duration {
        use rand::Rng as _;
        let d = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        let ms = d.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
    }
}
