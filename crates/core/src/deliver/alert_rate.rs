//! The per-instance rate of notifications: a token bucket refilled at `per_minute` a minute,
//! holding ten seconds' worth (at least one), so no instance spends a minute's share at once.
//! A Notifications topic accepts about 60 messages a minute in all (contracts/oci-round2.md
//! section D), so each instance keeps to its share. The clock is passed in, so tests need no
//! sleeps.

use std::time::Instant;

/// A token bucket.
#[derive(Debug)]
pub(super) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_second: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `per_minute` (at least one) a minute, holding ten seconds'
    /// worth of them, at least one.
    pub(super) fn per_minute(per_minute: u32, now: Instant) -> Self {
        let rate = f64::from(per_minute.max(1));
        let capacity = (rate / 6.0).ceil().max(1.0);
        Self {
            capacity,
            tokens: capacity,
            per_second: rate / 60.0,
            last: now,
        }
    }

    /// Takes a token if one is there at `now`.
    pub(super) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is there, from the last `try_take`.
    #[cfg(test)]
    fn wait(&self) -> std::time::Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        std::time::Duration::from_secs_f64(missing / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_takes_ten_seconds_worth_then_one_token_per_share_of_a_minute() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(60, t0);
        let taken = (0..50).filter(|_| b.try_take(t0)).count();
        assert_eq!(taken, 10);
        assert_eq!(b.wait(), Duration::from_secs(1));
        assert!(!b.try_take(t0 + Duration::from_millis(900)));
        assert!(b.try_take(t0 + Duration::from_secs(1)));
        assert!(!b.try_take(t0 + Duration::from_millis(1500)));
        // A long pause refills no more than the bucket holds.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..50).filter(|_| b.try_take(later)).count(), 10);
    }

    #[test]
    fn within_any_minute_no_more_than_the_rate_and_a_burst_pass() {
        let t0 = Instant::now();
        let mut b = TokenBucket::per_minute(6, t0);
        let passed = (0..600)
            .filter(|i| b.try_take(t0 + Duration::from_millis(100 * i)))
            .count();
        // One at once, then one every 10 s over the 60 s.
        assert_eq!(passed, 1 + 5);
        let mut small = TokenBucket::per_minute(0, t0);
        assert!(small.try_take(t0));
        assert!(!small.try_take(t0 + Duration::from_secs(59)));
    }
}
