//! Backtest: replays the stored daily history through a rule file, one evaluation per day at
//! its last second (today's as of now), and reports which accounts would have alerted on which
//! day. This is how a CS team tunes thresholds before switching rules on. Nothing is written or published.
//! [`score`] measures a replay against the recorded outcomes (churned, renewed, contracted);
//! [`history`] writes the daily health history of past days (the one thing a replay stores).

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use schemas::alert::Alert;
use warehouse::Warehouse;

use crate::config::AggregatorConfig;
use crate::consume::ownership::Ownership;
use crate::evaluate::rules::RuleSet;
use crate::evaluate::sink::{AlertSink, CollectingSink};
use crate::evaluate::Evaluator;
use crate::model::MetricsRow;
use crate::store::Store;
use crate::AggregatorError;

mod health_backfill;
pub mod score;

pub use crate::evaluate::timeline::end_of_day;
pub use health_backfill::{backfill_health, Backfilled};

/// What a replay produced.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// Every alert record, in order (firing and resolved).
    pub alerts: Vec<Alert>,
    /// Every account evaluated on any day, sorted.
    pub accounts: Vec<String>,
    /// The metrics rows of the last day's evaluation.
    pub last_rows: Vec<MetricsRow>,
}

/// Replays `rules` over every day from `from` to `to` (inclusive), starting from no open
/// episodes. `progress` is given each day and its metrics rows (what a calibration reads).
///
/// Each day is judged at its last second, except a day not over at `now` (today): that one is
/// judged as of `now`, as the live evaluator judges it. At its last second, an account last in
/// at 09:00 thirteen days ago would already be "14 days without a login" at 00:20, hours before
/// it is (b8: one account open in the replay and not live, out of 126). Days after `now`'s are
/// not replayed.
pub async fn replay(
    cfg: &AggregatorConfig,
    rules: RuleSet,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
    mut progress: impl FnMut(NaiveDate, &[MetricsRow]),
) -> Result<Replay, AggregatorError> {
    let mut evaluator = replay_evaluator(cfg, rules, |_| CollectingSink::default()).await?;
    let mut out = Replay::default();
    let mut accounts = BTreeSet::new();
    let mut day = from;
    while day <= to.min(now.date_naive()) {
        let report = evaluator.evaluate(end_of_day(day).min(now)).await?;
        out.alerts.extend(report.fired);
        out.alerts.extend(report.resolved);
        out.last_rows = evaluator.sink().last_metrics();
        progress(day, &out.last_rows);
        accounts.extend(out.last_rows.iter().map(|r| r.account_id.clone()));
        day = day.succ_opt().expect("dates before year 262143");
    }
    out.accounts = accounts.into_iter().collect();
    Ok(out)
}

/// An evaluator of every partition of the events topic (a replay owns them all), with the
/// sink `sink` makes from the store.
async fn replay_evaluator<S: AlertSink>(
    cfg: &AggregatorConfig,
    rules: RuleSet,
    sink: impl FnOnce(&Store) -> S,
) -> Result<Evaluator<S>, AggregatorError> {
    let warehouse = Warehouse::new(&cfg.clickhouse);
    let partitions = warehouse.partitions(&cfg.kafka.events_topic).await?;
    let metrics = Arc::new(crate::telemetry::Telemetry::new());
    let ownership = Arc::new(Ownership::fixed(partitions));
    let sink = sink(&Store::new(warehouse.clone()));
    Ok(Evaluator::new(cfg, rules, warehouse, sink, metrics, ownership).replaying())
}

/// Every alert record `rules` would have produced between `from` and `to` (inclusive), in
/// order ([`replay`]'s alerts).
pub async fn backtest(
    cfg: &AggregatorConfig,
    rules: RuleSet,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
    progress: impl FnMut(NaiveDate, &[MetricsRow]),
) -> Result<Vec<Alert>, AggregatorError> {
    Ok(replay(cfg, rules, from, to, now, progress).await?.alerts)
}

/// One line per alert record, for people.
pub fn table(alerts: &[Alert]) -> String {
    let mut out =
        format!("{:<10}  {:<20}  {:<26}  {:<8}  {:<8}  {}\n", "day", "account", "rule", "severity", "status", "reason");
    for a in alerts {
        let at = a.resolved_at.unwrap_or(a.fired_at);
        out.push_str(&format!(
            "{:<10}  {:<20}  {:<26}  {:<8}  {:<8}  {}\n",
            at.date_naive(),
            a.account_id,
            a.rule_id,
            a.severity.as_str(),
            a.status.as_str(),
            a.reason
        ));
    }
    out
}
