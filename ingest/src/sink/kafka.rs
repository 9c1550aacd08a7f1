//! The Kafka sink, ingest's [`EventSink`] in production: writes a request's events and reports
//! success only when the broker has acknowledged every one of them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use schemas::event::{Event, EventKind};
use schemas::runtime::kafka::owned_headers;
use schemas::FieldError;
use serde_json::Value;

use super::acks::{AckContext, Acks, Poller};
use super::dead_letter::{dead_letter_record, HEADER_TRUNCATED};
use super::EventSink;
use crate::config::KafkaConfig;
use crate::metrics::Metrics;
use crate::IngestError;

pub struct KafkaSink {
    producer: Arc<BaseProducer<AckContext>>,
    topic: String,
    dlq_topic: String,
    /// The longest a request waits for its acknowledgements (see [`KafkaSink::await_acks`]).
    ack_deadline: Duration,
    metrics: Metrics,
    _poller: Poller,
}

impl KafkaSink {
    pub fn new(cfg: &KafkaConfig, metrics: Metrics) -> Result<Self, IngestError> {
        let producer = Arc::new(cfg.to_rdkafka().create_with_context(AckContext)?);
        let poller = Poller::start(Arc::clone(&producer))
            .map_err(|e| IngestError::Unavailable(format!("starting the producer's poll thread: {e}")))?;
        Ok(Self {
            producer,
            topic: cfg.topic.clone(),
            dlq_topic: cfg.dlq_topic.clone(),
            ack_deadline: cfg.delivery_timeout() + Duration::from_secs(1),
            metrics,
            _poller: poller,
        })
    }

    /// Produces every event and waits for all acknowledgements. Any failure (queue full, broker
    /// down until `delivery_timeout_ms`) fails the whole call, so the client retries the request;
    /// events of it that did land are deduplicated downstream by `message_id`.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), IngestError> {
        let started = Instant::now();
        let acks = Acks::new(events.len());
        // One buffer for the request: librdkafka copies each payload as it is queued.
        let mut payload = Vec::with_capacity(512);
        for event in events {
            payload.clear();
            serde_json::to_writer(&mut payload, event).map_err(schemas::SchemaError::from)?;
            // No Kafka headers: the value says everything, and the local broker (Tansu 0.6, SQLite)
            // has no index on its header table, so every fetch of a headed record scans all
            // headers — consumption slowed to a crawl as the topic grew (found by `bench`).
            let record = BaseRecord::with_opaque_to(&self.topic, Arc::clone(&acks))
                .key(event.partition_key())
                .payload(&payload[..]);
            if let Err((e, _)) = self.producer.send(record) {
                return Err(self.failed(started, format!("producer queue refused the event: {e}")));
            }
        }
        if let Err(e) = self.await_acks(&acks, started).await? {
            return Err(self.failed(started, format!("broker did not acknowledge: {e}")));
        }
        self.metrics.produce_latency.with_label_values(&["ok"]).observe(started.elapsed().as_secs_f64());
        // Counted per kind, then added once per kind: a label lookup per event is a hash and a lock.
        let mut per_kind = [0u64; EventKind::ALL.len()];
        for event in events {
            per_kind[event.kind as usize] += 1;
        }
        for (kind, n) in EventKind::ALL.iter().zip(per_kind).filter(|(_, n)| *n > 0) {
            self.metrics.events_accepted.with_label_values(&[kind.as_str()]).inc_by(n);
        }
        Ok(())
    }

    /// Writes rejected events to the dead-letter topic with the reasons in the `error` header,
    /// and waits for the acknowledgements: a rejected event is reported, never dropped. What is
    /// written is [`dead_letter_record`]: without write keys, and truncated so that it always
    /// fits a Kafka record (an oversize event must get its 400, not a 503 retried forever).
    pub async fn dead_letter(&self, rejected: &[(Value, Vec<FieldError>)], source: &str) -> Result<(), IngestError> {
        let started = Instant::now();
        let acks = Acks::new(rejected.len());
        for (raw, errors) in rejected {
            let dead = dead_letter_record(raw, errors)?;
            let mut headers =
                vec![(schemas::topics::HEADER_ERROR, dead.reason.as_str()), (schemas::topics::HEADER_SOURCE, source)];
            if let Some(original) = &dead.truncated_from {
                headers.push((HEADER_TRUNCATED, original.as_str()));
            }
            let record = BaseRecord::with_opaque_to(&self.dlq_topic, Arc::clone(&acks))
                .key(dead.key.as_bytes())
                .payload(&dead.payload[..])
                .headers(owned_headers(&headers));
            if let Err((e, _)) = self.producer.send(record) {
                return Err(self.failed(started, format!("producer queue refused a dead letter: {e}")));
            }
        }
        if self.await_acks(&acks, started).await?.is_err() {
            return Err(self.failed(started, "broker did not acknowledge a dead letter".into()));
        }
        Ok(())
    }

    /// Waits for every acknowledgement, but no longer than the delivery timeout plus a second:
    /// librdkafka's own message timeout does not bound a request already in flight to a broker
    /// that just died, and the API promises a prompt 503, never a hang. Events that still land
    /// later are deduplicated downstream by message id.
    async fn await_acks(&self, acks: &Acks, started: Instant) -> Result<Result<(), String>, IngestError> {
        tokio::time::timeout(self.ack_deadline, acks.all())
            .await
            .map_err(|_| self.failed(started, format!("no acknowledgement within {:?}", self.ack_deadline)))
    }

    fn failed(&self, started: Instant, why: String) -> IngestError {
        self.metrics.produce_latency.with_label_values(&["error"]).observe(started.elapsed().as_secs_f64());
        IngestError::Unavailable(why)
    }

    /// Whether the broker answers a metadata request for our topic within `timeout`.
    pub async fn is_ready(&self, timeout: Duration) -> bool {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .is_ok_and(|m| m.topics().iter().any(|t| t.name() == topic && t.error().is_none()))
        })
        .await
        .unwrap_or(false)
    }

    pub fn queue_len(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits until every queued event is delivered (or `timeout` passes). Called on shutdown so
    /// that nothing acknowledged is left in memory.
    pub fn flush(&self, timeout: Duration) -> Result<(), IngestError> {
        Ok(self.producer.flush(timeout)?)
    }
}

impl EventSink for KafkaSink {
    fn send_all<'a>(&'a self, events: &'a [Event]) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(KafkaSink::send_all(self, events))
    }

    fn dead_letter<'a>(
        &'a self,
        rejected: &'a [(Value, Vec<FieldError>)],
        source: &'a str,
    ) -> BoxFuture<'a, Result<(), IngestError>> {
        Box::pin(KafkaSink::dead_letter(self, rejected, source))
    }

    fn is_ready(&self, timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(KafkaSink::is_ready(self, timeout))
    }

    fn queue_len(&self) -> i32 {
        KafkaSink::queue_len(self)
    }

    fn flush(&self, timeout: Duration) -> Result<(), IngestError> {
        KafkaSink::flush(self, timeout)
    }
}
