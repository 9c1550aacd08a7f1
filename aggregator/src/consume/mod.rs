//! The consume loop: `usage-events` → batches → ClickHouse INSERTs → offset commit.
//!
//! Offsets are committed only after ClickHouse acknowledged the batch's inserts, so a crash never
//! skips an event; the records a crash replays, and client retries, are recognised by their
//! message id ([`DedupWindow`]) and stored once. A batch becomes as many INSERTs as its months
//! need ([`crate::consume::chunk`]); a crash between two of them replays the batch, and the window —
//! reloaded with every row stored from the replay's first offset on — skips what was stored.
//! Nothing blocks a partition: an unreadable record, or a row ClickHouse refuses for good
//! ([`crate::consume::poison`]), goes to the dead-letter topic with the reason; consume errors and
//! transient ClickHouse errors are retried with backoff.

pub mod batch;
pub mod chunk;
pub mod dedup;
pub mod lag;
pub mod ownership;
pub mod poison;
pub mod record;

pub use ownership::{Ownership, OwnershipContext};

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::stream_consumer::MessageStream;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use schemas::runtime::kafka::DeadLetterWriter;
use schemas::runtime::retry::{self, Backoff};
use schemas::runtime::suppressions::Suppressions;
use tokio::sync::watch;
use warehouse::columns::to_datetime;
use warehouse::rows::EventRow;

use crate::config::AggregatorConfig;
use crate::consume::batch::{Added, Batch, DeadLetter, Pending};
use crate::consume::dedup::DedupWindow;
use crate::consume::poison::{store_isolating, Sink};
use crate::consume::record::{Origin, COLUMNS};
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// Longest pause between attempts while ClickHouse, the broker or the dead-letter topic fails.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The backoff of every retry loop of the consumer.
fn backoff() -> Backoff {
    Backoff::new(FIRST_BACKOFF, MAX_BACKOFF)
}

pub struct EventConsumer {
    consumer: StreamConsumer<OwnershipContext>,
    dead_letters: DeadLetterWriter,
    store: Store,
    metrics: Arc<Telemetry>,
    topic: String,
    max_rows: usize,
    max_wait: Duration,
    max_partitions: usize,
    dedup_window_secs: u32,
    dedup_max_ids: usize,
    suppressions: Suppressions,
}

impl EventConsumer {
    pub fn new(
        cfg: &AggregatorConfig,
        store: Store,
        producer: FutureProducer,
        metrics: Arc<Telemetry>,
        ownership: Arc<Ownership>,
        suppressions: Suppressions,
    ) -> Result<Self, AggregatorError> {
        let context = OwnershipContext { topic: cfg.kafka.events_topic.clone(), ownership, metrics: metrics.clone() };
        let consumer: StreamConsumer<OwnershipContext> =
            cfg.kafka.to_rdkafka_event_consumer().create_with_context(context)?;
        consumer.subscribe(&[&cfg.kafka.events_topic])?;
        Ok(Self {
            consumer,
            dead_letters: DeadLetterWriter::new(producer, cfg.kafka.dlq_topic.clone()),
            store,
            metrics,
            topic: cfg.kafka.events_topic.clone(),
            max_rows: cfg.batch.max_rows,
            max_wait: cfg.batch.max_wait(),
            max_partitions: cfg.clickhouse.max_partitions_per_insert,
            dedup_window_secs: cfg.dedup.window_secs,
            dedup_max_ids: cfg.dedup.max_ids_per_partition,
            suppressions,
        })
    }

    /// Runs until `shutdown` turns true. A batch in progress at shutdown is not committed and
    /// will be consumed again by whoever owns the partition next.
    ///
    /// Records are read where librdkafka holds them (no copy per record) from one message
    /// stream, and added to one [`Batch`] reused from batch to batch.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        let mut generation = self.rebalances();
        let mut dedup = DedupWindow::new(self.dedup_window_secs, self.dedup_max_ids);
        // Nothing is stored before the suppression list is loaded: a suppressed person's events
        // still in flight must be dropped from the first batch on.
        while !self.suppressions.is_ready() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
        let mut batch = Batch::new(self.suppressions.clone());
        let mut stream = self.consumer.stream();
        loop {
            batch.clear();
            // Wait as long as it takes for the first record of a batch, then at most max_wait.
            let first = recv_retrying(|| self.consumer.recv(), |e| self.consume_failed(e), &mut shutdown).await;
            let Some(first) = first else { return Ok(()) };
            let deadline = tokio::time::sleep(self.max_wait);
            tokio::pin!(deadline);
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                if !self.take(&mut batch, &mut dedup, &mut generation, &msg, &mut shutdown).await {
                    return Ok(()); // shutdown: nothing of this batch was stored or committed
                }
                drop(msg);
                if batch.len() >= self.max_rows {
                    break;
                }
                next = self.recv_until(&mut stream, deadline.as_mut()).await;
            }
            // A rebalance after the last record still takes revoked partitions' rows away, and
            // the rows of partitions whose window was dropped are checked against a fresh one.
            self.follow_rebalance(&mut generation, &mut batch, &mut dedup);
            for partition in batch.unloaded_partitions(&dedup) {
                let from = batch.first_offset(partition).unwrap_or(0);
                if !self.load_window(&mut batch, &mut dedup, partition, from, &mut shutdown).await {
                    return Ok(());
                }
            }

