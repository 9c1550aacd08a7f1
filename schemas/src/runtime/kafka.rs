//! Kafka plumbing both services share: the client settings every `[kafka]` section has in
//! common, topic creation, and the dead-letter writer.
//!
//! Each service's own `[kafka]` table flattens [`KafkaClient`] into itself, so the keys stay
//! where operators know them (`kafka.brokers`, `kafka.librdkafka`, `UPTAKE_KAFKA__BROKERS`) while
//! the service keeps only its own fields (topics, group id, producer tuning).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::Deserialize;
use tokio::sync::watch;

use super::retry::Backoff;
use crate::SchemaError;

/// The connection settings of any uptake Kafka client.
///
/// Flattened into the services' `[kafka]` tables, where `deny_unknown_fields` is enforced by the
/// outer table (serde does not allow it on a flattened struct). Flattening buffers values, which
/// loses the `config` crate's own type coercion, so the strings here accept numbers and booleans
/// too (`UPTAKE_KAFKA__BROKERS=…` and a TOML `"message.max.bytes" = 4000000` keep working).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct KafkaClient {
    /// Bootstrap brokers, comma-separated `host:port`.
    #[serde(deserialize_with = "lenient_string")]
    pub brokers: String,
    /// Further librdkafka properties (`"message.max.bytes" = "4000000"`), passed through
    /// verbatim; they win over every setting the service derives itself.
    #[serde(deserialize_with = "lenient_map")]
    pub librdkafka: BTreeMap<String, String>,
}

/// Makes a service's `[kafka]` table — a struct that flattens `client: KafkaClient` beside its
/// own fields — read and write the shared settings as operators spell them (`kafka.brokers`,
/// `kafka.librdkafka`), through `Deref`/`DerefMut` to its [`KafkaClient`]. Written once here
/// for ingest and the aggregator.
#[macro_export]
macro_rules! kafka_client_section {
    ($section:ty) => {
        impl ::std::ops::Deref for $section {
            type Target = $crate::runtime::kafka::KafkaClient;
            fn deref(&self) -> &Self::Target {
                &self.client
            }
        }

        impl ::std::ops::DerefMut for $section {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.client
            }
        }
    };
}

impl Default for KafkaClient {
    fn default() -> Self {
        Self { brokers: "127.0.0.1:9092".into(), librdkafka: BTreeMap::new() }
    }
}

impl KafkaClient {
    /// Settings that only name the brokers (admin clients, tests' readers).
    pub fn for_brokers(brokers: &str) -> Self {
        Self { brokers: brokers.into(), ..Self::default() }
    }

    /// A librdkafka configuration: `bootstrap.servers`, then `service` (the service's own
    /// properties), then the `librdkafka` passthrough, which wins.
    pub fn client_config(&self, service: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in service {
            c.set(*k, *v);
        }
        for (k, v) in &self.librdkafka {
            c.set(k, v);
        }
        c
    }

    /// A passthrough property parsed as a number, or `default` when unset; `Err` holds the
    /// config key to name in the error.
    pub fn librdkafka_number(&self, property: &str, default: usize) -> Result<usize, String> {
        match self.librdkafka.get(property) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| format!("kafka.librdkafka.\"{property}\"")),
        }
    }

    /// The empty-key check every service makes; the offending config key on error.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers");
        }
        Ok(())
    }
}

fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(LenientString)
}

fn lenient_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    struct Value(#[serde(deserialize_with = "lenient_string")] String);
    let map: BTreeMap<String, Value> = BTreeMap::deserialize(d)?;
    Ok(map.into_iter().map(|(k, Value(v))| (k, v)).collect())
}

/// A string, or a number or boolean taken as its text.
struct LenientString;

impl serde::de::Visitor<'_> for LenientString {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Creates `names` with `partitions` partitions each (replication 1: the local stack and the
/// test stack have one broker). An existing topic is an error, as for the tools that call this.
pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) -> Result<(), SchemaError> {
    let admin: AdminClient<DefaultClientContext> = KafkaClient::for_brokers(brokers).client_config(&[]).create()?;
    let topics: Vec<NewTopic> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &options).await? {
        result.map_err(|(topic, e)| SchemaError::TopicCreation { topic, reason: e.to_string() })?;
    }
    Ok(())
}

