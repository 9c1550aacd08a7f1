//! Ingest configuration: `ingest.toml` overlaid with `UPTAKE_…` environment variables
//! (e.g. `UPTAKE_KAFKA__BROKERS=host:9092`) read into [`RawIngestConfig`], which
//! [`RawIngestConfig::build_and_validate`] turns into the [`IngestConfig`] the service runs with —
//! the one way to get one, so the service never holds settings that failed a check.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdkafka::ClientConfig;
use schemars::JsonSchema;
use schemas::runtime::kafka::KafkaClient;
use schemas::settings::LogFormat;
use serde::Deserialize;

use crate::keys::WriteKey;
use crate::IngestError;

/// The whole ingest configuration as read. Every field has a default fit for the local stack.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngestConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Address of `/healthz`, `/readyz` and `/metrics`: kept off the public write port, so the
    /// internet can neither read our metrics nor make us call the broker per request.
    pub admin_listen: SocketAddr,
    /// `auto` (human in a terminal, JSON otherwise), `json` or `text`; the level is `RUST_LOG`.
    pub log_format: LogFormat,
    pub kafka: KafkaConfig,
    /// Accepted write keys (at least one, here or in `write_keys_file`). A request without one
    /// of these is refused with 401. A list of `{key, source}` tables, or (as `UPTAKE_WRITE_KEYS`
    /// from the environment, replacing the file's list) a string of `<key> <source>` entries
    /// separated by newlines or commas. Keys have at least 32 characters (`openssl rand -hex
    /// 24`); the local stack's public key is refused unless `listen` is a loopback address.
    /// Errors name the entry, never the whole key.
    #[serde(deserialize_with = "crate::keys::deserialize")]
    pub write_keys: Vec<WriteKey>,
    /// A file of further keys, one `<key> <source>` per line (`#` comments): secrets stay out
    /// of the config file. Read at start by [`RawIngestConfig::load`].
    pub write_keys_file: Option<PathBuf>,
    pub limits: Limits,
    /// Browser origins allowed to call the API (CORS), e.g. `https://app.example.com`;
    /// `["*"]` allows any. Browser SDKs need this; server SDKs do not.
    pub cors_origins: Vec<String>,
    pub segment: SegmentConfig,
}

impl Default for RawIngestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            log_format: LogFormat::Auto,
            kafka: KafkaConfig::default(),
            write_keys: Vec::new(),
            write_keys_file: None,
            limits: Limits::default(),
            cors_origins: vec!["*".into()],
            segment: SegmentConfig::default(),
        }
    }
}

