//! Helpers for tests against the real local stack started by `deploy/local/test.sh`:
//! throwaway topics and databases, so tests never see each other's data.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Message};
use serde_json::Value;

/// The real broker and ClickHouse, from the environment `deploy/local/test.sh` sets.
pub struct Stack {
    pub kafka: String,
    pub clickhouse: String,
    /// Unique per test: names its topics and database.
    pub suffix: String,
}

impl Stack {
    pub fn from_env(test: &str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .with_test_writer()
            .try_init();
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run this test through deploy/local/test.sh"))
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Self {
            kafka: var("UPTAKE_TEST_KAFKA"),
            clickhouse: var("UPTAKE_TEST_CLICKHOUSE"),
            suffix: format!("{test}_{}_{}", std::process::id(), nanos % 1_000_000_000),
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    pub fn database(&self) -> String {
        format!("uptake_{}", self.suffix)
    }

    /// Creates the topics (fresh names, so never pre-existing).
    pub async fn create_topics(&self, names: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.kafka).create().expect("admin client");
        let topics: Vec<NewTopic> =
            names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
        let results = admin
            .create_topics(&topics, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))))
            .await
            .expect("create topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
        }
    }

    /// Runs SQL on ClickHouse over plain HTTP (not through the code under test) and returns
    /// the rows as JSON objects.
    pub async fn query(&self, sql: &str) -> Vec<Value> {
        let body = reqwest::Client::new()
            .post(&self.clickhouse)
            .body(format!("{sql} FORMAT JSONEachRow"))
            .send()
            .await
            .expect("clickhouse reachable")
            .error_for_status()
            .expect("query accepted")
            .text()
            .await
            .unwrap();
        body.lines().map(|l| serde_json::from_str(l).expect("JSON row")).collect()
    }

    /// Polls `sql` until it returns `want` rows' worth of `count()` or `timeout` passes.
    pub async fn wait_for_count(&self, sql: &str, want: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .query(sql)
                .await
                .first()
                .and_then(|r| r["n"].as_str().and_then(|s| s.parse().ok()).or_else(|| r["n"].as_u64()))
                .unwrap_or(0);
            if got >= want || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every record on `topic` (from the beginning) that arrives within `window`, as
    /// (key, JSON value). Reads with a fresh consumer group.
    pub async fn read_topic(&self, topic: &str, window: Duration) -> Vec<(String, Value)> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .set("group.id", format!("reader-{}-{topic}", self.suffix))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Ok(msg)) = tokio::time::timeout_at(deadline.into(), consumer.recv()).await {
            let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
            let value = serde_json::from_slice(msg.payload().unwrap_or_default()).expect("JSON record");
            out.push((key, value));
        }
        out
    }
}