            let dead = std::mem::take(&mut batch.dead);
            if !self.dead_letter(&dead, &mut shutdown).await {
                return Ok(());
            }
            let Some(poison) = self.store_rows(&mut batch, &mut shutdown).await else { return Ok(()) };
            if !self.dead_letter(&poison, &mut shutdown).await {
                return Ok(());
            }
            self.commit(&batch.next_offsets);
            dedup.expire(to_datetime(chrono::Utc::now()));
            self.metrics.dedup_ids.set(dedup.len() as i64);
        }
    }

    /// Adds one record to the batch, loading its partition's dedup window first if needed.
    /// False if shutdown came first.
    async fn take(
        &self,
        batch: &mut Batch,
        dedup: &mut DedupWindow,
        generation: &mut u64,
        msg: &BorrowedMessage<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        self.follow_rebalance(generation, batch, dedup);
        let partition = msg.partition();
        if !dedup.knows(partition) {
            let from = batch.first_offset(partition).map_or(msg.offset(), |o| o.min(msg.offset()));
            if !self.load_window(batch, dedup, partition, from, shutdown).await {
                return false;
            }
        }
        // The consumer subscribes to this one topic: its name needs no lookup per record.
        let origin = Origin { topic: &self.topic, partition, offset: msg.offset() };
        match batch.add(dedup, origin, msg.key(), msg.payload()) {
            Added::Duplicate => self.metrics.duplicates.inc(),
            Added::Suppressed => self.metrics.suppressed.inc(),
            Added::Row | Added::Dead => {}
        }
        true
    }

    fn rebalances(&self) -> u64 {
        self.consumer.context().ownership.generation()
    }

    /// After a rebalance: partitions may have moved — another instance may have stored more of
    /// them, and rows of partitions no longer ours must not be written by us.
    fn follow_rebalance(&self, generation: &mut u64, batch: &mut Batch, dedup: &mut DedupWindow) {
        if *generation == self.rebalances() {
            return;
        }
        *generation = self.rebalances();
        let ours = self.consumer.context().ownership.partitions().into_iter().collect();
        batch.rebalanced(dedup, &ours);
    }

    fn consume_failed(&self, e: &rdkafka::error::KafkaError) {
        self.metrics.consume_errors.inc();
        tracing::warn!(error = %e, "receiving from Kafka failed; retrying");
    }

    /// The next record before `deadline` (one timer for the whole batch, not one per record),
    /// or none. A consume error ends the batch early (it is stored; the next one waits for the
    /// broker with backoff).
    async fn recv_until<'c>(
        &self,
        stream: &mut MessageStream<'c, OwnershipContext>,
        deadline: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Option<BorrowedMessage<'c>> {
        tokio::select! {
            biased;
            received = stream.next() => match received? {
                Ok(m) => Some(m),
                Err(e) => {
                    self.consume_failed(&e);
                    None
                }
            },
            () = deadline => None,
        }
    }

    /// Loads the ids `partition` stored within the window, and every id stored from offset
    /// `from` on (a replay starts there, however old its records), retrying while ClickHouse
    /// is down: without them a replayed record could be stored twice. Then checks the batch's
    /// pending rows of the partition against it. False if shutdown came first.
    async fn load_window(
        &self,
        batch: &mut Batch,
        dedup: &mut DedupWindow,
        partition: i32,
        from: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let since = to_datetime(chrono::Utc::now()).saturating_sub(self.dedup_window_secs);
        let (store, topic) = (&self.store, &self.topic);
        let mut backoff = backoff();
        let loaded = retry::until_ok(
            &mut backoff,
            shutdown,
            || store.stored_ids(topic, partition, since, from),
            |e, _| tracing::warn!(error = %e, partition, "loading stored message ids failed; retrying"),
        );
        let Some(ids) = loaded.await else { return false };
        tracing::info!(partition, ids = ids.len(), "dedup window loaded");
        dedup.load(partition, ids);
        let dropped = batch.window_loaded(dedup, partition);
        self.metrics.duplicates.inc_by(dropped as u64);
        true
    }

    /// Stores the rows in INSERTs of few enough partitions each, retrying transient failures.
    /// Returns the rows ClickHouse refused for good, as dead letters; `None` if shutdown came
    /// first (nothing committed; a replay skips what was stored).
    async fn store_rows(&self, batch: &mut Batch, shutdown: &mut watch::Receiver<bool>) -> Option<Vec<DeadLetter>> {
        let chunks = crate::consume::chunk::plan(&mut batch.rows, |p| p.timestamp, self.max_partitions);
        if chunks.len() > 1 {
            tracing::info!(
                rows = batch.rows.len(),
                inserts = chunks.len(),
                "batch spans many months; inserting it in parts"
            );
        }
        let batch = &*batch;
        let mut sink = EventSink { consumer: self, batch, shutdown, backoff: backoff() };
        let mut dead = Vec::new();
        for range in chunks {
            let chunk = &batch.rows[range];
            let outcome = store_isolating(chunk, &mut sink).await?;
            self.metrics.events_stored.inc_by(outcome.stored as u64);
            for (i, error) in outcome.poison {
                let p = &chunk[i];
                tracing::warn!(error = %error, message_id = batch.message_id(p), partition = p.partition,
                    offset = p.offset, "ClickHouse refused a row for good; dead-lettering it");
                dead.push(batch.dead_letter(p, error));
            }
        }
        Some(dead)
    }

    /// Writes dead letters, retrying while the topic is unavailable (one backoff for the whole
    /// batch: a topic that is down stays backed off). False if shutdown came first.
    async fn dead_letter(&self, dead: &[DeadLetter], shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = backoff();
        for d in dead {
            tracing::warn!(error = %d.error, partition = d.partition, "dead-lettering a record");
            let headers = [(schemas::topics::HEADER_ERROR, d.error.as_str())];
            let key = d.key.as_deref();
            if !self.dead_letters.write_until_shutdown(key, &d.payload, &headers, &mut backoff, shutdown).await {
                return false;
            }
            self.metrics.dead_letters.inc();
        }
        true
    }

    fn commit(&self, next_offsets: &HashMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (&partition, &offset) in next_offsets {
            if let Err(e) = tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset)) {
                tracing::warn!(error = %e, partition, "offset not committed");
            }
        }
        // Async, and a failure is only logged: the rows are already safe in ClickHouse, and a
        // lost commit only means a replay, which the dedup window absorbs.
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "committing offsets failed; a restart will replay them");
        }
    }
}