/// Where events go. Delivery is always `acks=all`: an event is acknowledged to the client only
/// once every in-sync replica has it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `brokers` and the `librdkafka` passthrough (which wins over the fields below), shared
    /// with the aggregator; read and written as `kafka.brokers` through `Deref`.
    #[serde(flatten)]
    pub client: KafkaClient,
    /// Topic of accepted events.
    pub topic: String,
    /// Topic of rejected events, with the reasons in the `error` header.
    pub dlq_topic: String,
    /// The compacted topic of the suppression list (key = `user:<id>` or `account:<id>`, see
    /// docs/privacy.md#suppression), read whole from the beginning at start and followed from
    /// then on. Until it has been read to its end, ingest is not ready and holds writes (at most
    /// `delivery_timeout_ms`, then 503); afterwards an event of a suppressed user or account is
    /// answered as accepted, counted (`uptake_ingest_suppressed_events_total`) and never stored.
    pub suppressions_topic: String,
    /// How long one event may wait for the broker's acknowledgement before the request fails
    /// with 503. Bounds how long a client waits when the broker is down.
    pub delivery_timeout_ms: u64,
    /// Compression of produced batches (`lz4`, `zstd`, `snappy`, `gzip`, `none`).
    pub compression: String,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`). It is the floor of a
    /// lone event's latency, and it is what keeps the broker's request rate bounded when events
    /// come one per HTTP request: at most partitions × 1000 / `linger_ms` produce requests per
    /// second, whatever the request rate. 5 ms: ≤ 800 requests/s over 4 partitions, which the
    /// local broker (Tansu: one SQLite transaction per produce request) sustains beside
    /// everything else; 0 made it one request per event and the broker fell behind at 5,000
    /// req/s (`bench`, docs/BENCHMARKS.md). Batch requests are not slowed by it: their events
    /// are queued at once, so batches fill (`batch.num.messages`) long before the linger ends.
    pub linger_ms: u64,
    /// librdkafka's idempotent producer. Off by default: a duplicate from a producer retry is
    /// already removed downstream (the aggregator stores each `message_id` once), and event
    /// order within an account does not matter (every event carries its timestamp). It cost
    /// ~23 µs of CPU per event — librdkafka's broker thread polls in a loop while the
    /// idempotent in-flight cap (5 requests) is reached — 4.4× ingest's whole work (`bench`).
    pub idempotence: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            client: KafkaClient::default(),
            topic: schemas::topics::USAGE_EVENTS.into(),
            dlq_topic: schemas::topics::USAGE_EVENTS_DLQ.into(),
            suppressions_topic: schemas::topics::USAGE_SUPPRESSIONS.into(),
            delivery_timeout_ms: 5_000,
            compression: "lz4".into(),
            linger_ms: 5,
            idempotence: false,
        }
    }
}

schemas::kafka_client_section!(KafkaConfig);

impl KafkaConfig {
    /// The librdkafka producer configuration.
    pub fn to_rdkafka(&self) -> ClientConfig {
        let (idempotence, linger, timeout) =
            (self.idempotence.to_string(), self.linger_ms.to_string(), self.delivery_timeout_ms.to_string());
        self.client.client_config(&[
            ("enable.idempotence", &idempotence),
            ("acks", "all"),
            ("compression.type", &self.compression),
            ("linger.ms", &linger),
            ("message.timeout.ms", &timeout),
            // Produce requests are small and several are in flight on one connection (one per
            // partition): with Nagle on, a request written while the previous one is
            // unacknowledged waits for that TCP ack — up to the peer's delayed-ack timer. The
            // producer batches by itself (`linger.ms`); the socket must not add a second wait.
            ("socket.nagle.disable", "true"),
        ])
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    /// The producer's largest record (librdkafka `message.max.bytes`, default 1,000,000): a
    /// record above it is refused by the producer itself.
    pub fn message_max_bytes(&self) -> Result<usize, IngestError> {
        self.client.librdkafka_number("message.max.bytes", 1_000_000).map_err(|key| {
            let v = &self.librdkafka["message.max.bytes"];
            IngestError::Config { key, reason: format!("must be a number of bytes, not {v:?}") }
        })
    }
}

/// The Segment Tracking API endpoints.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    /// Which track event names are logins, data volume, surveys and tickets; every other name
    /// is feature use with feature = event name.
    pub mapping: schemas::segment::EventMapping,
    /// Bytes of memory for the users' last `group` call, which attributes their later events to
    /// the account: the ids and 160 bytes per entry, ~300,000 users of UUID-sized ids in 64 MiB.
    /// Least recently used forgotten first, taken from the write key holding the most, so a
    /// flood through one key evicts only its own entries. 0 = remember nothing.
    pub remembered_bytes: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self { mapping: schemas::segment::EventMapping::default(), remembered_bytes: 64 * 1024 * 1024 }
    }
}

/// Request limits. Defaults follow Segment's documented limits (32 KB per event, 500 KB per
/// batch) with some headroom, so SDK traffic that Segment accepts is accepted here too.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body as sent, compressed or not (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body after gzip/deflate decompression (413 beyond): refuses decompression bombs.
    pub max_decompressed_bytes: usize,
    /// Largest single event; a bigger one is rejected (and dead-lettered) like an invalid one.
    /// At most (the producer's `message.max.bytes` − 64 KiB) / 2, ≈ 468 KB by default: an
    /// accepted event may grow to twice its size as a canonical event and must fit one record.
    pub max_event_bytes: usize,
    /// Most events in one request (413 beyond).
    pub max_batch_events: usize,
    /// Sustained events per second per write key (429 beyond); 0 = unlimited.
    pub rate_per_sec: u32,
    /// Events a write key may send at once after being idle.
    pub burst: u32,
    /// Event timestamps further ahead than this are taken as clock skew and clamped to the
    /// receive time.
    pub max_future_secs: i64,
    /// Oldest event accepted, in days before its receipt; older → a per-event error on
    /// `timestamp`. Bounds how far back a history import reaches (and so how many monthly
    /// partitions one batch can touch downstream). 1 to 36,500.
    pub max_age_days: i64,
    /// Write requests handled at once, counted once the sender's key is known; one more is
    /// refused at once with 503 and `Retry-After: 1` instead of queueing. Bounds memory and latency when the broker falls behind (the bench
    /// saw ingest grow past 1 GB with requests piling up on an overloaded broker). Sized by the
    /// RSS budget (64 MB), not by the request rate: with the broker stalled and 5,000 req/s
    /// arriving, ingest peaked at 39–54 MB with 512, 68 MB with 768 and 71–81 MB with 1,024
    /// (`bench --latency`). In flight = rate × latency, so 512 carries 5,000 req/s through
    /// 100 ms of broker latency; beyond that the p99 is lost anyway and the client's retry after
    /// a second is the better answer than a queue.
    pub max_in_flight_requests: usize,
    /// Longest wait for a request's headers, from the first byte (or from the end of the
    /// previous request on a kept-alive connection); then the connection is closed. A client
    /// trickling headers must not hold a connection forever. Load balancers' idle timeout must
    /// be shorter than this, or they reuse connections we just closed.
    pub header_timeout_ms: u64,
    /// Longest wait for a whole request body; then 408. Bounds how long a stalled client holds
    /// a connection and an in-flight permit.
    pub body_timeout_ms: u64,
    /// Open connections at most; beyond, new ones wait in the kernel's accept queue. Bounds
    /// file descriptors and memory whatever clients do.
    pub max_connections: usize,
    /// Requests without a key in the headers (the key is `writeKey` in the body, as analytics.js
    /// sends) read, inflate and parse their body before we know who they are: they get this
    /// small budget of their own (503 + Retry-After beyond), so they can never take the permits
    /// of authenticated writers. 0 = refuse key-less requests (401).
    pub max_keyless_in_flight: usize,
    /// Largest decoded (decompressed) body of a key-less request (413 beyond). Lower than
    /// `max_decompressed_bytes`: an unknown sender gets little amplification out of a gzip
    /// bomb. Segment's own batch limit is 500 KB. Never more than `max_decompressed_bytes`.
    pub max_keyless_body_bytes: usize,
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
            header_timeout_ms: 10_000,
            body_timeout_ms: 15_000,
            max_connections: 8_192,
            max_keyless_in_flight: 32,
            max_keyless_body_bytes: 512 * 1024,
        }
    }
}

impl Limits {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms)
    }

    /// The decoded-size bound of a key-less request: the lower of the two limits, so that
    /// lowering `max_decompressed_bytes` alone is never a configuration error.
    pub fn keyless_body_limit(&self) -> usize {
        self.max_keyless_body_bytes.min(self.max_decompressed_bytes)
    }
}

/// Room in a Kafka record beyond the canonical event's two-fold size: ingest's own fields
/// (received_at, source, kind…), the key and the record framing.
const EVENT_RECORD_HEADROOM: usize = 64 * 1024;

/// The validated configuration ingest runs with. Made only by
/// [`RawIngestConfig::build_and_validate`]; its settings are read through `Deref`.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    raw: RawIngestConfig,
}

impl Deref for IngestConfig {
    type Target = RawIngestConfig;

    fn deref(&self) -> &RawIngestConfig {
        &self.raw
    }
}

impl IngestConfig {
    /// [`RawIngestConfig::load`], then [`RawIngestConfig::build_and_validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, IngestError> {
        RawIngestConfig::load(file)?.build_and_validate()
    }

    /// The oldest event age accepted (`limits.max_age_days`).
    pub fn max_age(&self) -> chrono::Duration {
        chrono::Duration::days(self.limits.max_age_days)
    }
}

