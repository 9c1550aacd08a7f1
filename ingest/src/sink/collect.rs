//! An [`EventSink`] that keeps everything in memory: for fast tests of the request pipeline
//! (no broker), and anything else that wants ingest's validation without Kafka.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use schemas::event::Event;
use schemas::FieldError;
use serde_json::Value;

use super::dead_letter::{dead_letter_record, DeadLetter};
use super::EventSink;
use crate::IngestError;

/// Collects accepted events and dead letters (with the source they came from). It can be told
/// to be unavailable, as a broker that is down: every write then fails with a 503.
#[derive(Debug, Default)]
pub struct CollectingSink {
    events: Mutex<Vec<Event>>,
    dead_letters: Mutex<Vec<(DeadLetter, String)>>,
    unavailable: AtomicBool,
}

impl CollectingSink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every event accepted so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().expect("sink lock poisoned").clone()
    }

    /// Every dead letter so far, with its source, in order.
    pub fn dead_letters(&self) -> Vec<(DeadLetter, String)> {
        self.dead_letters.lock().expect("sink lock poisoned").clone()
    }

    /// From now on every write fails (true) or succeeds again (false).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), IngestError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(IngestError::Unavailable("the collecting sink is set unavailable".into()));
        }
        Ok(())
    }
}

impl EventSink for CollectingSink {
    fn send_all<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move {
            self.check()?;
            self.events.lock().expect("sink lock poisoned").extend_from_slice(events);
            Ok(())
        })
    }

    fn dead_letter<'a>(
        &'a self,
        rejected: &'a [(Value, Vec<FieldError>)],
        source: &'a str,
    ) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(async move {
            self.check()?;
            let records = rejected.iter().map(|(raw, errors)| dead_letter_record(raw, errors));
            let records = records.map(|r| r.map(|d| (d, source.to_owned()))).collect::<Result<Vec<_>, _>>()?;
            self.dead_letters.lock().expect("sink lock poisoned").extend(records);
            Ok(())
        })
    }

    fn is_ready(&self, _timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(!self.unavailable.load(Ordering::SeqCst)))
    }

    fn queue_len(&self) -> i32 {
        0
    }

    fn flush(&self, _timeout: Duration) -> Result<(), IngestError> {
        Ok(())
    }
}
