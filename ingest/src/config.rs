//! Ingest configuration: `ingest.toml` overlaid with `UPTAKE_…` environment variables
//! (e.g. `UPTAKE_KAFKA__BROKERS=host:9092`), validated into [`IngestConfig`] at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use schemas::settings::LogFormat;
use serde::Deserialize;

use crate::IngestError;

/// The whole ingest configuration. Every field has a default fit for the local stack.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// `auto` (human in a terminal, JSON otherwise), `json` or `text`.
    pub log_format: LogFormat,
    pub kafka: KafkaConfig,
    /// Accepted write keys. A request without one of these is refused with 401.
    pub write_keys: Vec<WriteKey>,
    pub limits: Limits,
    /// Browser origins allowed to call the API (CORS), e.g. `https://app.example.com`;
    /// `["*"]` allows any. Browser SDKs need this; server SDKs do not.
    pub cors_origins: Vec<String>,
    pub segment: SegmentConfig,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log_format: LogFormat::Auto,
            kafka: KafkaConfig::default(),
            write_keys: Vec::new(),
            limits: Limits::default(),
            cors_origins: vec!["*".into()],
            segment: SegmentConfig::default(),
        }
    }
}

/// Where events go. Delivery is always `acks=all`: an event is acknowledged to the client only
/// once every in-sync replica has it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Topic of accepted events.
    pub topic: String,
    /// Topic of rejected events, with the reasons in the `error` header.
    pub dlq_topic: String,
    /// How long one event may wait for the broker's acknowledgement before the request fails
    /// with 503. Bounds how long a client waits when the broker is down.
    pub delivery_timeout_ms: u64,
    /// Compression of produced batches (`lz4`, `zstd`, `snappy`, `gzip`, `none`).
    pub compression: String,
    /// How long the producer waits to fill a batch; a little lingering buys much throughput.
    pub linger_ms: u64,
    /// librdkafka's idempotent producer. Off by default: a duplicate from a producer retry is
    /// already removed downstream (the aggregator stores each `message_id` once), and event
    /// order within an account does not matter (every event carries its timestamp). It cost
    /// ~23 µs of CPU per event — librdkafka's broker thread polls in a loop while the
    /// idempotent in-flight cap (5 requests) is reached — 4.4× ingest's whole work (`bench`).
    pub idempotence: bool,
    /// Further librdkafka properties, passed through verbatim (they win over the fields above).
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: schemas::topics::USAGE_EVENTS.into(),
            dlq_topic: schemas::topics::USAGE_EVENTS_DLQ.into(),
            delivery_timeout_ms: 5_000,
            compression: "lz4".into(),
            linger_ms: 5,
            idempotence: false,
            librdkafka: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// The librdkafka producer configuration.
    pub fn to_rdkafka(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", self.idempotence.to_string())
            .set("acks", "all")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string());
        for (k, v) in &self.librdkafka {
            c.set(k, v);
        }
        c
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    /// The producer's largest record (librdkafka `message.max.bytes`, default 1,000,000): a
    /// record above it is refused by the producer itself.
    pub fn message_max_bytes(&self) -> Result<usize, IngestError> {
        match self.librdkafka.get("message.max.bytes") {
            None => Ok(1_000_000),
            Some(v) => v.trim().parse().map_err(|_| IngestError::Config {
                key: "kafka.librdkafka.\"message.max.bytes\"".into(),
                reason: format!("must be a number of bytes, not {v:?}"),
            }),
        }
    }
}

/// The Segment Tracking API endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// Which track event names are logins, data volume, surveys and tickets; every other name
    /// is feature use with feature = event name.
    pub mapping: schemas::segment::EventMapping,
    /// Bytes of memory for the users' last `group` call (attribution), least recently used
    /// forgotten first, fairly per write key (see `groups.rs`). 0 = remember nothing.
    pub remembered_bytes: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self { mapping: schemas::segment::EventMapping::default(), remembered_bytes: 64 * 1024 * 1024 }
    }
}

/// A write key and the source it names (stamped on every event sent with it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteKey {
    pub key: String,
    pub source: String,
}

/// Request limits. Defaults follow Segment's documented limits (32 KB per event, 500 KB per
/// batch) with some headroom, so SDK traffic that Segment accepts is accepted here too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body as sent, compressed or not (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body after gzip/deflate decompression (413 beyond): refuses decompression bombs.
    pub max_decompressed_bytes: usize,
    /// Largest single event; a bigger one is rejected (and dead-lettered) like an invalid one.
    pub max_event_bytes: usize,
    /// Most events in one request (413 beyond).
    pub max_batch_events: usize,
    /// Sustained events per second per write key (429 beyond); 0 = unlimited.
    pub rate_per_sec: u32,
    /// Events a write key may send at once after being idle.
    pub burst: u32,
    /// Event timestamps further ahead than this are taken as clock skew and clamped.
    pub max_future_secs: i64,
    /// Oldest event accepted, in days before its receipt; older → a per-event error on
    /// `timestamp`. Bounds how far back a history import reaches (and so how many monthly
    /// partitions one batch can touch downstream).
    pub max_age_days: i64,
    /// Write requests handled at once; one more is refused at once with 503 + Retry-After
    /// instead of queueing. Bounds memory and latency when the broker falls behind (the bench
    /// saw ingest grow past 1 GB with requests piling up on an overloaded broker).
    pub max_in_flight_requests: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_decompressed_bytes: 4 * 1024 * 1024,
            max_event_bytes: 32 * 1024,
            max_batch_events: 2_500,
            rate_per_sec: 5_000,
            burst: 10_000,
            max_future_secs: 600,
            max_age_days: schemas::limits::DEFAULT_MAX_AGE_DAYS,
            max_in_flight_requests: 512,
        }
    }
}