impl RawIngestConfig {
    /// Reads the file (if given) and the environment, and adds the keys of `write_keys_file`.
    pub fn load(file: Option<&Path>) -> Result<Self, IngestError> {
        let mut cfg: Self = schemas::settings::load(file)?;
        if let Some(path) = &cfg.write_keys_file {
            let more = crate::keys::read_file(path, cfg.listen)?;
            cfg.write_keys.extend(more);
        }
        Ok(cfg)
    }

    /// The validated configuration, or the first setting that fails a check, named by its key.
    pub fn build_and_validate(self) -> Result<IngestConfig, IngestError> {
        self.check()?;
        Ok(IngestConfig { raw: self })
    }

    /// Checks what types alone cannot; each error names the offending key.
    fn check(&self) -> Result<(), IngestError> {
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
        if self.kafka.suppressions_topic.trim().is_empty() {
            return bad("kafka.suppressions_topic", "must not be empty");
        }
        if !(100..=300_000).contains(&self.kafka.delivery_timeout_ms) {
            return bad("kafka.delivery_timeout_ms", "must be between 100 and 300000");
        }
        if !["lz4", "zstd", "snappy", "gzip", "none"].contains(&self.kafka.compression.as_str()) {
            return bad("kafka.compression", "must be one of lz4, zstd, snappy, gzip, none");
        }
        crate::keys::check_all(&self.write_keys, self.listen)?;
        if self.admin_listen == self.listen && self.listen.port() != 0 {
            return bad("admin_listen", "must differ from listen");
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
        if !(100..=300_000).contains(&self.limits.header_timeout_ms) {
            return bad("limits.header_timeout_ms", "must be between 100 and 300000");
        }
        if !(100..=600_000).contains(&self.limits.body_timeout_ms) {
            return bad("limits.body_timeout_ms", "must be between 100 and 600000");
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections", "must be at least 1");
        }
        if self.limits.max_keyless_body_bytes < 1024 {
            return bad("limits.max_keyless_body_bytes", "must be at least 1024");
        }
        if !(1..=36_500).contains(&self.limits.max_age_days) {
            return bad("limits.max_age_days", "must be between 1 and 36500");
        }
        Ok(())
    }
}

impl RawIngestConfig {
    /// The reference of every key, as docs/configuration.md holds it (`ingest --config-doc`).
    pub fn reference() -> schemas::settings::reference::Reference {
        const INTRO: &str = "`ingest --config ingest.toml` (or `UPTAKE_CONFIG=ingest.toml`). Every key can also be set by the environment variable under it, which wins over the file; lists and tables only in the file. `ingest --config-doc` prints this section.";
        schemas::settings::reference::render("ingest", INTRO, &schemars::schema_for!(RawIngestConfig), "UPTAKE_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "test-key-0123456789abcdef0123456789";

    /// Tests that read the environment (through `load`) or change it take this lock.
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn valid() -> RawIngestConfig {
        RawIngestConfig { write_keys: vec![WriteKey { key: KEY.into(), source: "web".into() }], ..Default::default() }
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("uptake-ingest-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn the_configuration_reference_is_complete_and_in_the_docs() {
        RawIngestConfig::reference().assert_in_docs(env!("CARGO_MANIFEST_DIR"), "ingest --config-doc");
    }

    #[test]
    fn defaults_with_a_key_are_valid() {
        valid().build_and_validate().unwrap();
    }

    #[test]
    fn the_shipped_local_config_loads() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/ingest.toml"));
        let cfg = IngestConfig::load(Some(path)).unwrap();
        assert_eq!(cfg.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(cfg.admin_listen, SocketAddr::from(([127, 0, 0, 1], 8082)));
        assert_eq!(cfg.write_keys[0].key, "uptake-dev-key");
        assert_eq!(cfg.cors_origins, ["*"]);
        assert_eq!(cfg.limits.max_event_bytes, 32 * 1024);
        assert_eq!((cfg.limits.header_timeout_ms, cfg.limits.body_timeout_ms), (10_000, 15_000));
        assert!(cfg.segment.mapping.login.iter().any(|n| n == "Signed In"));
        let shipped = schemas::segment::EventMapping::default();
        assert_eq!(
            (&cfg.segment.mapping.churned, &cfg.segment.mapping.renewed, &cfg.segment.mapping.contracted),
            (&shipped.churned, &shipped.renewed, &shipped.contracted),
            "the local config lists the built-in outcome names"
        );
    }

    #[test]
    fn kafka_keys_and_overrides_are_unchanged_by_the_shared_client_settings() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let path = temp_file(
            "kafka.toml",
            "[kafka]\nbrokers = \"a:1\"\nlinger_ms = 9\ntopic = \"t\"\n[kafka.librdkafka]\n\"message.max.bytes\" = \"4000000\"\n",
        );
        std::env::set_var("UPTAKE_KAFKA__BROKERS", "b:2,c:3");
        std::env::set_var("UPTAKE_KAFKA__LINGER_MS", "7");
        let cfg = schemas::settings::load::<RawIngestConfig>(Some(&path));
        std::env::remove_var("UPTAKE_KAFKA__BROKERS");
        std::env::remove_var("UPTAKE_KAFKA__LINGER_MS");
        let kafka = cfg.unwrap().kafka;
        assert_eq!((kafka.brokers.as_str(), kafka.linger_ms, kafka.topic.as_str()), ("b:2,c:3", 7, "t"));
        assert_eq!(kafka.message_max_bytes().unwrap(), 4_000_000);
        std::fs::write(&path, "[kafka]\nbrokerz = \"a:1\"\n").unwrap();
        let err = schemas::settings::load::<RawIngestConfig>(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let mut c = valid();
        c.write_keys[0].key = "short".into();
        let err = c.clone().build_and_validate().unwrap_err().to_string();
        assert!(err.contains("write_keys[0].key"), "{err}");

        let mut c = valid();
        c.kafka.compression = "brotli".into();
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("kafka.compression"));

        let mut c = valid();
        c.limits.body_timeout_ms = 0;
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("limits.body_timeout_ms"));

        let c = RawIngestConfig::default();
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("write_keys"));

        let mut c = valid();
        c.kafka.suppressions_topic = " ".into();
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("kafka.suppressions_topic"));

