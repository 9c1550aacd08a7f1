//! The periodic evaluator: recomputes every account's rolling metrics from the daily rollup,
//! writes them to `account_metrics`, evaluates the rules and publishes alert state changes.
//!
//! Alerts are edge-triggered: one `firing` record when an episode starts and one `resolved`
//! record when it ends, never one per evaluation. Open episodes are read back from the `alerts`
//! table at start and after every rebalance, so a restart or a partition moving to another
//! instance neither re-fires an open episode nor forgets it.
//!
//! Only the accounts of the partitions this instance consumes are evaluated ([`Ownership`]), so
//! two instances in one consumer group never compute or alert on the same account.
//!
//! An episode's `alert_id` is chained from the previous episode of the same account and rule
//! ([`Alert::episode_id`]), read from the `alerts` table, never from the time of the pass: a
//! firing record re-sent after any failure before its row was stored carries the same id, so
//! the notifier's ledger delivers it once. A row that failed to store after its record was
//! published is kept and stored before the next pass ([`Evaluator::record_unrecorded`]) instead
//! of publishing the record again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::alert::{Alert, AlertStatus};
use tokio::sync::watch;

use crate::config::AggregatorConfig;
use crate::consumer::Ownership;
use crate::metrics::Metrics;
use crate::rules::{self, Finding, Rule};
use crate::account::{metrics_row, MetricsRow, Model};
use crate::health::{HealthConfig, LifecycleConfig};
use crate::store::{to_datetime, AlertRow, OpenEpisode, Store};
use serde::Deserialize;
use crate::AggregatorError;

/// What one evaluation pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    pub accounts: usize,
    pub fired: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// Where the pass's time went (logged per pass; `bench` prints it).
    pub timings: PassTimings,
}

/// The phases of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PassTimings {
    /// Open episodes (when ownership changed) and the rolling-window queries in ClickHouse.
    pub queries: Duration,
    /// Metrics and health of every account, in Rust.
    pub compute: Duration,
    /// The `account_metrics` insert.
    pub insert: Duration,
    /// Every rule over every account, and publishing and recording the pass's alerts.
    pub rules: Duration,
}

pub struct Evaluator {
    store: Store,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
    alerts_topic: String,
    rules: Vec<Rule>,
    /// Consecutive passes each (account, rule) condition held without an open episode (`for`).
    streaks: HashMap<(String, String), u32>,
    /// When each (account, rule)'s last episode resolved (`cooldown`).
    last_resolved: HashMap<(String, String), u32>,
    /// Each (account, rule)'s latest episode id: the next episode's id is chained from it.
    last_episode: HashMap<(String, String), String>,
    /// `alerts` rows whose records were published but whose INSERT failed: stored before the
    /// next pass, so the pass neither re-publishes them nor forgets the state they changed.
    unrecorded: Vec<AlertRow>,
    lifecycle: LifecycleConfig,
    health: HealthConfig,
    /// The configured feature catalogue's size; 0 = use the features seen in 90 days.
    catalogue: u64,
    events_topic: String,
    ownership: Arc<Ownership>,
    /// The ownership generation `open` was loaded for; `None` until loaded.
    loaded_for: Option<u64>,
    /// Open episodes by (account, rule).
    open: HashMap<(String, String), OpenEpisode>,
    /// Backtest: compute and report, but write nothing and publish nothing.
    dry_run: bool,
}

impl Evaluator {
    pub fn new(
        cfg: &AggregatorConfig,
        store: Store,
        producer: FutureProducer,
        metrics: Arc<Metrics>,
        ownership: Arc<Ownership>,
    ) -> Result<Self, AggregatorError> {
        Ok(Self {
            store,
            producer,
            metrics,
            alerts_topic: cfg.kafka.alerts_topic.clone(),
            rules: rules::load_rules(cfg.rules_file.as_deref())?,
            streaks: HashMap::new(),
            last_resolved: HashMap::new(),
            last_episode: HashMap::new(),
            unrecorded: Vec::new(),
            lifecycle: cfg.lifecycle.clone(),
            health: cfg.health.clone(),
            catalogue: cfg.metrics.feature_catalogue.len() as u64,
            events_topic: cfg.kafka.events_topic.clone(),
            ownership,
            loaded_for: None,
            open: HashMap::new(),
            dry_run: false,
        })
    }

