//! Sends generated events to ingest over HTTP: batches with several requests in flight,
//! refusals (503, 429) retried after their Retry-After so nothing is dropped, progress on stderr.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::generate::{to_segment, Format};
use crate::ingest_client::{IngestClient, RetryPolicy};
use crate::ToolsError;

/// A client for ingest's batch endpoint of one format.
#[derive(Clone)]
pub struct Sender {
    client: IngestClient,
    format: Format,
    /// Post the events as they are: they are already in `format` (a book written elsewhere,
    /// `signal --book`), not loadgen's native events to convert.
    verbatim: bool,
    /// Events ingest accepted so far.
    pub accepted: Arc<AtomicU64>,
    /// When ingest refused a batch (503 or 429, each retried): how long an outage lasted, as a
    /// sender saw it (`drill`).
    pub refused_at: Arc<Mutex<Vec<Instant>>>,
}

/// Refusals and an unreachable ingest are waited out for up to 5 minutes.
const RETRY: RetryPolicy = RetryPolicy {
    fallback_wait: Duration::from_secs(1),
    give_up_after: Duration::from_secs(300),
    retry_unreachable: true,
};

impl Sender {
    pub fn new(base_url: &str, write_key: &str, format: Format) -> Self {
        let path = match format {
            Format::Native => "/v1/events",
            Format::Segment => "/v1/batch",
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        Self {
            client: IngestClient::new(http, base_url, path, write_key),
            format,
            verbatim: false,
            accepted: Arc::default(),
            refused_at: Arc::default(),
        }
    }

    /// A sender for events already in `format`'s shape (Segment messages or native events, as a
    /// customer's own history would be): posted as they are.
    pub fn verbatim(base_url: &str, write_key: &str, format: Format) -> Self {
        Self { verbatim: true, ..Self::new(base_url, write_key, format) }
    }

    fn body(&self, events: &[Value]) -> Value {
        match self.format {
            Format::Segment if !self.verbatim => {
                json!({ "batch": events.iter().map(to_segment).collect::<Vec<_>>() })
            }
            _ => json!({ "batch": events }),
        }
    }

    /// Sends one batch until ingest takes it: 200 counts it; 503/429 and connection errors wait
    /// (Retry-After, else 1 s) and try again, for up to 5 minutes; 400 and other refusals stop
    /// the run with ingest's error list, since a generator bug must not go unnoticed.
    pub async fn send(&self, events: &[Value]) -> Result<(), ToolsError> {
        let body = Bytes::from(self.body(events).to_string());
        let refused = || self.refused_at.lock().expect("refusals lock").push(Instant::now());
        self.client.post_until_accepted(&body, &RETRY, refused).await?;
        self.accepted.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Sends `events` in batches of `batch`, `concurrency` requests in flight.
    pub async fn send_all(&self, events: &[Value], batch: usize, concurrency: usize) -> Result<(), ToolsError> {
        let results: Vec<Result<(), ToolsError>> =
            stream::iter(events.chunks(batch)).map(|c| self.send(c)).buffer_unordered(concurrency).collect().await;
        results.into_iter().collect()
    }
}

/// Prints progress to stderr at most once a second.
pub struct Progress {
    started: Instant,
    last: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Self { started: Instant::now(), last: Instant::now() }
    }
}

impl Progress {
    pub fn tick(&mut self, accepted: u64, what: &str, force: bool) {
        if !force && self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64();
        eprintln!(
            "[{secs:>6.1} s] {accepted:>9} events accepted ({:>7.0}/s)  {what}",
            accepted as f64 / secs.max(1e-3)
        );
    }
}