        let mut c = valid();
        c.limits.max_age_days = 0;
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("limits.max_age_days"));
    }

    #[test]
    fn the_event_limit_must_fit_the_producers_record_limit() {
        let mut c = valid();
        c.limits.max_event_bytes = 1024 * 1024;
        c.limits.max_decompressed_bytes = 4 * 1024 * 1024;
        let err = c.clone().build_and_validate().unwrap_err().to_string();
        assert!(err.contains("limits.max_event_bytes") && err.contains("message.max.bytes (1000000)"), "{err}");
        c.kafka.librdkafka.insert("message.max.bytes".into(), "4000000".into());
        c.clone().build_and_validate().unwrap();
        c.kafka.librdkafka.insert("message.max.bytes".into(), "lots".into());
        assert!(c.clone().build_and_validate().unwrap_err().to_string().contains("message.max.bytes"));
    }

    #[test]
    fn a_lower_decompression_limit_also_bounds_keyless_bodies() {
        let mut c = valid();
        c.limits.max_body_bytes = 4096;
        c.limits.max_decompressed_bytes = 64 * 1024;
        c.clone().build_and_validate().unwrap();
        assert_eq!(c.limits.keyless_body_limit(), 64 * 1024);
        assert_eq!(Limits::default().keyless_body_limit(), 512 * 1024);
    }

    #[test]
    fn dev_key_on_a_non_loopback_listen_is_a_config_error() {
        let mut c = valid();
        c.write_keys.push(WriteKey { key: crate::keys::DEV_KEY.into(), source: "local".into() });
        c.clone().build_and_validate().unwrap();
        c.listen = "0.0.0.0:8080".parse().unwrap();
        let err = c.clone().build_and_validate().unwrap_err().to_string();
        assert!(err.contains("write_keys[1].key") && err.contains("loopback"), "{err}");
    }

    #[test]
    fn short_key_is_a_config_error() {
        let mut c = valid();
        c.listen = "0.0.0.0:8080".parse().unwrap();
        c.write_keys[0].key = "0123456789abcdef0123456789abcde".into(); // 31 characters
        let err = c.clone().build_and_validate().unwrap_err().to_string();
        assert!(err.contains("write_keys[0].key") && err.contains("(31 characters)"), "{err}");
        assert!(!err.contains("0123456789"), "the key leaked: {err}");
    }

    #[test]
    fn keys_load_from_a_file_and_from_the_environment() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let keys = temp_file("keys", &format!("# production keys\n{KEY}-web  website\n\n{KEY}-api backend api\n"));
        let cfg_file = temp_file("cfg.toml", &format!("listen = \"0.0.0.0:8080\"\nwrite_keys_file = {:?}\n", keys));
        let cfg = IngestConfig::load(Some(&cfg_file)).unwrap();
        let got: Vec<(&str, &str)> = cfg.write_keys.iter().map(|k| (k.key.as_str(), k.source.as_str())).collect();
        assert_eq!(got, [(format!("{KEY}-web").as_str(), "website"), (format!("{KEY}-api").as_str(), "backend api")]);

        // UPTAKE_WRITE_KEYS (entries separated by commas or newlines) replaces the file's
        // `write_keys` list, like any environment override; the keys file still adds to it.
        std::env::set_var("UPTAKE_WRITE_KEYS", format!("{KEY}-env1 env-one, {KEY}-env2 env-two"));
        let cfg = IngestConfig::load(Some(&cfg_file));
        std::env::remove_var("UPTAKE_WRITE_KEYS");
        let sources: Vec<String> = cfg.unwrap().write_keys.iter().cloned().map(|k| k.source).collect();
        assert_eq!(sources, ["env-one", "env-two", "website", "backend api"]);

        // A bad line names the file's line, not the key.
        std::fs::write(&keys, format!("{KEY}-ok web\nshort-key-1234567 api\n")).unwrap();
        let err = IngestConfig::load(Some(&cfg_file)).unwrap_err().to_string();
        assert!(err.contains("write_keys_file line 2.key") && !err.contains("short-key"), "{err}");
        std::fs::write(&keys, format!("{KEY}-ok\n")).unwrap();
        let err = IngestConfig::load(Some(&cfg_file)).unwrap_err().to_string();
        assert!(err.contains("write_keys_file") && err.contains("line 1"), "{err}");
        let _ = std::fs::remove_file(keys);
        let _ = std::fs::remove_file(cfg_file);
    }
}
