//! Acknowledgements counted per request instead of awaited per record.
//!
//! rdkafka's `FutureProducer` gives every record a oneshot channel and a future, and polls for
//! delivery reports on a thread that wakes every 100 ms and busy-waits through the last
//! millisecond of each wait (its remaining time is rounded down to 0 ms): about 9 ms of CPU per
//! second, idle or not — more than ingest's own work per event when the broker is slow (see
//! docs/BENCHMARKS.md, "Ingest CPU profile"). Here a request shares one counter among its records,
//! and our poll thread waits in one-second turns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::ClientContext;
use tokio::sync::Notify;

/// The records of one request (or of its dead letters) still awaiting the broker's answer.
pub struct Acks {
    remaining: AtomicUsize,
    /// The first failure the broker reported, if any.
    failure: Mutex<Option<String>>,
    done: Notify,
}

impl Acks {
    /// Counts `records` outstanding acknowledgements (set before the first record is queued).
    pub fn new(records: usize) -> Arc<Self> {
        Arc::new(Self { remaining: AtomicUsize::new(records), failure: Mutex::new(None), done: Notify::new() })
    }

    /// Waits until every record was answered; the first failure, if any.
    pub async fn all(&self) -> Result<(), String> {
        while self.remaining.load(Ordering::Acquire) > 0 {
            self.done.notified().await;
        }
        match self.failure.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    fn answered(&self, failure: Option<String>) {
        if let Some(why) = failure {
            self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Stores a permit when the request is not waiting yet: `all` then returns at once.
            self.done.notify_one();
        }
    }
}

/// The producer context: each record carries its request's [`Acks`].
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        acks.answered(result.as_ref().err().map(|(e, _)| e.to_string()));
    }
}

/// Serves the producer's delivery reports until dropped (the thread ends within a turn).
pub struct Poller {
    stop: Arc<AtomicBool>,
}

impl Poller {
    pub fn start(producer: Arc<BaseProducer<AckContext>>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::Builder::new().name("ingest acks".into()).spawn(move || {
            // Reports are handled as they arrive; the turn length only bounds how long a
            // stop takes, and the sub-millisecond busy wait at the end of each turn.
            while !stopping.load(Ordering::Relaxed) {
                producer.poll(Duration::from_secs(1));
            }
        })?;
        Ok(Self { stop })
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_done_when_every_record_was_answered_and_keeps_the_first_failure() {
        let acks = Acks::new(3);
        acks.answered(None);
        acks.answered(Some("first".into()));
        let waiting = tokio::spawn({
            let acks = acks.clone();
            async move { acks.all().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one record is still unanswered");
        acks.answered(Some("second".into()));
        assert_eq!(waiting.await.unwrap(), Err("first".into()));

        let acks = Acks::new(1);
        acks.answered(None);
        assert_eq!(acks.all().await, Ok(()), "answered before anyone waited");
    }
}
