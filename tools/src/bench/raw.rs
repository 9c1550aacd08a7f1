//! The limits: what the broker and ClickHouse take from the plainest client — an rdkafka
//! producer and consumer, and the clickhouse crate's RowBinary insert — with the same events.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::event::Event;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

use super::load::Latency;
use super::Rate;
use crate::ToolsError;

/// Writes `events` to `topic` with ingest's producer settings (idempotent, acks=all, lz4,
/// linger 5 ms) and as many records in flight as librdkafka queues; events/s until every one is
/// acknowledged.
pub async fn produce(producer_cfg: &ClientConfig, topic: &str, events: &[Event]) -> Result<Rate, ToolsError> {
    let payloads: Vec<(String, Vec<u8>)> =
        events.iter().map(|e| (e.partition_key().to_owned(), serde_json::to_vec(e).unwrap())).collect();
    let producer: FutureProducer = producer_cfg.create()?;
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for (key, payload) in &payloads {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    // Let acknowledgements drain the queue.
                    if let Some(done) = pending.next().await {
                        check(done)?;
                    }
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    while let Some(done) = pending.next().await {
        check(done)?;
    }
    Ok(Rate::new(events.len(), started.elapsed()))
}

/// The broker's side of the single-event latency: one event per send, open loop, on the same
/// schedule as ingest's single-event requests (`rate` per second for `duration`), with the same
/// producer settings. Latency counts from each event's *scheduled* send to its acknowledgement,
/// as for ingest — so ingest p99 ÷ this p99 is what our HTTP, JSON and scheduling add.
pub async fn fixed_rate(
    producer_cfg: &ClientConfig,
    topic: &str,
    events: &[Event],
    rate: u32,
    duration: Duration,
) -> Result<Latency, ToolsError> {
    let total = ((rate as f64 * duration.as_secs_f64()) as usize).min(events.len());
    let payloads: Vec<(String, Vec<u8>)> =
        events.iter().take(total).map(|e| (e.partition_key().to_owned(), serde_json::to_vec(e).unwrap())).collect();
    let producer: FutureProducer = producer_cfg.create()?;
    // Connect (metadata, broker connection) before the clock starts, as ingest did at start-up
    // (its readiness check); no record, so the topic holds only the measured events.
    producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let started = tokio::time::Instant::now();
    let mut acks = FuturesUnordered::new();
    let (mut latencies, mut errors) = (Vec::with_capacity(total), 0u64);
    for (i, (key, payload)) in payloads.iter().enumerate() {
        let at = started + Duration::from_secs_f64(i as f64 / rate as f64);
        // Collect acknowledgements while waiting for the next slot, so their time is taken
        // when they arrive, not when the schedule is done.
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(at) => break,
                Some((sent_at, done)) = acks.next(), if !acks.is_empty() => {
                    record(&mut latencies, &mut errors, sent_at, done);
                }
            }
        }
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(delivery) => acks.push(async move { (at, delivery.await) }),
            Err(_) => errors += 1,
        }
    }
    while let Some((sent_at, done)) = acks.next().await {
        record(&mut latencies, &mut errors, sent_at, done);
    }
    Ok(Latency::from(rate, started.elapsed(), &mut latencies, errors))
}

fn record(latencies: &mut Vec<Duration>, errors: &mut u64, at: tokio::time::Instant, done: Acked) {
    match done {
        Ok(Ok(_)) => latencies.push(at.elapsed()),
        _ => *errors += 1,
    }
}

type Acked = Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>;

fn check(done: Acked) -> Result<(), ToolsError> {
    match done {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.into()),
        Err(_) => Err(ToolsError::Setup("producer dropped a delivery".into())),
    }
}

/// Reads `expected` records of `topic` from the beginning of every partition (no consumer group
/// coordination, nothing committed); events/s from the first poll to the last record.
pub fn consume(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Result<Rate, ToolsError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    let mut seen = 0;
    let mut bytes = 0usize;
    while seen < expected {
        if Instant::now() > deadline {
            return Err(ToolsError::Setup(format!("raw consumer read {seen} of {expected} records in 300 s")));
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            bytes += m?.payload().map_or(0, |p| p.len());
            seen += 1;
        }
    }
    std::hint::black_box(bytes);
    Ok(Rate::new(seen, started.elapsed()))
}

/// Inserts the rows the aggregator would store for `events` straight into `events` of `store`
/// (migrated: the materialized views run, as for the aggregator), `batch` rows per INSERT.
pub async fn insert(store: &Warehouse, topic: &str, events: &[Event], batch: usize) -> Result<Rate, ToolsError> {
    let rows: Vec<EventRow> =
        events.iter().enumerate().map(|(i, e)| EventRow::new(e.clone(), topic, (i % 4) as i32, i as i64)).collect();
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        store.insert_rows(chunk).await?;
    }
    Ok(Rate::new(rows.len(), started.elapsed()))
}
