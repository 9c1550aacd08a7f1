//! Aggregator configuration: `aggregator.toml` overlaid with `UPTAKE_…` environment variables
//! (e.g. `UPTAKE_CLICKHOUSE__URL`) read into [`RawAggregatorConfig`], which
//! [`RawAggregatorConfig::build_and_validate`] turns into the [`AggregatorConfig`] the service runs
//! with — the one way to get one, as in ingest and the console.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;
use schemars::JsonSchema;
use schemas::runtime::kafka::KafkaClient;
use schemas::settings::LogFormat;
use serde::Deserialize;

/// The `[clickhouse]` section: the table crate's, shared with the console and the tools.
pub use warehouse::config::{ClickHouseConfig, MAX_PARTITIONS_PER_INSERT};

use crate::model::{HealthConfig, LifecycleConfig};
use crate::AggregatorError;

mod notifier;
mod privacy;

pub use notifier::{NotifierConfig, WebhookConfig, WebhookFormat};
pub use privacy::{PrivacyConfig, RetentionConfig, RetentionMode};

/// The whole aggregator configuration as read. Every field has a default fit for the local stack.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAggregatorConfig {
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
    /// CSM notifications: alerts → webhooks. Runs inside `aggregator run` when webhooks are
    /// configured, or alone as `aggregator notify`.
    pub notifier: NotifierConfig,
    /// Privacy requests: how deletions are carried out (docs/privacy.md).
    pub privacy: PrivacyConfig,
    /// How long each class of data is kept (docs/privacy.md#retention).
    pub retention: RetentionConfig,
}

impl Default for RawAggregatorConfig {
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
            notifier: NotifierConfig::default(),
            privacy: PrivacyConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `brokers` and the `librdkafka` passthrough (for both consumer and producer), shared with
    /// ingest; read and written as `kafka.brokers` through `Deref`.
    #[serde(flatten)]
    pub client: KafkaClient,
    /// Consumer group; instances with the same group share the partitions.
    pub group_id: String,
    /// Topic of usage events to consume.
    pub events_topic: String,
    /// Topic that receives records that cannot be stored, with the reason in a header.
    pub dlq_topic: String,
    /// Topic that receives churn-risk alerts.
    pub alerts_topic: String,
    /// The privacy suppression list (compacted), read whole at start: events of a suppressed
    /// person or account still in flight are dropped, not stored (docs/privacy.md).
    pub suppressions_topic: String,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            client: KafkaClient::default(),
            group_id: "uptake-aggregator".into(),
            events_topic: schemas::topics::USAGE_EVENTS.into(),
            dlq_topic: schemas::topics::USAGE_EVENTS_DLQ.into(),
            alerts_topic: schemas::topics::USAGE_ALERTS.into(),
            suppressions_topic: schemas::topics::USAGE_SUPPRESSIONS.into(),
        }
    }
}

schemas::kafka_client_section!(KafkaConfig);

impl KafkaConfig {
    /// Consumer settings. Offsets are committed by hand, only after ClickHouse stored the rows.
    /// `fetch.wait.max.ms` is 50, not librdkafka's 500: a broker may hold a fetch for the whole
    /// wait even when records arrive (the local Tansu does), and every record then waits that long
    /// before it is read — `bench` measured ingest's 200 → stored row at p50 602 ms with 500 and
    /// 234 ms with 50. The cost is at most 20 empty fetches a second per broker when idle.
    pub fn to_rdkafka_consumer(&self) -> ClientConfig {
        self.client.client_config(&[
            ("group.id", &self.group_id),
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("enable.partition.eof", "false"),
            ("fetch.wait.max.ms", "50"),
        ])
    }

    /// The event consumer's settings: [`Self::to_rdkafka_consumer`] with librdkafka's statistics
    /// every 15 s, which give the consumer lag per partition (`consume::lag`), unless the
    /// passthrough sets their interval. Only this consumer: the others have no use for them.
    pub fn to_rdkafka_event_consumer(&self) -> ClientConfig {
        let mut c = self.to_rdkafka_consumer();
        if !self.client.librdkafka.contains_key("statistics.interval.ms") {
            c.set("statistics.interval.ms", "15000");
        }
        c
    }

    /// Producer settings (alerts and dead letters): acknowledged by every in-sync replica.
    pub fn to_rdkafka_producer(&self) -> ClientConfig {
        self.client.client_config(&[("enable.idempotence", "true"), ("acks", "all"), ("message.timeout.ms", "10000")])
    }
}

/// How consumed events are grouped into ClickHouse inserts. Bigger batches mean fewer, cheaper
/// inserts (ClickHouse prefers few large inserts); the wait bounds the added latency.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most events in one insert.
    pub max_rows: usize,
    /// Longest an event waits for its batch to fill before the batch is inserted anyway.
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// How often account metrics are recomputed and rules evaluated.
    pub interval_ms: u64,
    /// How often a pass covers every account. The passes in between cover only the accounts
    /// with events stored since the pass before and those with a rule's clock running (`for`,
    /// `resolve_after`): nothing else of an account changes within a day but the time-based
    /// metrics (days since the last activity), whose rules this bounds the delay of. The first
    /// pass of each UTC day and after a rebalance is always full. 0 = every pass is full.
    pub full_every_ms: u64,
    /// Accounts a pass reads, computes and writes at a time: bounds the memory a pass holds
    /// (about 2.5 KB per account in flight) whatever the accounts an instance owns.
    pub chunk_accounts: usize,
    /// How long an account's history must have stopped arriving before its rules are judged,
    /// when what arrives is old (events over an hour old, whatever live traffic arrives beside
    /// them): an import of its past, or the backlog of an outage. Its metrics are written meanwhile; judged on half its
    /// history it would look idle and alert, then resolve as the rest arrived. Never held back
    /// more than 6 hours at a time. 0 = at once (docs/architecture.md#one-timeline).
    pub settle_ms: u64,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self { interval_ms: 30_000, full_every_ms: 600_000, chunk_accounts: 20_000, settle_ms: 300_000 }
    }
}

