//! Aggregator configuration: `aggregator.toml` overlaid with `UPTAKE_…` environment variables
//! (e.g. `UPTAKE_CLICKHOUSE__URL`), validated into [`AggregatorConfig`] at start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use schemas::settings::LogFormat;
use serde::Deserialize;

use crate::health::{HealthConfig, LifecycleConfig};
use crate::AggregatorError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Address of the admin endpoints: `/healthz`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// `auto` (human in a terminal, JSON otherwise), `json` or `text`.
    pub log_format: LogFormat,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub batch: BatchConfig,
    pub dedup: DedupConfig,
    pub evaluation: EvaluationConfig,
    pub metrics: MetricsConfig,
    pub lifecycle: LifecycleConfig,
    pub health: HealthConfig,
    /// The churn-risk rule file (TOML); empty: the default rules shipped in deploy/rules.toml.
    pub rules_file: Option<std::path::PathBuf>,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            log_format: LogFormat::Auto,
            kafka: KafkaConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            batch: BatchConfig::default(),
            dedup: DedupConfig::default(),
            evaluation: EvaluationConfig::default(),
            metrics: MetricsConfig::default(),
            lifecycle: LifecycleConfig::default(),
            health: HealthConfig::default(),
            rules_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group; instances with the same group share the partitions.
    pub group_id: String,
    /// Topic of usage events to consume.
    pub events_topic: String,
    /// Topic that receives records that cannot be stored, with the reason in a header.
    pub dlq_topic: String,
    /// Topic that receives churn-risk alerts.
    pub alerts_topic: String,
    /// Further librdkafka properties for both consumer and producer, passed through verbatim.
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            group_id: "uptake-aggregator".into(),
            events_topic: schemas::topics::USAGE_EVENTS.into(),
            dlq_topic: schemas::topics::USAGE_EVENTS_DLQ.into(),
            alerts_topic: schemas::topics::USAGE_ALERTS.into(),
            librdkafka: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Consumer settings. Offsets are committed by hand, only after ClickHouse stored the rows.
    pub fn to_rdkafka_consumer(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        self.extra(c)
    }

    /// Producer settings (alerts and dead letters): acknowledged by every in-sync replica.
    pub fn to_rdkafka_producer(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000");
        self.extra(c)
    }

    fn extra(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.librdkafka {
            c.set(k, v);
        }
        c
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// HTTP endpoint of the ClickHouse server.
    pub url: String,
    /// Database holding uptake's tables; created by the migrations.
    pub database: String,
    pub user: String,
    pub password: String,
    /// For a replicated ClickHouse cluster: the cluster name (from `remote_servers`). Migrations
    /// then run `ON CLUSTER` with Replicated engines (see docs/analysts.md). Empty: one server.
    pub cluster: String,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "uptake".into(),
            user: "default".into(),
            password: String::new(),
            cluster: String::new(),
        }
    }
}

/// How consumed events are grouped into ClickHouse inserts. Bigger batches mean fewer, cheaper
/// inserts (ClickHouse prefers few large inserts); the wait bounds the added latency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    pub max_rows: usize,
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_rows: 50_000, max_wait_ms: 500 }
    }
}

impl BatchConfig {
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

/// Exactly-once storage: how long a message id is remembered, so a replayed record or a client
/// retry with the same id is stored once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupConfig {
    /// At least a day: clients retry for hours, SDKs replay their queues after an outage.
    pub window_secs: u32,
    /// Memory bound per partition (~20 bytes per id); the oldest ids go first.
    pub max_ids_per_partition: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self { window_secs: 86_400, max_ids_per_partition: 2_000_000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// How often account metrics are recomputed and rules evaluated.
    pub interval_ms: u64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self { interval_ms: 30_000 }
    }
}

impl EvaluationConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

/// Inputs of the adoption metrics.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The product's features, for feature breadth (features used ÷ catalogue). Empty: every
    /// feature any account used in the last 90 days.
    pub feature_catalogue: Vec<String>,
}

impl AggregatorConfig {
    pub fn load(file: Option<&Path>) -> Result<Self, AggregatorError> {
        let cfg: Self = schemas::settings::load(file)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what types alone cannot; each error names the offending key.
    pub fn validate(&self) -> Result<(), AggregatorError> {
        let bad = |key: &str, reason: &str| Err(AggregatorError::Config { key: key.into(), reason: reason.into() });
        for (key, value) in [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("kafka.events_topic", &self.kafka.events_topic),
            ("kafka.dlq_topic", &self.kafka.dlq_topic),
            ("kafka.alerts_topic", &self.kafka.alerts_topic),
        ] {
            if value.trim().is_empty() {
                return bad(key, "must not be empty");
            }
        }
        if !self.clickhouse.url.starts_with("http://") && !self.clickhouse.url.starts_with("https://") {
            return bad("clickhouse.url", "must be an http:// or https:// URL");
        }
        let db = &self.clickhouse.database;
        if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return bad("clickhouse.database", "must be a plain identifier (letters, digits, _)");
        }
        let cluster = &self.clickhouse.cluster;
        if !cluster.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return bad("clickhouse.cluster", "must be a cluster name (letters, digits, _ or -)");
        }
        if self.batch.max_rows == 0 {
            return bad("batch.max_rows", "must be at least 1");
        }
        if self.dedup.window_secs < 3_600 {
            return bad("dedup.window_secs", "must be at least 3600 (an hour of client retries)");
        }
        if self.evaluation.interval_ms < 100 {
            return bad("evaluation.interval_ms", "must be at least 100");
        }
        if self.lifecycle.onboarding_days < 0 || self.lifecycle.renewal_days < 0 {
            return bad("lifecycle", "onboarding_days and renewal_days must not be negative");
        }
        let h = &self.health;
        if !(0.0..=100.0).contains(&h.red_below) || !(h.red_below..=100.0).contains(&h.green_from) {
            return bad("health.green_from", "need 0 <= red_below <= green_from <= 100");
        }
        if h.seat_utilisation_target <= 0.0 || h.feature_breadth_target <= 0.0 {
            return bad("health", "seat_utilisation_target and feature_breadth_target must be above 0");
        }
        for (stage, w) in [("onboarding", &h.onboarding), ("growth", &h.growth), ("renewal", &h.renewal)] {
            let all = [w.deployment, w.adoption, w.trend, w.value, w.experience];
            if all.iter().any(|x| *x < 0.0) || all.iter().sum::<f64>() <= 0.0 {
                return bad(&format!("health.{stage}"), "weights must be non-negative with a positive sum");
            }
        }
        // The rules are validated at start too: a bad rule stops the service, naming rule and field.
        crate::rules::load_rules(self.rules_file.as_deref())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_local_config_loads() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/local/aggregator.toml"));
        let cfg = AggregatorConfig::load(Some(path)).unwrap();
        assert_eq!(cfg.admin_listen, SocketAddr::from(([127, 0, 0, 1], 8081)));
        assert_eq!((cfg.clickhouse.database.as_str(), cfg.evaluation.interval_ms), ("uptake", 5_000));
        assert_eq!(cfg.rules_file, None, "the shipped default rules");
    }

    #[test]
    fn defaults_are_valid_and_errors_name_the_key() {
        AggregatorConfig::default().validate().unwrap();
        let mut c = AggregatorConfig::default();
        c.clickhouse.database = "up-take; DROP".into();
        assert!(c.validate().unwrap_err().to_string().contains("clickhouse.database"));
        let mut c = AggregatorConfig::default();
        c.rules_file = Some("/nonexistent/rules.toml".into());
        assert!(c.validate().unwrap_err().to_string().contains("rules_file"));
    }
}
