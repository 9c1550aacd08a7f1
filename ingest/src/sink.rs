//! The Kafka sink: writes a request's events and reports success only when the broker has
//! acknowledged every one of them.

use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use schemas::event::Event;
use schemas::FieldError;
use serde_json::Value;

use crate::config::KafkaConfig;
use crate::metrics::Metrics;
use crate::IngestError;

/// Largest dead-letter payload: enough to diagnose any event (Segment's own per-event limit is
/// 32 KB; the head of a bigger one shows what it is), far below any broker's record limit.
pub const DEAD_LETTER_MAX_PAYLOAD: usize = 16 * 1024;
/// Longest `error` header: the reasons of one event, which echo client-chosen field names.
const DEAD_LETTER_MAX_REASON: usize = 4 * 1024;
/// Kafka header on a truncated dead letter: the size in bytes of the event as it was sent.
pub const HEADER_TRUNCATED: &str = "truncated";
/// Keys whose values are credentials, removed at any depth from what is dead-lettered
/// (compared case-insensitively, ignoring `_` and `-`).
const SECRET_KEYS: &[&str] = &["writekey", "authorization", "apikey", "password", "secret", "token"];

/// A rejected event as it goes to the dead-letter topic.
#[derive(Debug)]
pub struct DeadLetter {
    pub key: String,
    pub payload: Vec<u8>,
    /// The reasons (`field: reason; …`), at most 4 KiB.
    pub reason: String,
    /// The original size in bytes when the payload was truncated.
    pub truncated_from: Option<String>,
}

/// What is dead-lettered for one rejected event: the event without credentials (a body that
/// authenticated with `writeKey` must not hand the key to everyone who reads the topic) and,
/// when its JSON is over [`DEAD_LETTER_MAX_PAYLOAD`], a JSON object
/// `{"uptake_truncated": {"original_bytes": N}, "head": "<first bytes of the event's JSON>"}`
/// so consumers still read JSON. The key is the event's account (or user) id when it is a
/// valid id, else empty.
pub fn dead_letter_record(raw: &Value, errors: &[FieldError]) -> Result<DeadLetter, IngestError> {
    let mut clean = raw.clone();
    strip_secrets(&mut clean);
    let mut payload = serde_json::to_vec(&clean).map_err(schemas::SchemaError::from)?;
    let mut truncated_from = None;
    if payload.len() > DEAD_LETTER_MAX_PAYLOAD {
        let text = String::from_utf8_lossy(&payload);
        // Room for the wrapper and for JSON escapes of the head (at most 6 bytes per byte for
        // control characters, far less in practice; the loop below makes sure).
        let mut head_len = DEAD_LETTER_MAX_PAYLOAD - 256;
        loop {
            let head = truncate_at_char(&text, head_len);
            let wrapped = serde_json::json!({"uptake_truncated": {"original_bytes": payload.len()}, "head": head});
            let bytes = serde_json::to_vec(&wrapped).map_err(schemas::SchemaError::from)?;
            if bytes.len() <= DEAD_LETTER_MAX_PAYLOAD || head_len == 0 {
                truncated_from = Some(payload.len().to_string());
                payload = bytes;
                break;
            }
            head_len /= 2;
        }
    }
    let reason = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; ");
    let key = ["account_id", "userId", "anonymousId"]
        .iter()
        .find_map(|k| raw.get(*k).and_then(Value::as_str).filter(|id| schemas::limits::check_id(id).is_ok()))
        .unwrap_or_default();
    Ok(DeadLetter { key: key.to_owned(), payload, reason: truncate_at_char(&reason, DEAD_LETTER_MAX_REASON).to_owned(), truncated_from })
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Removes credential-like keys from every object in `value`, however deep.
fn strip_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                let k: String = k.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
                !SECRET_KEYS.contains(&k.as_str())
            });
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    dlq_topic: String,
    /// The longest a request waits for its acknowledgements (see [`KafkaSink::await_acks`]).
    ack_deadline: Duration,
    metrics: Metrics,
}

impl KafkaSink {
    pub fn new(cfg: &KafkaConfig, metrics: Metrics) -> Result<Self, IngestError> {
        let producer: FutureProducer = cfg.to_rdkafka().create()?;
        Ok(Self {
            producer,
            topic: cfg.topic.clone(),
            dlq_topic: cfg.dlq_topic.clone(),
            ack_deadline: cfg.delivery_timeout() + Duration::from_secs(1),
            metrics,
        })
    }

