//! Where accepted and rejected events go: the [`EventSink`] seam of the request pipeline.
//! Production writes to Kafka ([`KafkaSink`]); [`CollectingSink`] keeps them in memory, so the
//! whole pipeline (auth, limits, parsing, validation, dead letters, status codes) can be tested
//! in milliseconds without a broker. See `docs/architecture.md#seams`.

mod acks;
mod collect;
mod dead_letter;
mod kafka;

use std::time::Duration;

use futures::future::BoxFuture;
use schemas::event::Event;
use schemas::FieldError;
use serde_json::Value;

pub use collect::CollectingSink;
pub use dead_letter::{dead_letter_record, DeadLetter, DEAD_LETTER_MAX_PAYLOAD, HEADER_TRUNCATED};
pub use kafka::KafkaSink;

use crate::IngestError;

/// The destination of a request's events. A request is answered 200 only when
/// [`EventSink::send_all`] and [`EventSink::dead_letter`] both succeeded; an error is a 503
/// the client retries (duplicates are removed downstream by `message_id`). Boxed futures keep
/// the trait object-safe: `App` holds an `Arc<dyn EventSink>`.
pub trait EventSink: Send + Sync + 'static {
    /// Writes every event, and succeeds only once all of them are durably accepted.
    fn send_all<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), IngestError>>;

    /// Records rejected events with their reasons (never drops them), sent with the write key
    /// of `source`. What is kept is [`dead_letter_record`]'s output.
    fn dead_letter<'a>(
        &'a self,
        rejected: &'a [(Value, Vec<FieldError>)],
        source: &'a str,
    ) -> BoxFuture<'a, Result<(), IngestError>>;

    /// Whether the destination answers within `timeout` (`/readyz`).
    fn is_ready(&self, timeout: Duration) -> BoxFuture<'_, bool>;

    /// Events accepted but not yet acknowledged (a gauge on `/metrics`).
    fn queue_len(&self) -> i32;

    /// Waits until everything queued is delivered, at most `timeout` (on shutdown).
    fn flush(&self, timeout: Duration) -> Result<(), IngestError>;
}
