//! Per-write-key rate limiting: a token bucket per key, refilled continuously.
//!
//! Written here rather than pulled in: a bucket is a few lines, and we need exactly one policy
//! (events per second per key, with a burst), reported back as a Retry-After.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    /// Sustained events per second per key; 0 disables limiting.
    rate: f64,
    /// Bucket size: events a key may send at once after being idle.
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self { rate: rate_per_sec as f64, burst: burst.max(1) as f64, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes `cost` tokens from `key`'s bucket. `Err(wait)` says how long until they would be
    /// available; nothing is taken then, so a refused request does not eat the client's budget.
    pub fn check(&self, key: &str, cost: u32, now: Instant) -> Result<(), Duration> {
        if self.rate == 0.0 {
            return Ok(());
        }
        // A request larger than the whole bucket could never pass: charge it as a full bucket.
        let cost = (cost as f64).min(self.burst);
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - bucket.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = RateLimiter::new(10, 20);
        let t0 = Instant::now();
        assert!(limiter.check("k", 20, t0).is_ok(), "a full burst passes");
        let wait = limiter.check("k", 5, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "5 events at 10/s need half a second");
        assert!(limiter.check("k", 5, t0 + Duration::from_millis(499)).is_err());
        assert!(limiter.check("k", 5, t0 + Duration::from_millis(500)).is_ok());
        assert!(limiter.check("other", 20, t0).is_ok(), "keys have their own buckets");
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let limiter = RateLimiter::new(0, 1);
        for _ in 0..1000 {
            assert!(limiter.check("k", 1000, Instant::now()).is_ok());
        }
    }
}