/// The events table, as a [`Sink`] that retries transient failures with backoff until shutdown.
struct EventSink<'a> {
    consumer: &'a EventConsumer,
    batch: &'a Batch,
    shutdown: &'a mut watch::Receiver<bool>,
    backoff: Backoff,
}

impl Sink<Pending> for EventSink<'_> {
    async fn insert(&mut self, rows: &[Pending]) -> Result<(), AggregatorError> {
        let started = std::time::Instant::now();
        let result = self
            .consumer
            .store
            .insert_row_binary::<EventRow>(COLUMNS, self.batch.encoded(rows))
            .await
            .map_err(AggregatorError::from);
        match &result {
            Ok(()) => {
                self.consumer.metrics.insert_seconds.observe(started.elapsed().as_secs_f64());
                self.backoff.succeed();
            }
            Err(_) => self.consumer.metrics.insert_failures.inc(),
        }
        result
    }

    async fn pause(&mut self, error: &AggregatorError) -> bool {
        tracing::warn!(error = %error, failures = self.backoff.failures() + 1, "ClickHouse insert failed; retrying");
        self.backoff.pause(self.shutdown).await
    }
}

/// The next item `recv` gives, retrying its errors with backoff (each reported to `failed`) —
/// a broker that is away, or a fetch error, never ends the consumer. `None` on shutdown.
pub(crate) async fn recv_retrying<T, E, F, Fut>(
    mut recv: F,
    mut failed: impl FnMut(&E),
    shutdown: &mut watch::Receiver<bool>,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = backoff();
    loop {
        let received = tokio::select! {
            r = recv() => r,
            _ = shutdown.changed() => return None,
        };
        match received {
            Ok(item) => return Some(item),
            Err(e) => failed(&e),
        }
        if !backoff.pause(shutdown).await {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn consume_error_is_not_fatal() {
        // Three receive errors (a broker away, a fetch error), then a record.
        let (_stop, mut shutdown) = watch::channel(false);
        let mut results = vec![Ok(7), Err("transport failure"), Err("all brokers down"), Err("fetch failed")];
        let mut errors = Vec::new();
        let got =
            recv_retrying(|| std::future::ready(results.pop().unwrap()), |e: &&str| errors.push(*e), &mut shutdown)
                .await;
        assert_eq!(got, Some(7), "the consumer goes on after the errors");
        assert_eq!(errors, ["fetch failed", "all brokers down", "transport failure"], "each error reported");

        // Errors for ever: it keeps retrying until shutdown, and then ends cleanly.
        let (stop, mut shutdown) = watch::channel(false);
        let attempts = std::cell::Cell::new(0);
        let stopper = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            stop.send(true).unwrap();
        };
        let retrying = recv_retrying(
            || {
                attempts.set(attempts.get() + 1);
                std::future::ready(Err::<u8, _>("down"))
            },
            |_| {},
            &mut shutdown,
        );
        let (got, ()) = tokio::join!(retrying, stopper);
        assert_eq!(got, None);
        assert!(
            (10..40).contains(&attempts.get()),
            "backoff up to {MAX_BACKOFF:?}: {} attempts in 60 s",
            attempts.get()
        );
    }
}
