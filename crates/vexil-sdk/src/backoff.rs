//! Capped exponential back-off with jitter, for reconnecting the stream and retrying requests.
//!
//! The delay of attempt `n` is drawn from `[d/2, d]` with `d = min(max, min * 2^n)` ("equal
//! jitter"): never shorter than half the exponential delay, so a fleet of clients that lost the
//! same server neither hammers it nor reconnects in lock step.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// The delay before retry `attempt` (0 for the first retry), given a random number.
pub fn delay(min: Duration, max: Duration, attempt: u32, random: u64) -> Duration {
    let min_ms = min.as_millis().min(u128::from(u64::MAX)) as u64;
    let max_ms = max.as_millis().min(u128::from(u64::MAX)) as u64;
    let factor = 1u64.checked_shl(attempt.min(62)).unwrap_or(u64::MAX);
    let full = min_ms.saturating_mul(factor).min(max_ms.max(min_ms));
    let half = full / 2;
    let jitter = random % (full - half + 1);
    Duration::from_millis(half + jitter)
}

/// A random number for jitter, from the standard library's per-process random hash keys, so
/// jitter needs no random-number crate.
pub fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// The attempts made since the last success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays from `min` (the first retry) doubling up to `max`, with jitter.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call doubles the next one, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let d = delay(self.min, self.max, self.attempt, random());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// A success: the next failure starts again from the minimum.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(min_ms: u64, max_ms: u64, attempt: u32, random: u64, expected_ms: u64) {
        let got = delay(
            Duration::from_millis(min_ms),
            Duration::from_millis(max_ms),
            attempt,
            random,
        );
        assert_eq!(
            got,
            Duration::from_millis(expected_ms),
            "min {min_ms} max {max_ms} attempt {attempt} random {random}"
        );
    }

    #[test]
    fn delays_grow_cap_and_jitter() {
        // (min, max, attempt, random, expected)
        let cases = [
            (100, 10_000, 0, 0, 50),
            (100, 10_000, 0, 50, 100),
            (100, 10_000, 0, 51, 50),
            (100, 10_000, 1, 0, 100),
            (100, 10_000, 3, 400, 800),
            (100, 10_000, 7, 0, 5_000),
            (100, 10_000, 7, 5_000, 10_000),
            // Huge attempts neither overflow nor exceed the cap.
            (100, 10_000, 1_000, u64::MAX, 5_000 + u64::MAX % 5_001),
            (u64::MAX, u64::MAX, 63, 0, u64::MAX / 2),
            // A cap below the minimum: the minimum wins.
            (500, 100, 2, 0, 250),
            (0, 0, 5, 9, 0),
        ];
        for (min, max, attempt, random, expected) in cases {
            check(min, max, attempt, random, expected);
        }
    }

    #[test]
    fn backoff_doubles_then_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1_000));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let full = (100u64 << i).min(1_000);
            assert!(
                *d >= Duration::from_millis(full / 2) && *d <= Duration::from_millis(full),
                "attempt {i}: {d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
