//! Where an evaluation pass's output goes (docs/architecture.md#alert-sink): its metrics rows,
//! its alert records (published, then recorded), and the recorded episode state it starts from.
//! Production publishes to Kafka and records in ClickHouse ([`LiveSink`]); a backtest or a unit
//! test collects what it would have sent ([`CollectingSink`]) and starts from no episodes.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::alert::Alert;

use crate::episode::{EpisodeHistory, OpenEpisode};
use crate::metrics::Metrics;
use crate::model::MetricsRow;
use crate::store::{AlertRow, Store};
use crate::AggregatorError;

/// The evaluator's output.
pub trait AlertSink: Send + Sync + 'static {
    /// The recorded open episodes and episode history, read at start and after a rebalance.
    fn recorded_episodes(
        &self,
    ) -> impl Future<Output = Result<(Vec<OpenEpisode>, Vec<EpisodeHistory>), AggregatorError>> + Send;

    /// Stores a pass's metrics rows.
    fn write_metrics(&self, rows: &[MetricsRow]) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Publishes a pass's alert records, each acknowledged, before they are recorded.
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Records published alert records (the `alerts` table).
    fn record(&self, rows: &[AlertRow]) -> impl Future<Output = Result<(), AggregatorError>> + Send;
}

/// Production: alert records to the alerts topic, rows to ClickHouse.
pub struct LiveSink {
    store: Store,
    producer: FutureProducer,
    topic: String,
    metrics: Arc<Metrics>,
}

impl LiveSink {
    pub fn new(store: Store, producer: FutureProducer, topic: impl Into<String>, metrics: Arc<Metrics>) -> Self {
        Self { store, producer, topic: topic.into(), metrics }
    }
}

impl AlertSink for LiveSink {
    async fn recorded_episodes(&self) -> Result<(Vec<OpenEpisode>, Vec<EpisodeHistory>), AggregatorError> {
        Ok((self.store.open_episodes().await?, self.store.episode_history().await?))
    }

    async fn write_metrics(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.store.insert_rows("account_metrics", rows).await
    }

    /// All in flight at once. Before their rows are stored: a crash in between re-sends them
    /// after the restart with the same ids — the notifier's ledger drops the repeat — rather
    /// than losing one.
    async fn publish(&self, alerts: &[Alert]) -> Result<(), AggregatorError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let payloads = alerts
            .iter()
            .map(|a| serde_json::to_vec(a).map_err(schemas::SchemaError::from))
            .collect::<Result<Vec<_>, _>>()?;
        let sends = alerts.iter().zip(&payloads).map(|(alert, payload)| {
            let record = FutureRecord::to(&self.topic).key(&alert.account_id).payload(payload);
            self.producer.send(record, Duration::from_secs(30))
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| AggregatorError::Delivery(format!("alert topic: {e}")))?;
        }
        for alert in alerts {
            self.metrics.alerts.with_label_values(&[alert.status.as_str()]).inc();
            tracing::info!(account = %alert.account_id, rule = %alert.rule_id, status = alert.status.as_str(), reason = %alert.reason, "alert");
        }
        Ok(())
    }

    async fn record(&self, rows: &[AlertRow]) -> Result<(), AggregatorError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.store.insert_rows("alerts", rows).await
    }
}

/// Keeps what it is given and starts from no recorded episodes: backtests and unit tests.
/// Of the metrics rows it keeps only the last pass's (a backtest's last day), not every pass's.
#[derive(Debug, Default)]
pub struct CollectingSink {
    published: Mutex<Vec<Alert>>,
    last_metrics: Mutex<Vec<MetricsRow>>,
}

impl CollectingSink {
    /// Every alert record published so far, in order.
    pub fn published(&self) -> Vec<Alert> {
        self.published.lock().expect("sink lock poisoned").clone()
    }

    /// The metrics rows of the last pass.
    pub fn last_metrics(&self) -> Vec<MetricsRow> {
        self.last_metrics.lock().expect("sink lock poisoned").clone()
    }
}

impl AlertSink for CollectingSink {
    async fn recorded_episodes(&self) -> Result<(Vec<OpenEpisode>, Vec<EpisodeHistory>), AggregatorError> {
        Ok((Vec::new(), Vec::new()))
    }

    async fn write_metrics(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        *self.last_metrics.lock().expect("sink lock poisoned") = rows.to_vec();
        Ok(())
    }

    async fn publish(&self, alerts: &[Alert]) -> Result<(), AggregatorError> {
        self.published.lock().expect("sink lock poisoned").extend_from_slice(alerts);
        Ok(())
    }

    async fn record(&self, _rows: &[AlertRow]) -> Result<(), AggregatorError> {
        Ok(())
    }
}