    /// An evaluator that writes nothing and publishes nothing, starting with no open episodes:
    /// for replaying history through a rule file (`aggregator backtest`).
    pub fn dry_run(mut self) -> Self {
        self.dry_run = true;
        self
    }

    /// (Re)loads the open episodes when ownership changed since they were loaded: another
    /// instance may have fired or resolved alerts for the accounts this one now owns.
    async fn refresh_open_episodes(&mut self) -> Result<(), AggregatorError> {
        let generation = self.ownership.generation();
        if self.loaded_for == Some(generation) || (self.dry_run && self.loaded_for.is_some()) {
            return Ok(());
        }
        if self.dry_run {
            self.loaded_for = Some(generation);
            return Ok(());
        }
        self.open = self
            .store
            .open_episodes()
            .await?
            .into_iter()
            .map(|e| ((e.account_id.clone(), e.rule_id.clone()), e))
            .collect();
        let history = self.episode_history().await?;
        self.last_resolved = history
            .iter()
            .filter(|h| h.last_resolved > 0)
            .map(|h| ((h.account_id.clone(), h.rule_id.clone()), h.last_resolved))
            .collect();
        self.last_episode =
            history.into_iter().map(|h| ((h.account_id, h.rule_id), h.last_alert_id)).collect();
        self.loaded_for = Some(generation);
        Ok(())
    }

    /// Per (account, rule) with any alert: the latest episode's id and when the latest episode
    /// resolved (0: never). The latest episode is the one with the latest row; at a tie in time
    /// the firing row wins (a new episode's firing can follow the previous resolution within a
    /// second only in that order).
    async fn episode_history(&self) -> Result<Vec<EpisodeHistory>, AggregatorError> {
        let sql = format!(
            "SELECT account_id, rule_id,
                    argMax(alert_id, toUInt64(recorded_at) * 2 + (status = 'firing')) AS last_alert_id,
                    toUInt32(maxIf(recorded_at, status = 'resolved')) AS last_resolved
             FROM {db}.alerts
             GROUP BY account_id, rule_id",
            db = self.store.database()
        );
        Ok(self.store.client().query(&sql).fetch_all().await?)
    }

    /// Stores the `alerts` rows a failed INSERT left behind, before anything else reads the
    /// table. Until it succeeds no pass runs: a pass would re-fire episodes the table does not
    /// show yet (the same ids, but a repeat on the topic all the same).
    pub async fn record_unrecorded(&mut self) -> Result<(), AggregatorError> {
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        self.store.insert_rows("alerts", &self.unrecorded).await?;
        tracing::info!(rows = self.unrecorded.len(), "stored the alert rows of an earlier pass");
        self.unrecorded.clear();
        Ok(())
    }

