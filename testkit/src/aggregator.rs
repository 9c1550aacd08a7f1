//! The aggregator in-process in one call: fresh topics and database on the test stack, its own
//! consumer group, admin listener on port 0.

use std::sync::Arc;

use aggregator::{
    AggregatorConfig, AggregatorError, Clock, Evaluator, Ownership, PassReport, RawAggregatorConfig, Role, RuleSet,
};
use chrono::NaiveDate;
use rdkafka::producer::FutureProducer;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

use crate::Stack;

/// An aggregator configuration on `stack`: fresh `usage-events`, `usage-alerts` and
/// `usage-events-dlq` topics (created here with `partitions` partitions), the group
/// `{group}-{suffix}`, and the test's database, as read: tests tune batching and evaluation
/// on it, then `build_and_validate` it as the service does at start.
pub async fn config(stack: &Stack, group: &str, partitions: i32) -> RawAggregatorConfig {
    let topics = (stack.topic("usage-events"), stack.topic("usage-alerts"), stack.topic("usage-events-dlq"));
    stack.create_topics(&[&topics.0, &topics.1, &topics.2], partitions).await;
    let mut cfg = config_for(stack, group);
    (cfg.kafka.events_topic, cfg.kafka.alerts_topic, cfg.kafka.dlq_topic) = topics;
    cfg
}

/// Like [`config`] without creating topics (they keep their default names until set).
pub fn config_for(stack: &Stack, group: &str) -> RawAggregatorConfig {
    let mut cfg = RawAggregatorConfig::default();
    cfg.kafka.brokers = stack.kafka.clone();
    cfg.kafka.group_id = format!("{group}-{}", stack.suffix);
    cfg.clickhouse.url = stack.clickhouse.clone();
    cfg.clickhouse.database = stack.database();
    // A suppression list of the test's own (the follower creates the topic): one test's
    // suppressions never reach another's aggregator.
    cfg.kafka.suppressions_topic = stack.topic("usage-suppressions");
    cfg
}

/// A running aggregator ([`Role::All`] unless started with [`start_as`]).
pub struct RunningAggregator {
    /// `http://` address of `/healthz`, `/readyz`, `/metrics`.
    pub admin_url: String,
    /// Sending (or dropping) it stops the aggregator.
    pub stop: oneshot::Sender<()>,
    pub task: JoinHandle<Result<(), AggregatorError>>,
}

impl RunningAggregator {
    /// Stops it and waits for a clean end.
    pub async fn stop(self) -> Result<(), AggregatorError> {
        let _ = self.stop.send(());
        self.task.await.expect("aggregator task panicked")
    }
}

/// A rule file with one week-over-week rule (`active_users_drop`: weekly active users −50 % vs
/// the week before, from ≥ 3), for tests whose books are a few days long: the shipped rules
/// compare with a baseline that needs four weeks of history.
pub fn week_over_week_rules(stack: &Stack) -> std::path::PathBuf {
    rules_file(
        stack,
        r#"[[rule]]
id = "active_users_drop"
severity = "warning"
when = { kind = "change", metric = "active_users", window = "7d", at_most_pct = -50, min_base = 3 }
"#,
    )
}

/// Writes `rules` (rule-file TOML) to a file of this test's own and returns its path, for
/// `AggregatorConfig::rules_file`.
pub fn rules_file(stack: &Stack, rules: &str) -> std::path::PathBuf {
    let path = stack.temp_path("rules.toml");
    std::fs::write(&path, rules).expect("writing the rule file");
    path
}

/// Runs `cfg` in-process with every role, on the wall clock.
pub async fn start(cfg: AggregatorConfig) -> RunningAggregator {
    start_as(cfg, Role::All).await
}

/// Runs `cfg` in-process with every role, its evaluator on `clock` (e.g. a fixed instant, so that
/// what a test asserts does not depend on the hour it runs at).
pub async fn start_at(cfg: AggregatorConfig, clock: Clock) -> RunningAggregator {
    spawn(cfg, Role::All, clock).await
}

/// Runs `cfg` in-process as `role`, on the wall clock.
pub async fn start_as(cfg: AggregatorConfig, role: Role) -> RunningAggregator {
    spawn(cfg, role, Clock::system()).await
}

async fn spawn(cfg: AggregatorConfig, role: Role, clock: Clock) -> RunningAggregator {
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}", admin.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(aggregator::run(cfg, role, clock, admin, async {
        let _ = stopped.await;
    }));
    RunningAggregator { admin_url, stop, task }
}

/// The CSM notifier alone (as `aggregator notify` runs it), in a task; send `true` on the
/// returned channel to stop it, or abort the task to stop it as a crash would.
pub fn start_notifier(
    cfg: &AggregatorConfig,
    store: &warehouse::Warehouse,
    producer: &rdkafka::producer::FutureProducer,
    metrics: std::sync::Arc<aggregator::Telemetry>,
) -> (tokio::sync::watch::Sender<bool>, JoinHandle<()>) {
    let notifier =
        aggregator::notifier::Notifier::new(cfg, store.clone(), producer.clone(), metrics).expect("notifier");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    (stop, tokio::spawn(async move { notifier.run(stopped).await.expect("notifier run") }))
}

/// A fresh live evaluator of partition 0 on `store`, with `cfg`'s rules, publishing through
/// `producer`: nothing seen yet, as after an import or a restart. For tests that evaluate stored
/// history at chosen instants without consuming.
pub fn live_evaluator(cfg: &AggregatorConfig, store: &Warehouse, producer: &FutureProducer) -> Evaluator {
    let rules = RuleSet::load(cfg.rules_file.as_deref()).expect("the rules");
    let metrics = Arc::new(aggregator::Telemetry::new());
    Evaluator::live(cfg, rules, store.clone(), producer.clone(), metrics, Arc::new(Ownership::fixed([0])))
}

/// A test of stored history: a one-partition aggregator configured with `rules` (a rule file's
/// text), its migrated database, and a producer for the alerts a pass publishes. Rows are
/// written straight to ClickHouse, as the consumer would have stored them.
pub struct StoredHistory {
    pub cfg: AggregatorConfig,
    pub store: Warehouse,
    pub producer: FutureProducer,
}

impl StoredHistory {
    pub async fn new(stack: &Stack, name: &str, rules: &str) -> Self {
        let mut raw = config(stack, name, 1).await;
        raw.rules_file = Some(rules_file(stack, rules));
        let cfg = raw.build_and_validate().expect("a valid test config");
        let store = Warehouse::new(&cfg.clickhouse);
        store.migrate().await.expect("migrations");
        let producer = rdkafka::ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().expect("producer");
        Self { cfg, store, producer }
    }

    /// The events topic the rows are stored as read from.
    pub fn topic(&self) -> &str {
        &self.cfg.kafka.events_topic
    }

    /// Stores `rows`, then a fresh live evaluator (nothing seen yet, as after an import) passes
    /// at the last second of `day`: its report.
    pub async fn evaluate_at_end_of(&self, rows: &[EventRow], day: NaiveDate) -> PassReport {
        self.store.insert_rows(rows).await.expect("insert");
        let mut ev = live_evaluator(&self.cfg, &self.store, &self.producer);
        let end = day.and_hms_opt(23, 59, 59).expect("a time").and_utc();
        ev.evaluate(end).await.expect("a pass")
    }
}
