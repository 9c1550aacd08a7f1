//! An evaluation pass's I/O besides its inputs (docs/architecture.md#alert-sink), in two parts:
//! the state it reads back and records ([`RecordedState`]: episodes, their CSM workflow, pending
//! conditions, the health history) and what it produces ([`PassOutput`]: metrics rows, alert
//! records published then recorded).
//! Production publishes to Kafka and records in ClickHouse ([`LiveSink`]); a backtest or a unit
//! test collects what it would have sent ([`CollectingSink`]) and starts from nothing recorded.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::alert::Alert;
use warehouse::columns::to_datetime;
use warehouse::rows::{ActionRow, AlertRow, PendingRow};

use crate::evaluate::episode::{Pending, Recorded, Workflow};
use crate::model::{epoch_day_plus, MetricsRow};
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

/// What earlier passes recorded and a pass reads back — the episodes, their CSM workflow, the
/// pending conditions and the health history — and the pending changes a pass records before they
/// change its episodes. Every read of a pass goes through here or through the inputs
/// (`store::inputs`), nothing else.
pub trait RecordedState: Send + Sync + 'static {
    /// The recorded open episodes, episode history and pending conditions, read at start and
    /// after a rebalance.
    fn recorded_episodes(&self) -> impl Future<Output = Result<Recorded, AggregatorError>> + Send;

    /// The recorded CSM workflow of the episodes `alert_ids` (those with any action), read before
    /// every pass.
    fn workflow(&self, alert_ids: &[String]) -> impl Future<Output = Result<Vec<Workflow>, AggregatorError>> + Send;

    /// Stores a pass's pending changes (recorded at `now`), before they change the episodes.
    fn record_pending(
        &self,
        changes: &[Pending],
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Each account's health score on `day`, as [`PassOutput::write_metrics`] recorded it (the
    /// daily health history).
    fn health_on(&self, day: NaiveDate) -> impl Future<Output = Result<HashMap<String, f64>, AggregatorError>> + Send;
}

/// What a pass produces: its metrics rows and the day's health, and its alert records —
/// published, then recorded, with the workflow actions of lifecycle records.
pub trait PassOutput: Send + Sync + 'static {
    /// Stores a pass's metrics rows (and the day's health history).
    fn write_metrics(&self, rows: &[MetricsRow]) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Publishes a pass's alert records, each acknowledged, before they are recorded.
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Records published alert records (the `alerts` table).
    fn record(&self, rows: &[AlertRow]) -> impl Future<Output = Result<(), AggregatorError>> + Send;

    /// Records the workflow actions of published lifecycle records (`snooze_ended`: the
    /// `alert_actions` table).
    fn record_actions(&self, rows: &[ActionRow]) -> impl Future<Output = Result<(), AggregatorError>> + Send;
}

/// The evaluator's I/O besides its inputs: the state it reads back and records, and its output.
/// One value does both, so a test sink can answer reads from what it was given.
pub trait AlertSink: RecordedState + PassOutput {}

impl<T: RecordedState + PassOutput> AlertSink for T {}

/// Production: alert records to the alerts topic, rows to ClickHouse.
pub struct LiveSink {
    store: Store,
    producer: FutureProducer,
    topic: String,
    metrics: Arc<Telemetry>,
}

impl LiveSink {
    pub fn new(store: Store, producer: FutureProducer, topic: impl Into<String>, metrics: Arc<Telemetry>) -> Self {
        Self { store, producer, topic: topic.into(), metrics }
    }
}

impl RecordedState for LiveSink {
    async fn recorded_episodes(&self) -> Result<Recorded, AggregatorError> {
        Ok(Recorded {
            open: self.store.open_episodes().await?,
            history: self.store.episode_history().await?,
            pending: self.store.pending().await?,
        })
    }

    async fn workflow(&self, alert_ids: &[String]) -> Result<Vec<Workflow>, AggregatorError> {
        if alert_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.store.workflow_of(alert_ids).await
    }