impl EvaluationConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn full_every(&self) -> Duration {
        Duration::from_millis(self.full_every_ms)
    }

    /// `settle_ms` in whole seconds (ClickHouse's clock counts seconds), rounded up.
    pub fn settle_secs(&self) -> u32 {
        self.settle_ms.div_ceil(1000).min(u32::MAX as u64) as u32
    }
}

/// Inputs of the adoption metrics.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The product's features, for feature breadth (features used ÷ catalogue). Empty: every
    /// feature any account used in the last 64 days.
    pub feature_catalogue: Vec<String>,
}

/// The validated configuration the aggregator runs with. Made only by
/// [`RawAggregatorConfig::build_and_validate`]; its settings are read through `Deref`.
#[derive(Debug, Clone)]
pub struct AggregatorConfig {
    raw: RawAggregatorConfig,
}

impl Deref for AggregatorConfig {
    type Target = RawAggregatorConfig;

    fn deref(&self) -> &RawAggregatorConfig {
        &self.raw
    }
}

impl AggregatorConfig {
    /// [`RawAggregatorConfig::load`], then [`RawAggregatorConfig::build_and_validate`].
    pub fn load(file: Option<&Path>) -> Result<Self, AggregatorError> {
        RawAggregatorConfig::load(file)?.build_and_validate()
    }

    /// The validated settings as raw ones again, to change and validate anew (tests, tools).
    pub fn to_raw(&self) -> RawAggregatorConfig {
        self.raw.clone()
    }
}

impl RawAggregatorConfig {
    /// Reads the file (if given) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, AggregatorError> {
        Ok(schemas::settings::load(file)?)
    }

    /// The validated configuration, or the first setting that fails a check, named by its key.
    pub fn build_and_validate(self) -> Result<AggregatorConfig, AggregatorError> {
        self.check()?;
        Ok(AggregatorConfig { raw: self })
    }

    /// Checks what types alone cannot; each error names the offending key.
    fn check(&self) -> Result<(), AggregatorError> {
        let bad = |key: &str, reason: &str| Err(AggregatorError::Config { key: key.into(), reason: reason.into() });
        for (key, value) in [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("kafka.events_topic", &self.kafka.events_topic),
            ("kafka.dlq_topic", &self.kafka.dlq_topic),
            ("kafka.alerts_topic", &self.kafka.alerts_topic),
            ("kafka.suppressions_topic", &self.kafka.suppressions_topic),
        ] {
            if value.trim().is_empty() {
                return bad(key, "must not be empty");
            }
        }
        self.clickhouse.validate()?;
        if self.batch.max_rows == 0 {
            return bad("batch.max_rows", "must be at least 1");
        }
        if self.dedup.window_secs < 3_600 {
            return bad("dedup.window_secs", "must be at least 3600 (an hour of client retries)");
        }
        if self.evaluation.interval_ms < 100 {
            return bad("evaluation.interval_ms", "must be at least 100");
        }
        if self.evaluation.chunk_accounts == 0 {
            return bad("evaluation.chunk_accounts", "must be at least 1");
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
        self.notifier.validate()?;
        self.privacy.validate()?;
        self.retention.validate()?;
        // The file must be readable; its rules are parsed and validated once, at start, by
        // `rules::RuleSet::load` (config stays a leaf: it knows no rule).
        if let Some(p) = &self.rules_file {
            std::fs::File::open(p).map_err(|e| AggregatorError::Config {
                key: "rules_file".into(),
                reason: format!("{}: {e}", p.display()),
            })?;
        }
        Ok(())
    }
}

impl RawAggregatorConfig {
    /// The reference of every key, as docs/configuration.md holds it (`aggregator --config-doc`).
    pub fn reference() -> schemas::settings::reference::Reference {
        const INTRO: &str = "`aggregator --config aggregator.toml run` (or `UPTAKE_CONFIG`). The same file configures the notifier (`aggregator notify`), the backtest, and the console's view of ClickHouse, Kafka, rules and health bands (the console's `aggregator_config`). Every key can also be set by the environment variable under it, which wins over the file; lists and tables only in the file. `aggregator --config-doc` prints this section.";
        schemas::settings::reference::render(
            "aggregator",
            INTRO,
            &schemars::schema_for!(RawAggregatorConfig),
            "UPTAKE_",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error `c` is refused with.
    fn refused(c: &RawAggregatorConfig) -> String {
        c.clone().build_and_validate().unwrap_err().to_string()
    }

    #[test]
    fn the_configuration_reference_is_complete_and_in_the_docs() {
        RawAggregatorConfig::reference().assert_in_docs(env!("CARGO_MANIFEST_DIR"), "aggregator --config-doc");
    }

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
        RawAggregatorConfig::default().build_and_validate().unwrap();
        let mut c = RawAggregatorConfig::default();
        c.clickhouse.database = "up-take; DROP".into();
        assert!(refused(&c).contains("clickhouse.database"));
        for bad in [0, 101] {
            let mut c = RawAggregatorConfig::default();
            c.clickhouse.max_partitions_per_insert = bad;
            assert!(refused(&c).contains("clickhouse.max_partitions_per_insert"));
        }
        let c = RawAggregatorConfig { rules_file: Some("/nonexistent/rules.toml".into()), ..Default::default() };
        assert!(refused(&c).contains("rules_file"));
    }
}
