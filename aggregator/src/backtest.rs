//! Backtest: replays the stored daily history through a rule file, one evaluation per day at
//! its last second, and reports which accounts would have alerted on which day. This is how a
//! CS team tunes thresholds before switching rules on. Nothing is written or published.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use schemas::alert::Alert;

use crate::config::AggregatorConfig;
use crate::consumer::Ownership;
use crate::evaluator::Evaluator;
use crate::rules::RuleSet;
use crate::sink::CollectingSink;
use crate::store::Store;
use crate::AggregatorError;

/// Every alert record `rules` would have produced between `from` and `to` (inclusive), in
/// order, starting from no open episodes. `progress` is told each day and how many accounts it
/// evaluated.
pub async fn backtest(
    cfg: &AggregatorConfig,
    rules: RuleSet,
    from: NaiveDate,
    to: NaiveDate,
    mut progress: impl FnMut(NaiveDate, usize),
) -> Result<Vec<Alert>, AggregatorError> {
    let store = Store::new(&cfg.clickhouse);
    let partitions = store.partitions(&cfg.kafka.events_topic).await?;
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let ownership = Arc::new(Ownership::fixed(partitions));
    let mut evaluator = Evaluator::new(cfg, rules, store, CollectingSink::default(), metrics, ownership);
    let mut alerts = Vec::new();
    let mut day = from;
    while day <= to {
        let end_of_day: DateTime<Utc> =
            day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time")).and_utc();
        let report = evaluator.evaluate(end_of_day).await?;
        progress(day, report.accounts);
        alerts.extend(report.fired);
        alerts.extend(report.resolved);
        day = day.succ_opt().expect("dates before year 262143");
    }
    Ok(alerts)
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