    async fn record_pending(&self, changes: &[Pending], now: DateTime<Utc>) -> Result<(), AggregatorError> {
        if changes.is_empty() {
            return Ok(());
        }
        let rows: Vec<PendingRow> = changes.iter().map(|c| pending_row(c, now)).collect();
        Ok(self.store.insert_rows(&rows).await?)
    }

    async fn health_on(&self, day: NaiveDate) -> Result<HashMap<String, f64>, AggregatorError> {
        self.store.health_on(day).await
    }
}

impl PassOutput for LiveSink {
    async fn write_metrics(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.store.insert_rows(rows).await?;
        self.store.write_health_history(rows).await
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
        Ok(self.store.insert_rows(rows).await?)
    }

    async fn record_actions(&self, rows: &[ActionRow]) -> Result<(), AggregatorError> {
        if rows.is_empty() {
            return Ok(());
        }
        Ok(self.store.insert_rows(rows).await?)
    }
}

/// Keeps the alert records it is given and starts from nothing recorded: backtests and unit
/// tests. Pending changes live only in the evaluator's memory.
#[derive(Debug, Default)]
pub struct CollectingSink {
    published: Mutex<Vec<Alert>>,
    /// The health scores of the days written, by day, the latest [`HISTORY_DAYS`] only: what a
    /// replay's rules read as history.
    history: Mutex<BTreeMap<NaiveDate, HashMap<String, f64>>>,
    /// The metrics rows of the latest pass (a replay reports the state at its end).
    last_metrics: Mutex<Vec<MetricsRow>>,
}

/// Days of health history a [`CollectingSink`] keeps (rules look 14 days back).
const HISTORY_DAYS: usize = 15;

impl CollectingSink {
    /// Every alert record published so far, in order.
    pub fn published(&self) -> Vec<Alert> {
        self.published.lock().expect("sink lock poisoned").clone()
    }

    /// The metrics rows of the latest pass.
    pub fn last_metrics(&self) -> Vec<MetricsRow> {
        self.last_metrics.lock().expect("sink lock poisoned").clone()
    }
}

impl RecordedState for CollectingSink {
    async fn recorded_episodes(&self) -> Result<Recorded, AggregatorError> {
        Ok(Recorded::default())
    }

    /// A replay has no CSMs: nothing was snoozed or closed.
    async fn workflow(&self, _alert_ids: &[String]) -> Result<Vec<Workflow>, AggregatorError> {
        Ok(Vec::new())
    }

    async fn record_pending(&self, _changes: &[Pending], _now: DateTime<Utc>) -> Result<(), AggregatorError> {
        Ok(())
    }

    async fn health_on(&self, day: NaiveDate) -> Result<HashMap<String, f64>, AggregatorError> {
        Ok(self.history.lock().expect("sink lock poisoned").get(&day).cloned().unwrap_or_default())
    }
}

impl PassOutput for CollectingSink {
    async fn write_metrics(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        *self.last_metrics.lock().expect("sink lock poisoned") = rows.to_vec();
        let mut history = self.history.lock().expect("sink lock poisoned");
        for m in rows {
            if let Some(score) = m.health_score {
                history.entry(epoch_day_plus(m.as_of)).or_default().insert(m.account_id.clone(), score);
            }
        }
        while history.len() > HISTORY_DAYS {
            history.pop_first();
        }
        Ok(())
    }

    async fn publish(&self, alerts: &[Alert]) -> Result<(), AggregatorError> {
        self.published.lock().expect("sink lock poisoned").extend_from_slice(alerts);
        Ok(())
    }

    async fn record(&self, _rows: &[AlertRow]) -> Result<(), AggregatorError> {
        Ok(())
    }

    async fn record_actions(&self, _rows: &[ActionRow]) -> Result<(), AggregatorError> {
        Ok(())
    }
}

/// The `alert_pending` row of a change of one pair's pending state, recorded at `now`.
fn pending_row(change: &Pending, now: DateTime<Utc>) -> PendingRow {
    PendingRow {
        account_id: change.account_id.clone(),
        rule_id: change.rule_id.clone(),
        since: change.since,
        cleared: u8::from(change.cleared),
        recorded_at: to_datetime(now),
        cleared_at: if change.cleared { change.at } else { to_datetime(now) },
    }
}
