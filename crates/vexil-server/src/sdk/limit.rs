//! The optional per-key rate limit: a token bucket per SDK key, refilled continuously at the
//! configured rate and holding at most one second's worth, in shards so that keys rarely
//! share a lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Requests per second per key.
pub struct Limiter {
    rate: f64,
    shards: Vec<Mutex<HashMap<Box<str>, Bucket>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Limiter {
    /// `per_second` requests a second per key, with bursts of as many.
    pub fn new(per_second: u32) -> Limiter {
        Limiter {
            rate: f64::from(per_second.max(1)),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Takes a token for `key`, or says how many whole seconds to wait for one.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut buckets = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(key.into()).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_gets_its_rate_and_waits_after() {
        let limiter = Limiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Err(1));
        assert_eq!(limiter.check_at("b", t0), Ok(()), "keys are independent");
        assert_eq!(
            limiter.check_at("a", t0 + Duration::from_millis(400)),
            Ok(())
        );
        assert!(limiter
            .check_at("a", t0 + Duration::from_millis(400))
            .is_err());
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0 + Duration::from_secs(5)), Ok(()));
        }
    }
}
