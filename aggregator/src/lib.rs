//! uptake aggregator: consumes usage events from Kafka into ClickHouse, keeps per-account
//! rolling adoption metrics and turns them into churn-risk alerts.

// The public surface. Other crates use: the service (`run`/`serve`, [`Role`], its config and
// error, [`Clock`]); for evaluating stored history in tests, the bench and the console's seeding,
// the [`Evaluator`] with its report, the [`RuleSet`], fixed [`Ownership`] and the
// [`CollectingSink`]; the Prometheus registry [`Telemetry`]; the `backtest`; the `notifier` (run
// alone in tests); the `model`'s row types and the metric table of docs/analysts.md; and `store`,
// the ClickHouse tables and their row types. The consume path and the evaluation's insides are
// private.
mod admin;
pub mod backtest;
pub mod config;
mod consume;
mod error;
mod evaluate;
pub mod model;
pub mod notifier;
pub mod privacy;
mod store;
mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use rdkafka::producer::{FutureProducer, Producer};
use schemas::runtime::suppressions::{self, Suppressions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use warehouse::Warehouse;

pub use consume::Ownership;
pub use evaluate::rules::{RuleSet, DEFAULT_RULES};
pub use evaluate::sink::CollectingSink;
pub use evaluate::{Evaluator, PassReport, PassTimings, STORE_SLACK_SECS};
pub use schemas::runtime::Clock;
pub use store::{account_inputs, evaluation_sql};
pub use telemetry::Telemetry;

pub use config::{AggregatorConfig, RawAggregatorConfig};
pub use error::AggregatorError;

/// What runs: the whole aggregator, or only the notifier (`aggregator notify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Consumer, evaluator, and the notifier when webhooks are configured.
    All,
    /// Only the notifier, scaled or deployed apart from the aggregation.
    Notifier,
}

/// [`serve`] with the rule set `cfg.rules_file` names (loaded here, once). Tests call this with
/// an admin listener on port 0 and, where a result depends on the hour, a fixed clock.
pub async fn run(
    cfg: AggregatorConfig,
    role: Role,
    clock: Clock,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AggregatorError> {
    let rules = evaluate::rules::RuleSet::load(cfg.rules_file.as_deref())?;
    serve(cfg, rules, role, clock, admin, shutdown).await
}

/// Runs the aggregator — migrations, consumer, evaluator, notifier and admin endpoints, or the
/// notifier and admin endpoints alone — until `shutdown` completes or one of its parts fails.
/// `rules` were loaded and validated at start (`main`); every evaluation pass runs at `clock`'s
/// now ([`Clock::system`] in production).
pub async fn serve(
    cfg: AggregatorConfig,
    rules: evaluate::rules::RuleSet,
    role: Role,
    clock: Clock,
    admin: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AggregatorError> {
    let warehouse = Warehouse::new(&cfg.clickhouse);
    let store = store::Store::new(warehouse.clone());
    let applied = warehouse.migrate().await?;
    tracing::info!(?applied, database = warehouse.database().name(), "schema up to date");
    let metrics = Arc::new(telemetry::Telemetry::new());
    let producer: FutureProducer = cfg.kafka.to_rdkafka_producer().create()?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if role == Role::All {
        let ownership = Arc::new(consume::Ownership::default());
        let suppressions = Suppressions::default();
        let follower = cfg.kafka.client.client_config(&[]);
        let topic = cfg.kafka.suppressions_topic.clone();
        tasks.spawn(suppressions::follow(follower, topic, suppressions.clone(), stopped.clone()).map(Ok));
        let consumer = consume::EventConsumer::new(
            &cfg,
            store.clone(),
            producer.clone(),
            metrics.clone(),
            ownership.clone(),
            suppressions,
        )?;
        let worker = privacy::DeletionWorker::new(
            warehouse.clone(),
            cfg.privacy.clone(),
            ownership.clone(),
            metrics.clone(),
            clock.clone(),
        );
        tasks.spawn(worker.run(stopped.clone()));
        let retention = privacy::retention::Retention::new(
            warehouse.clone(),
            cfg.retention.clone(),
            ownership.clone(),
            metrics.clone(),
            clock.clone(),
        );
        tasks.spawn(retention.run(stopped.clone()));
        let evaluator =
            evaluate::Evaluator::live(&cfg, rules, warehouse.clone(), producer.clone(), metrics.clone(), ownership);
        tasks.spawn(consumer.run(stopped.clone()));
        tasks.spawn(evaluator.run(cfg.evaluation.interval(), clock, stopped.clone()));
    }
    if role == Role::Notifier || !cfg.notifier.webhooks.is_empty() {
        let notifier = notifier::Notifier::new(&cfg, warehouse.clone(), producer.clone(), metrics.clone())?;
        tasks.spawn(notifier.run(stopped.clone()));
    }
    tasks.spawn(admin::serve(admin, admin::AdminState { store, metrics }, stopped));

    let mut result = Ok(());
    tokio::select! {
        _ = shutdown => {}
        Some(done) = tasks.join_next() => {
            // Nothing ends on its own before shutdown: an early end is a failure.
            result = Err(outcome(done).err().unwrap_or(AggregatorError::Task("a task ended before shutdown".into())));
        }
    }
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        if let (Ok(()), Err(e)) = (&result, outcome(done)) {
            result = Err(e);
        }
    }
    producer.flush(Duration::from_secs(10))?;
    result
}

fn outcome(done: Result<Result<(), AggregatorError>, tokio::task::JoinError>) -> Result<(), AggregatorError> {
    done.map_err(|e| AggregatorError::Task(e.to_string()))?
}
