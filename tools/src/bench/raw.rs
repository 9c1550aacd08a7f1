//! The limits: what the broker and ClickHouse take from the plainest client — an rdkafka
//! producer and consumer, and the clickhouse crate's RowBinary insert — with the same events.

use std::time::{Duration, Instant};

use aggregator::store::{EventRow, Store};
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use schemas::event::Event;

use super::{BenchError, Rate};

/// Writes `events` to `topic` with ingest's producer settings (idempotent, acks=all, lz4,
/// linger 5 ms) and as many records in flight as librdkafka queues; events/s until every one is
/// acknowledged.
pub async fn produce(producer_cfg: &ClientConfig, topic: &str, events: &[Event]) -> Result<Rate, BenchError> {
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

type Acked = Result<rdkafka::producer::future_producer::OwnedDeliveryResult, futures::channel::oneshot::Canceled>;

fn check(done: Acked) -> Result<(), BenchError> {
    match done {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e.into()),
        Err(_) => Err(BenchError::Setup("producer dropped a delivery".into())),
    }
}

/// Reads `expected` records of `topic` from the beginning of every partition (no consumer group
/// coordination, nothing committed); events/s from the first poll to the last record.
pub fn consume(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Result<Rate, BenchError> {
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
            return Err(BenchError::Setup(format!("raw consumer read {seen} of {expected} records in 300 s")));
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
pub async fn insert(store: &Store, topic: &str, events: &[Event], batch: usize) -> Result<Rate, BenchError> {
    let rows: Vec<EventRow> =
        events.iter().enumerate().map(|(i, e)| EventRow::new(e.clone(), topic, (i % 4) as i32, i as i64)).collect();
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        store.insert_rows("events", chunk).await?;
    }
    Ok(Rate::new(rows.len(), started.elapsed()))
}