    /// Evaluates every `interval` until `shutdown`. A failed pass is logged and retried on the
    /// next tick: the state it would have changed is untouched.
    pub async fn run(mut self, interval: Duration, mut shutdown: watch::Receiver<bool>) -> Result<(), AggregatorError> {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => {
                    // One last try, so a restart need not re-send their records (it would, with
                    // the same ids, and the ledger would drop them).
                    if let Err(e) = self.record_unrecorded().await {
                        tracing::warn!(error = %e, rows = self.unrecorded.len(), "alert rows not stored at shutdown; their records are re-sent after the restart");
                    }
                    return Ok(());
                }
            }
            if let Err(e) = self.evaluate(Utc::now()).await {
                self.metrics.evaluation_failures.inc();
                tracing::warn!(error = %e, "evaluation pass failed; retrying next interval");
            }
        }
    }

    /// One pass at time `now` (injectable, so tests can evaluate any day).
    pub async fn evaluate(&mut self, now: DateTime<Utc>) -> Result<PassReport, AggregatorError> {
        let started = std::time::Instant::now();
        let mut timings = PassTimings::default();
        let mut phase = std::time::Instant::now();
        let mut lap = |slot: &mut Duration| {
            *slot = phase.elapsed();
            phase = std::time::Instant::now();
        };
        self.record_unrecorded().await?;
        self.refresh_open_episodes().await?;
        let partitions = self.ownership.partitions();
        let (inputs, features_seen) = if partitions.is_empty() {
            (Vec::new(), 0)
        } else {
            self.store.account_inputs(now, &self.events_topic, &partitions).await?
        };
        lap(&mut timings.queries);
        let catalogue = if self.catalogue > 0 { self.catalogue } else { features_seen };
        let model = Model { lifecycle: &self.lifecycle, health: &self.health, catalogue };
        let rows: Vec<MetricsRow> = inputs.iter().map(|i| metrics_row(i, now, &model)).collect();
        lap(&mut timings.compute);
        if !rows.is_empty() && !self.dry_run {
            self.store.insert_rows("account_metrics", &rows).await?;
        }
        lap(&mut timings.insert);
        let mut report = PassReport { accounts: rows.len(), ..Default::default() };
        let rule_set = std::mem::take(&mut self.rules);
        let result = self.apply_rules(&rule_set, &rows, now, &mut report).await;
        self.rules = rule_set;
        result?;
        lap(&mut timings.rules);
        report.timings = timings;
        tracing::debug!(
            accounts = rows.len(),
            queries_ms = timings.queries.as_millis() as u64,
            compute_ms = timings.compute.as_millis() as u64,
            insert_ms = timings.insert.as_millis() as u64,
            rules_ms = timings.rules.as_millis() as u64,
            fired = report.fired.len(),
            resolved = report.resolved.len(),
            "evaluation pass"
        );
        self.metrics.accounts_evaluated.set(rows.len() as i64);
        self.metrics.open_episodes.set(self.open.len() as i64);
        self.metrics.evaluation_seconds.observe(started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// Runs every rule over every account: a condition that holds for `for` consecutive passes
    /// (and not within `cooldown` of the last episode) opens an episode; one that stops holding
    /// resolves it, when the rule auto-resolves. The pass's alerts are published together and
    /// only then change the open episodes, so a failed publish changes nothing and the next
    /// pass tries again (with the same ids). Once published they change the state even if
    /// their rows fail to store: those are kept for the next pass ([`Self::record_unrecorded`]).
    async fn apply_rules(
        &mut self,
        rule_set: &[Rule],
        rows: &[MetricsRow],
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), AggregatorError> {
        let mut alerts = Vec::new();
        for m in rows {
            for rule in rule_set {
                let key = (m.account_id.clone(), rule.id.clone());
                let finding = if rule.applies(m) { rule.when.check(m) } else { None };
                match (finding, self.open.get(&key)) {
                    (Some(finding), None) => {
                        let streak = self.streaks.entry(key.clone()).or_default();
                        *streak += 1;
                        let cooling = self
                            .last_resolved
                            .get(&key)
                            .is_some_and(|&t| (now.timestamp() - t as i64) < rule.cooldown.as_secs() as i64);
                        if *streak >= rule.for_evaluations && !cooling {
                            let previous = self.last_episode.get(&key).map(String::as_str);
                            alerts.push(firing(rule, m, finding, previous, now));
                        }
                    }
                    (Some(_), Some(_)) => {}
                    (None, open) => {
                        if let (Some(episode), true) = (open, rule.auto_resolve) {
                            alerts.push(resolved(rule, m, episode, now));
                        }
                        self.streaks.remove(&key);
                    }
                }
            }
        }
        let rows = alert_rows(&alerts, now)?;
        self.publish(&alerts).await?;
        for alert in alerts {
            let key = (alert.account_id.clone(), alert.rule_id.clone());
            match alert.status {
                AlertStatus::Firing => {
                    self.streaks.remove(&key);
                    self.last_episode.insert(key.clone(), alert.alert_id.clone());
                    let episode = OpenEpisode {
                        alert_id: alert.alert_id.clone(),
                        account_id: alert.account_id.clone(),
                        rule_id: alert.rule_id.clone(),
                        fired_at: to_datetime(alert.fired_at),
                    };
                    self.open.insert(key, episode);
                    report.fired.push(alert);
                }
                AlertStatus::Resolved => {
                    self.open.remove(&key);
                    self.last_resolved.insert(key, to_datetime(now));
                    report.resolved.push(alert);
                }
            }
        }
        if self.dry_run || rows.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.insert_rows("alerts", &rows).await {
            tracing::warn!(error = %e, rows = rows.len(), "alert records published but their rows not stored; storing them before the next pass");
            self.unrecorded.extend(rows);
            return Err(e);
        }
        Ok(())
    }

    /// Publishes the alerts to the alert topic, all in flight at once, each acknowledged by the
    /// broker. Before their rows are stored: a crash in between re-sends them after the restart
    /// with the same ids — the notifier's ledger drops the repeat — rather than losing one.
    async fn publish(&self, alerts: &[Alert]) -> Result<(), AggregatorError> {
        if self.dry_run || alerts.is_empty() {
            return Ok(());
        }
        let payloads = alerts
            .iter()
            .map(|a| serde_json::to_vec(a).map_err(schemas::SchemaError::from))
            .collect::<Result<Vec<_>, _>>()?;
        let sends = alerts.iter().zip(&payloads).map(|(alert, payload)| {
            let record = FutureRecord::to(&self.alerts_topic).key(&alert.account_id).payload(payload);
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
}

/// Per (account, rule): its latest episode and when an episode last resolved.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct EpisodeHistory {
    account_id: String,
    rule_id: String,
    last_alert_id: String,
    last_resolved: u32,
}

/// The `alerts` rows of a pass's alerts, recorded at `now`.
fn alert_rows(alerts: &[Alert], now: DateTime<Utc>) -> Result<Vec<AlertRow>, AggregatorError> {
    alerts
        .iter()
        .map(|alert| {
            Ok(AlertRow {
                alert_id: alert.alert_id.clone(),
                account_id: alert.account_id.clone(),
                rule_id: alert.rule_id.clone(),
                severity: alert.severity.as_str().to_owned(),
                status: alert.status.as_str().to_owned(),
                fired_at: to_datetime(alert.fired_at),
                resolved_at: alert.resolved_at.map(to_datetime),
                recorded_at: to_datetime(now),
                lifecycle_stage: alert.lifecycle_stage.clone().unwrap_or_default(),
                health_score: alert.health_score,
                metrics: serde_json::to_string(&alert.metrics).map_err(schemas::SchemaError::from)?,
                csm_owner: alert.csm_owner.clone().unwrap_or_default(),
                reason: alert.reason.clone(),
            })
        })
        .collect()
}

/// The `firing` record that opens an episode of `rule` for `m`'s account, after the episode
/// `previous` (the pair's latest, if any).
fn firing(rule: &Rule, m: &MetricsRow, finding: Finding, previous: Option<&str>, now: DateTime<Utc>) -> Alert {
    Alert {
        alert_id: Alert::episode_id(&m.account_id, &rule.id, previous),
        account_id: m.account_id.clone(),
        rule_id: rule.id.clone(),
        severity: rule.severity,
        status: AlertStatus::Firing,
        fired_at: now,
        resolved_at: None,
        lifecycle_stage: Some(m.lifecycle_stage.clone()),
        health_score: m.health_score,
        metrics: finding.metrics,
        csm_owner: Some(m.csm_owner.clone()).filter(|c| !c.is_empty()),
        reason: finding.reason,
    }
}

/// The `resolved` record that closes `episode`.
fn resolved(rule: &Rule, m: &MetricsRow, episode: &OpenEpisode, now: DateTime<Utc>) -> Alert {
    let what = if rule.description.is_empty() { rule.id.as_str() } else { rule.description.as_str() };
    Alert {
        alert_id: episode.alert_id.clone(),
        account_id: m.account_id.clone(),
        rule_id: rule.id.clone(),
        severity: rule.severity,
        status: AlertStatus::Resolved,
        fired_at: DateTime::from_timestamp(episode.fired_at as i64, 0).unwrap_or(now),
        resolved_at: Some(now),
        lifecycle_stage: Some(m.lifecycle_stage.clone()),
        health_score: m.health_score,
        metrics: rule.when.values(m),
        csm_owner: Some(m.csm_owner.clone()).filter(|c| !c.is_empty()),
        reason: format!("No longer true: {what}"),
    }
}
