//! The consume loop: `usage-events` → batches → one ClickHouse INSERT per batch → offset commit.
//!
//! Offsets are committed only after ClickHouse acknowledged the insert, so a crash never skips
//! an event; the records a crash replays, and client retries, are recognised by their message id
//! ([`DedupWindow`]) and stored once. A record that is not a valid event goes to the dead-letter
//! topic with the reason and never blocks its partition.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::event::Event;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::AggregatorConfig;
use crate::dedup::DedupWindow;
use crate::metrics::Metrics;
use crate::store::{to_datetime, EventRow, Store};
use crate::AggregatorError;

/// Longest pause between attempts to store a batch while ClickHouse is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The partitions of the events topic this instance owns, as the consumer group assigned them,
/// and a counter of rebalances. Shared with the evaluator: an account's metrics and rules are
/// computed only by the instance that owns the account's partition.
#[derive(Default)]
pub struct Ownership {
    generation: AtomicU64,
    partitions: Mutex<HashSet<i32>>,
}

impl Ownership {
    /// Ownership of fixed partitions, outside any consumer group: for evaluating stored history
    /// (tests, backtests) without consuming.
    pub fn fixed(partitions: impl IntoIterator<Item = i32>) -> Self {
        Self { generation: AtomicU64::new(0), partitions: Mutex::new(partitions.into_iter().collect()) }
    }

    /// Increases on every rebalance.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The owned partitions, sorted.
    pub fn partitions(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.partitions.lock().expect("ownership lock poisoned").iter().copied().collect();
        p.sort_unstable();
        p
    }
}

/// The consumer's context: keeps [`Ownership`] current.
pub struct OwnershipContext {
    topic: String,
    ownership: Arc<Ownership>,
}

impl rdkafka::ClientContext for OwnershipContext {}

impl ConsumerContext for OwnershipContext {
    fn post_rebalance(&self, _consumer: &rdkafka::consumer::BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut owned = self.ownership.partitions.lock().expect("ownership lock poisoned");
        match rebalance {
            // The eager protocol assigns the whole new set and revokes everything before.
            Rebalance::Assign(tpl) => {
                *owned = tpl.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect();
            }
            Rebalance::Revoke(_) => owned.clear(),
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
        tracing::info!(partitions = ?owned, "partitions assigned");
        self.ownership.generation.fetch_add(1, Ordering::SeqCst);
    }
}

pub struct EventConsumer {
    consumer: StreamConsumer<OwnershipContext>,
    producer: FutureProducer,
    store: Store,
    metrics: Arc<Metrics>,
    topic: String,
    dlq_topic: String,
    max_rows: usize,
    max_wait: Duration,
    dedup: DedupWindow,
    dedup_window_secs: u32,
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
        ownership: Arc<Ownership>,
    ) -> Result<Self, AggregatorError> {
        let context = OwnershipContext { topic: cfg.kafka.events_topic.clone(), ownership };
        let consumer: StreamConsumer<OwnershipContext> = cfg.kafka.to_rdkafka_consumer().create_with_context(context)?;
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
            dedup: DedupWindow::new(cfg.dedup.window_secs, cfg.dedup.max_ids_per_partition),
            dedup_window_secs: cfg.dedup.window_secs,
        })
    }

    /// Runs until `shutdown` turns true. A batch in progress at shutdown is not committed and
    /// will be consumed again by whoever owns the partition next.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        let mut generation = self.rebalances();
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
                let msg = received?.detach();
                if generation != self.rebalances() {
                    // Partitions may have moved: another instance may have stored more of them,
                    // and rows of partitions no longer ours must not be written by us.
                    generation = self.rebalances();
                    self.dedup.forget_all();
                    let ours = self.assigned_partitions()?;
                    rows.retain(|r: &EventRow| ours.contains(&r.kafka_partition));
                    next_offsets.retain(|p, _| ours.contains(p));
                }
                let partition = msg.partition();
                if !self.dedup.knows(partition) && !self.load_window(partition, &mut shutdown).await {
                    return Ok(()); // shutdown: nothing of this batch was stored or committed
                }
                next_offsets.insert(partition, msg.offset() + 1);
                match parse(msg.payload()) {
                    Ok(event) => {
                        let received_at = to_datetime(event.received_at);
                        if self.dedup.seen_or_insert(partition, &event.message_id, received_at) {
                            self.metrics.duplicates.inc();
                        } else {
                            rows.push(EventRow::new(event, msg.topic(), partition, msg.offset()));
                        }
                    }
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
            // A rebalance during this batch reloaded the windows from ClickHouse before these
            // rows were in it: remember them again, so a later retry of one is still caught.
            for r in &rows {
                self.dedup.seen_or_insert(r.kafka_partition, &r.message_id, r.received_at);
            }
            self.commit(&next_offsets)?;
            self.dedup.expire(to_datetime(chrono::Utc::now()));
            self.metrics.dedup_ids.set(self.dedup.len() as i64);
        }
    }

    fn rebalances(&self) -> u64 {
        self.consumer.context().ownership.generation()
    }

    fn assigned_partitions(&self) -> Result<HashSet<i32>, AggregatorError> {
        let assignment = self.consumer.assignment()?;
        Ok(assignment.elements_for_topic(&self.topic).iter().map(|e| e.partition()).collect())
    }

    /// Loads the ids `partition` stored within the window, retrying while ClickHouse is down:
    /// without them a replayed record could be stored twice. False if shutdown came first.
    async fn load_window(&mut self, partition: i32, shutdown: &mut watch::Receiver<bool>) -> bool {
        let since = to_datetime(chrono::Utc::now()).saturating_sub(self.dedup_window_secs);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.store.stored_ids(&self.topic, partition, since).await {
                Ok(ids) => {
                    tracing::info!(partition, ids = ids.len(), "dedup window loaded");
                    self.dedup.load(partition, ids);
                    return true;
                }
                Err(e) => tracing::warn!(error = %e, partition, "loading stored message ids failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return false,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
