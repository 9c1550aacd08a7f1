//! The consume loop: `usage-events` → batches → one ClickHouse INSERT per batch → offset commit.
//!
//! Offsets are committed only after ClickHouse acknowledged the insert, so a crash never skips
//! an event. (A crash between insert and commit replays the batch; the exactly-once work —
//! resuming from the offsets stored with the rows — builds on the Kafka coordinates each row
//! already carries.) A record that is not a valid event goes to the dead-letter topic with the
//! reason and never blocks its partition.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::event::Event;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::AggregatorConfig;
use crate::metrics::Metrics;
use crate::store::{EventRow, Store};
use crate::AggregatorError;

/// Longest pause between attempts to store a batch while ClickHouse is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct EventConsumer {
    consumer: StreamConsumer,
    producer: FutureProducer,
    store: Store,
    metrics: Arc<Metrics>,
    topic: String,
    dlq_topic: String,
    max_rows: usize,
    max_wait: Duration,
}

/// A consumed record that could not become a row.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    error: String,
}

impl EventConsumer {
    pub fn new(
        cfg: &AggregatorConfig,
        store: Store,
        producer: FutureProducer,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AggregatorError> {
        let consumer: StreamConsumer = cfg.kafka.to_rdkafka_consumer().create()?;
        consumer.subscribe(&[&cfg.kafka.events_topic])?;
        Ok(Self {
            consumer,
            producer,
            store,
            metrics,
            topic: cfg.kafka.events_topic.clone(),
            dlq_topic: cfg.kafka.dlq_topic.clone(),
            max_rows: cfg.batch.max_rows,
            max_wait: cfg.batch.max_wait(),
        })
    }

    /// Runs until `shutdown` turns true. A batch in progress at shutdown is not committed and
    /// will be consumed again by whoever owns the partition next.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        loop {
            let mut rows = Vec::new();
            let mut dead = Vec::new();
            let mut next_offsets: HashMap<i32, i64> = HashMap::new();
            // Wait as long as it takes for the first record of a batch, then at most max_wait.
            let first = tokio::select! {
                m = self.consumer.recv() => m,
                _ = shutdown.changed() => return Ok(()),
            };
            let deadline = Instant::now() + self.max_wait;
            let mut next = Some(first);
            while let Some(received) = next.take() {
                let msg = received?;
                next_offsets.insert(msg.partition(), msg.offset() + 1);
                match parse(msg.payload()) {
                    Ok(event) => rows.push(EventRow::new(event, msg.topic(), msg.partition(), msg.offset())),
                    Err(error) => dead.push(DeadLetter {
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: msg.payload().unwrap_or_default().to_vec(),
                        error,
                    }),
                }
                if rows.len() + dead.len() >= self.max_rows {
                    break;
                }
                next = tokio::time::timeout_at(deadline, self.consumer.recv()).await.ok();
            }

            self.dead_letter(&dead).await?;
            if !self.store_rows(&rows, &mut shutdown).await {
                return Ok(());
            }
            self.commit(&next_offsets)?;
        }
    }

    /// Stores the batch, retrying with backoff while ClickHouse fails. Returns false if shutdown
    /// came first (nothing committed, nothing lost).
    async fn store_rows(&self, rows: &[EventRow], shutdown: &mut watch::Receiver<bool>) -> bool {
        if rows.is_empty() {
            return true;
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = std::time::Instant::now();
            match self.store.insert_rows("events", rows).await {
                Ok(()) => {
                    self.metrics.insert_seconds.observe(started.elapsed().as_secs_f64());
                    self.metrics.events_stored.inc_by(rows.len() as u64);
                    return true;
                }
                Err(e) => {
                    self.metrics.insert_failures.inc();
                    tracing::warn!(error = %e, rows = rows.len(), retry_in = ?backoff, "ClickHouse insert failed; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return false,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn dead_letter(&self, dead: &[DeadLetter]) -> Result<(), AggregatorError> {
        for d in dead {
            tracing::warn!(error = %d.error, "dead-lettering an unreadable record");
            let headers = OwnedHeaders::new()
                .insert(Header { key: schemas::topics::HEADER_ERROR, value: Some(d.error.as_str()) });
            let mut record = FutureRecord::to(&self.dlq_topic).payload(&d.payload).headers(headers);
            if let Some(key) = &d.key {
                record = record.key(key);
            }
            self.producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| AggregatorError::Delivery(format!("dead-letter topic: {e}")))?;
            self.metrics.dead_letters.inc();
        }
        Ok(())
    }

    fn commit(&self, next_offsets: &HashMap<i32, i64>) -> Result<(), AggregatorError> {
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in next_offsets {
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))?;
        }
        // Async: the rows are already safe in ClickHouse; a lost commit only means a replay.
        self.consumer.commit(&tpl, CommitMode::Async)?;
        Ok(())
    }
}

/// A record's value as a canonical event, or why it is not one.
fn parse(payload: Option<&[u8]>) -> Result<Event, String> {
    let payload = payload.ok_or("record has no value")?;
    serde_json::from_slice(payload).map_err(|e| format!("not a canonical event: {e}"))
}