    /// Produces every event and waits for all acknowledgements. Any failure (queue full, broker
    /// down until `delivery_timeout_ms`) fails the whole call, so the client retries the request;
    /// events of it that did land are deduplicated downstream by `message_id`.
    pub async fn send_all(&self, events: &[Event]) -> Result<(), IngestError> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let payload = serde_json::to_vec(event).map_err(schemas::SchemaError::from)?;
            // No Kafka headers: the value says everything, and the local broker (Tansu 0.6, SQLite)
            // has no index on its header table, so every fetch of a headed record scans all
            // headers — consumption slowed to a crawl as the topic grew (found by `bench`).
            let record = FutureRecord::to(&self.topic).key(event.partition_key()).payload(&payload);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => return Err(self.failed(started, format!("producer queue refused the event: {e}"))),
            }
        }
        for result in self.await_acks(deliveries, started).await? {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.failed(started, format!("broker did not acknowledge: {e}"))),
                Err(_) => return Err(self.failed(started, "producer shut down before delivery".into())),
            }
        }
        self.metrics.produce_latency.with_label_values(&["ok"]).observe(started.elapsed().as_secs_f64());
        for event in events {
            self.metrics.events_accepted.with_label_values(&[event.kind.as_str()]).inc();
        }
        Ok(())
    }

    /// Writes rejected events to the dead-letter topic with the reasons in the `error` header,
    /// and waits for the acknowledgements: a rejected event is reported, never dropped. What is
    /// written is [`dead_letter_record`]: without write keys, and truncated so that it always
    /// fits a Kafka record (an oversize event must get its 400, not a 503 retried forever).
    pub async fn dead_letter(&self, rejected: &[(Value, Vec<FieldError>)], source: &str) -> Result<(), IngestError> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(rejected.len());
        for (raw, errors) in rejected {
            let dead = dead_letter_record(raw, errors)?;
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: schemas::topics::HEADER_ERROR, value: Some(dead.reason.as_str()) })
                .insert(Header { key: schemas::topics::HEADER_SOURCE, value: Some(source) });
            if let Some(original) = &dead.truncated_from {
                headers = headers.insert(Header { key: HEADER_TRUNCATED, value: Some(original.as_str()) });
            }
            let record = FutureRecord::to(&self.dlq_topic).key(&dead.key).payload(&dead.payload).headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((e, _)) => return Err(self.failed(started, format!("producer queue refused a dead letter: {e}"))),
            }
        }
        for result in self.await_acks(deliveries, started).await? {
            if !matches!(result, Ok(Ok(_))) {
                return Err(self.failed(started, "broker did not acknowledge a dead letter".into()));
            }
        }
        Ok(())
    }

    /// Waits for every acknowledgement, but no longer than the delivery timeout plus a second:
    /// librdkafka's own message timeout does not bound a request already in flight to a broker
    /// that just died, and the API promises a prompt 503, never a hang. Events that still land
    /// later are deduplicated downstream by message id.
    async fn await_acks(
        &self,
        deliveries: Vec<rdkafka::producer::DeliveryFuture>,
        started: Instant,
    ) -> Result<Vec<<rdkafka::producer::DeliveryFuture as std::future::Future>::Output>, IngestError> {
        tokio::time::timeout(self.ack_deadline, join_all(deliveries))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dead_letters_lose_their_keys_and_fit_a_record() {
        let errors = vec![FieldError::new("event", "is 2000000 bytes; at most 32768 per event")];
        let raw = json!({"writeKey": "secret-key-123", "kind": "login", "account_id": "acme",
                         "properties": {"Authorization": "Bearer x", "nested": [{"api_key": "k", "keep": 1}], "note": "é".repeat(1_000_000)}});
        let dead = dead_letter_record(&raw, &errors).unwrap();
        assert!(dead.payload.len() <= DEAD_LETTER_MAX_PAYLOAD, "{}", dead.payload.len());
        let text = String::from_utf8(dead.payload.clone()).unwrap();
        assert!(!text.contains("secret-key-123") && !text.contains("Bearer") && !text.contains("api_key"), "{text:.300}");
        let value: Value = serde_json::from_slice(&dead.payload).unwrap();
        let original: usize = dead.truncated_from.as_deref().unwrap().parse().unwrap();
        assert!(original > 2_000_000);
        assert_eq!(value["uptake_truncated"]["original_bytes"], original);
        assert!(value["head"].as_str().unwrap().starts_with("{\"account_id\":\"acme\""));
        assert_eq!(dead.key, "acme");

        // A small one is kept whole, less its key; a long id is no Kafka key.
        let raw = json!({"writeKey": "secret-key-123", "kind": "login", "account_id": "a".repeat(5000)});
        let dead = dead_letter_record(&raw, &errors).unwrap();
        assert_eq!(dead.truncated_from, None);
        assert_eq!(serde_json::from_slice::<Value>(&dead.payload).unwrap(), json!({"kind": "login", "account_id": "a".repeat(5000)}));
        assert_eq!(dead.key, "");
        let many = vec![FieldError::new("x".repeat(10_000), "unknown field"); 3];
        assert!(dead_letter_record(&raw, &many).unwrap().reason.len() <= DEAD_LETTER_MAX_REASON);
    }
}
