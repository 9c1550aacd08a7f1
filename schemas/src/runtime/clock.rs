//! A service's notion of "now": the wall clock in production, a settable one in tests. The
//! console's tests move it past a snooze's end without waiting; the aggregator's evaluator reads
//! it for every pass, so a test evaluates at a fixed instant whatever the hour it runs at.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// Shared by every clone: setting a fixed clock moves it for the whole console.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds since the epoch, or `None` for the wall clock.
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that stays at `at` until [`Clock::set`] moves it.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self { fixed: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.fixed {
            Some(ms) => DateTime::from_timestamp_millis(ms.load(Ordering::Relaxed)).unwrap_or_default(),
            None => Utc::now(),
        }
    }

    /// Moves a fixed clock (no effect on the wall clock).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(ms) = &self.fixed {
            ms.store(at.timestamp_millis(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_for_every_clone() {
        let t: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let clock = Clock::fixed(t);
        let other = clock.clone();
        assert_eq!(other.now(), t);
        clock.set(t + chrono::Duration::days(3));
        assert_eq!(other.now(), t + chrono::Duration::days(3));
    }
}
