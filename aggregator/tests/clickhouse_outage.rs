//! ClickHouse becomes unreachable while events keep arriving: the aggregator waits and retries,
//! commits no Kafka offset past what ClickHouse stored, loses nothing and catches up — every
//! event stored exactly once. The outage is a cut proxy in front of the shared server.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::time::Duration;

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use schemas::event::{Event, EventKind};
use testkit::{Proxy, Stack};

async fn produce(producer: &FutureProducer, topic: &str, range: std::ops::Range<usize>) {
    for i in range {
        let e = Event::new(
            EventKind::Login,
            format!("out-{i:05}"),
            format!("acct-{}", i % 9),
            format!("u{}", i % 50),
            Utc::now(),
            Utc::now(),
            "outage".into(),
        );
        let payload = serde_json::to_vec(&e).unwrap();
        producer
            .send(FutureRecord::to(topic).key(&e.account_id).payload(&payload), Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// Offsets the group has committed, summed over the partitions.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements().iter().map(|e| if let Offset::Offset(o) = e.offset() { o } else { 0 }).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_clickhouse_outage_delays_but_loses_and_duplicates_nothing() {
    let stack = Stack::from_env("ch_outage");
    let mut cfg = testkit::aggregator::config(&stack, "ch-outage", 2).await;
    let topics = (cfg.kafka.events_topic.clone(), cfg.kafka.alerts_topic.clone(), cfg.kafka.dlq_topic.clone());
    let proxy = Proxy::start(stack.clickhouse.trim_start_matches("http://")).await;
    cfg.clickhouse.url = proxy.url();
    cfg.batch.max_wait_ms = 100;
    cfg.evaluation.interval_ms = 1_000;
    let testkit::aggregator::RunningAggregator { admin_url, stop, task } =
        testkit::aggregator::start(cfg.clone().build_and_validate().unwrap()).await;
    let metrics_url = format!("{admin_url}/metrics");

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    let db = stack.database();
    let count = format!("SELECT count() AS n FROM {db}.events");
    produce(&producer, &topics.0, 0..500).await;
    assert_eq!(stack.wait_for_count(&count, 500, Duration::from_secs(60)).await, 500);
    tokio::time::sleep(Duration::from_millis(500)).await; // let the commit of that batch land
    let committed_before = committed(&stack.kafka, &cfg.kafka.group_id, &topics.0, 2);
    assert_eq!(committed_before, 500, "offsets committed after the rows were stored");

    proxy.cut();
    produce(&producer, &topics.0, 500..1500).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stack.wait_for_count(&count, 0, Duration::ZERO).await, 500, "nothing stored while down");
    assert_eq!(committed(&stack.kafka, &cfg.kafka.group_id, &topics.0, 2), 500, "nothing committed while down");
    let text = reqwest::get(&metrics_url).await.unwrap().text().await.unwrap();
    let failures: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("uptake_aggregator_insert_failures_total "))
        .map_or(0, |v| v.trim().parse().unwrap());
    assert!(failures > 0, "the failed inserts are counted");
    assert_eq!(reqwest::get(metrics_url.replace("/metrics", "/readyz")).await.unwrap().status(), 503);

    proxy.restore();
    assert_eq!(stack.wait_for_count(&count, 1500, Duration::from_secs(60)).await, 1500, "caught up");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let totals = stack.query(&format!("SELECT count() AS n, uniqExact(message_id) AS ids FROM {db}.events")).await;
    assert_eq!((totals[0]["n"].as_str(), totals[0]["ids"].as_str()), (Some("1500"), Some("1500")), "each event once");

    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