/// Longest header value a dead letter carries (the reason texts echo client-chosen field names
/// and server errors): far below any broker's record limit, enough to diagnose.
pub const DEAD_LETTER_MAX_HEADER: usize = 4 * 1024;
/// How long one dead letter may wait in the producer queue before the attempt counts as failed.
const DEAD_LETTER_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes records that cannot be processed to a dead-letter topic, with the caller's headers
/// (the reason, the source, the webhook…). One writer for ingest's rejected events, the
/// aggregator's unreadable or unstorable records and the notifier's undeliverable alerts, so
/// all three truncate headers and retry the same way.
#[derive(Clone)]
pub struct DeadLetterWriter {
    producer: FutureProducer,
    topic: String,
}

impl DeadLetterWriter {
    pub fn new(producer: FutureProducer, topic: impl Into<String>) -> Self {
        Self { producer, topic: topic.into() }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Queues one dead letter and returns its acknowledgement, for callers that send many and
    /// wait for all of them under their own deadline (ingest answers a request promptly).
    pub fn enqueue(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<DeliveryFuture, KafkaError> {
        let headers = owned_headers(headers);
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Writes one dead letter and waits for the broker's acknowledgement.
    pub async fn write(&self, key: Option<&[u8]>, payload: &[u8], headers: &[(&str, &str)]) -> Result<(), KafkaError> {
        let headers = owned_headers(headers);
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer.send(record, DEAD_LETTER_QUEUE_TIMEOUT).await.map(|_| ()).map_err(|(e, _)| e)
    }

    /// Writes one dead letter, retrying with `backoff` while the topic is unavailable: a record
    /// is dead-lettered, never dropped. False if `shutdown` came first.
    pub async fn write_until_shutdown(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
        backoff: &mut Backoff,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let written = super::retry::until_ok(
            backoff,
            shutdown,
            || self.write(key, payload, headers),
            |e, wait| tracing::warn!(error = %e, topic = %self.topic, retry_in = ?wait, "writing to the dead-letter topic failed; retrying"),
        );
        written.await.is_some()
    }
}

/// Kafka headers of a dead letter, each value cut to what a header may hold.
pub fn owned_headers(headers: &[(&str, &str)]) -> OwnedHeaders {
    headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| {
        h.insert(Header { key, value: Some(super::format::truncate_at_char(value, DEAD_LETTER_MAX_HEADER)) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Service {
        #[serde(flatten)]
        client: KafkaClient,
        topic: String,
        linger_ms: u64,
    }

    impl Default for Service {
        fn default() -> Self {
            Self { client: KafkaClient::default(), topic: "t".into(), linger_ms: 5 }
        }
    }

    #[test]
    fn flattened_settings_keep_their_keys_and_unknown_keys_are_refused() {
        let s: Service =
            toml_like(r#"{"brokers": "b:1", "librdkafka": {"message.max.bytes": 4000000}, "linger_ms": 7}"#);
        assert_eq!(s.client.brokers, "b:1");
        assert_eq!(s.client.librdkafka["message.max.bytes"], "4000000");
        assert_eq!((s.topic.as_str(), s.linger_ms), ("t", 7));
        assert_eq!(s.client.librdkafka_number("message.max.bytes", 1), Ok(4_000_000));
        assert_eq!(toml_like::<Service>("{}"), Service::default());
        let err = serde_json::from_str::<Service>(r#"{"brokerz": "x"}"#).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
    }

    fn toml_like<T: serde::de::DeserializeOwned>(json: &str) -> T {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_passthrough_wins() {
        let mut c = KafkaClient::for_brokers("a:1");
        c.librdkafka.insert("acks".into(), "1".into());
        let cfg = c.client_config(&[("acks", "all"), ("linger.ms", "5")]);
        assert_eq!(cfg.get("acks"), Some("1"));
        assert_eq!(cfg.get("linger.ms"), Some("5"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("a:1"));
    }
}
