//! Exponential backoff for a loop that keeps meeting the same failure (a Kafka receive error):
//! waits that double from `initial` up to `max`, and start over after a success. Without it a
//! persistent error (a deleted topic, an ACL, a broker away) is retried at a fixed pace forever,
//! filling the log; with it the loop slows to one attempt per `max` and recovers at once.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max: max.max(initial), failures: 0 }
    }

    /// Records a failure; the wait before the next attempt: `initial × 2^(failures-1)`, capped.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.initial.saturating_mul(1 << (self.failures - 1).min(20)).min(self.max)
    }

    /// Records a success: the next failure waits `initial` again.
    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_errors_back_off_exponentially_and_recover_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        let waits: Vec<u64> = (0..12).map(|_| b.fail().as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000, 30_000]);
        assert_eq!(b.failures(), 12);
        // A thousand errors in a row: still capped, no overflow.
        for _ in 0..1_000 {
            b.fail();
        }
        assert_eq!(b.fail(), Duration::from_secs(30));
        b.succeed();
        assert_eq!(b.failures(), 0);
        assert_eq!(b.fail(), Duration::from_millis(100));
    }
}
