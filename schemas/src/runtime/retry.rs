//! Retry-until-shutdown: how every loop that waits for ClickHouse, the broker or a webhook
//! retries. Waits double from `initial` up to `max` and start over after a success, so a
//! persistent error (a deleted topic, an ACL, a server away) is retried ever more slowly
//! instead of filling the log, and a recovery is noticed within `max`. Every wait ends early
//! when the shutdown watch turns true: a service never hangs on its way down.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// Exponential backoff with a cap.
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

    /// The same wait every time.
    pub fn constant(wait: Duration) -> Self {
        Self::new(wait, wait)
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

    /// Records a failure and sleeps its wait. False if shutdown came first (or had come).
    pub async fn pause(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let wait = self.fail();
        sleep_unless_shutdown(wait, shutdown).await
    }
}

/// Sleeps `wait`. False if shutdown came first (or had come).
pub async fn sleep_unless_shutdown(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.changed() => false,
    }
}

/// Runs `op` until it succeeds, reporting each error and the wait before the next attempt to
/// `failed`; `None` when shutdown came first. `backoff` is the caller's, so a loop over many
/// items can share it (a topic that is down stays backed off across them).
pub async fn until_ok<T, E, F, Fut>(
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
    mut op: F,
    mut failed: impl FnMut(&E, Duration),
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        let wait = match op().await {
            Ok(v) => return Some(v),
            Err(e) => {
                let wait = backoff.fail();
                failed(&e, wait);
                wait
            }
        };
        if !sleep_unless_shutdown(wait, shutdown).await {
            return None;
        }
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

    #[tokio::test(start_paused = true)]
    async fn until_ok_retries_and_stops_at_shutdown() {
        let (stop, mut shutdown) = watch::channel(false);
        let mut left = 3;
        let mut errors = 0;
        let mut b = Backoff::constant(Duration::from_millis(10));
        let op = || {
            left -= 1;
            std::future::ready(if left == 0 { Ok(7) } else { Err("down") })
        };
        let got = until_ok(&mut b, &mut shutdown, op, |_: &&str, _| errors += 1).await;
        assert_eq!((got, errors), (Some(7), 2));

        stop.send(true).unwrap();
        let never = until_ok(&mut b, &mut shutdown, || std::future::ready(Err::<(), _>("down")), |_, _| {}).await;
        assert_eq!(never, None);
    }
}