/// Room in a Kafka record beyond the canonical event's two-fold size: ingest's own fields
/// (received_at, source, kind…), the key and the record framing.
const EVENT_RECORD_HEADROOM: usize = 64 * 1024;

impl IngestConfig {
    /// The oldest event age accepted (`limits.max_age_days`).
    pub fn max_age(&self) -> chrono::Duration {
        chrono::Duration::days(self.limits.max_age_days)
    }

    /// Reads the file (if given) and the environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, IngestError> {
        let cfg: Self = schemas::settings::load(file)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types alone cannot; each error names the offending key.
    pub fn validate(&self) -> Result<(), IngestError> {
        let bad = |key: &str, reason: &str| Err(IngestError::Config { key: key.into(), reason: reason.into() });
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers", "must name at least one broker");
        }
        if self.kafka.topic.trim().is_empty() {
            return bad("kafka.topic", "must not be empty");
        }
        if self.kafka.dlq_topic.trim().is_empty() {
            return bad("kafka.dlq_topic", "must not be empty");
        }
        if !(100..=300_000).contains(&self.kafka.delivery_timeout_ms) {
            return bad("kafka.delivery_timeout_ms", "must be between 100 and 300000");
        }
        if !["lz4", "zstd", "snappy", "gzip", "none"].contains(&self.kafka.compression.as_str()) {
            return bad("kafka.compression", "must be one of lz4, zstd, snappy, gzip, none");
        }
        if self.write_keys.is_empty() {
            return bad("write_keys", "at least one write key is required");
        }
        for (i, k) in self.write_keys.iter().enumerate() {
            if k.key.len() < 8 {
                return bad(&format!("write_keys[{i}].key"), "must be at least 8 characters");
            }
            if k.source.trim().is_empty() {
                return bad(&format!("write_keys[{i}].source"), "must name the sending source");
            }
        }
        if self.limits.max_body_bytes < 1024 {
            return bad("limits.max_body_bytes", "must be at least 1024");
        }
        if self.limits.max_decompressed_bytes < self.limits.max_body_bytes {
            return bad("limits.max_decompressed_bytes", "must be at least limits.max_body_bytes");
        }
        if self.limits.max_event_bytes == 0 || self.limits.max_event_bytes > self.limits.max_decompressed_bytes {
            return bad("limits.max_event_bytes", "must be between 1 and limits.max_decompressed_bytes");
        }
        // An accepted event must fit one Kafka record, or the producer refuses it and the
        // client retries forever: the canonical event may hold up to twice the event as sent
        // (Segment context traits are copied into traits and kept in properties), plus headroom.
        let max_record = self.kafka.message_max_bytes()?;
        if self.limits.max_event_bytes.saturating_mul(2).saturating_add(EVENT_RECORD_HEADROOM) > max_record {
            return bad(
                "limits.max_event_bytes",
                &format!(
                    "must be at most ({max_record} - {EVENT_RECORD_HEADROOM}) / 2 = {}: twice it must fit the producer's \
                     message.max.bytes ({max_record})",
                    max_record.saturating_sub(EVENT_RECORD_HEADROOM) / 2
                ),
            );
        }
        if self.limits.rate_per_sec > 0 && self.limits.burst == 0 {
            return bad("limits.burst", "must be at least 1 when rate_per_sec is set");
        }
        if self.limits.max_batch_events == 0 {
            return bad("limits.max_batch_events", "must be at least 1");
        }
        if self.limits.max_in_flight_requests == 0 {
            return bad("limits.max_in_flight_requests", "must be at least 1");
        }
        if self.limits.max_future_secs < 0 {
            return bad("limits.max_future_secs", "must not be negative");
        }
        if !(1..=36_500).contains(&self.limits.max_age_days) {
            return bad("limits.max_age_days", "must be between 1 and 36500");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> IngestConfig {
        IngestConfig {
            write_keys: vec![WriteKey { key: "0123456789".into(), source: "web".into() }],
            ..Default::default()
        }
    }

    #[test]
    fn defaults_with_a_key_are_valid() {
        valid().validate().unwrap();
    }

    #[test]
    fn the_shipped_local_config_loads() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/ingest.toml"));
        let cfg = IngestConfig::load(Some(path)).unwrap();
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(cfg.write_keys[0].key, "uptake-dev-key");
        assert_eq!(cfg.cors_origins, ["*"]);
        assert_eq!(cfg.limits.max_event_bytes, 32 * 1024);
        assert!(cfg.segment.mapping.login.iter().any(|n| n == "Signed In"));
    }

    #[test]
    fn errors_name_the_bad_key() {
        let mut c = valid();
        c.write_keys[0].key = "short".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("write_keys[0].key"), "{err}");

        let mut c = valid();
        c.kafka.compression = "brotli".into();
        assert!(c.validate().unwrap_err().to_string().contains("kafka.compression"));

        let c = IngestConfig::default();
        assert!(c.validate().unwrap_err().to_string().contains("write_keys"));

        let mut c = valid();
        c.limits.max_age_days = 0;
        assert!(c.validate().unwrap_err().to_string().contains("limits.max_age_days"));
    }

    #[test]
    fn the_event_limit_must_fit_the_producers_record_limit() {
        let mut c = valid();
        c.limits.max_event_bytes = 1024 * 1024;
        c.limits.max_decompressed_bytes = 4 * 1024 * 1024;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("limits.max_event_bytes") && err.contains("message.max.bytes (1000000)"), "{err}");
        c.kafka.librdkafka.insert("message.max.bytes".into(), "4000000".into());
        c.validate().unwrap();
        c.kafka.librdkafka.insert("message.max.bytes".into(), "lots".into());
        assert!(c.validate().unwrap_err().to_string().contains("message.max.bytes"));
    }
}
