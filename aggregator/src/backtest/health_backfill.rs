//! The health-history backfill (`aggregator history --from D --to D`): the live evaluator only
//! writes today's row of `account_health_daily`, so an account's chart would start on the day
//! uptake was switched on. This replays an as-of pass for each past day, in order, and stores
//! each day's health as that pass computed it — the same score a backtest sees for that day.
//! Nothing is published and no alert is recorded.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemas::alert::Alert;
use warehouse::rows::{ActionRow, AlertRow};

use super::{end_of_day, replay_evaluator};
use crate::config::AggregatorConfig;
use crate::evaluate::episode::{Pending, Recorded};
use crate::evaluate::rules::RuleSet;
use crate::evaluate::sink::{PassOutput, RecordedState};
use crate::model::MetricsRow;
use crate::store::Store;
use crate::AggregatorError;

/// What a backfill wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backfilled {
    /// Days replayed.
    pub days: usize,
    /// `account_health_daily` rows written (one per account and day that had history).
    pub rows: usize,
}

/// Writes the health of every account for each day from `from` to `to` (inclusive) to
/// `account_health_daily`, one as-of pass per day at its last second. Days are replayed in
/// order and each day's rows are stored before the next pass, so a pass reads the history the
/// backfill just wrote (`health_change_14d`). A re-run replaces the rows (the table keeps a
/// day's latest pass). `progress` is told each day and how many accounts it wrote.
pub async fn backfill_health(
    cfg: &AggregatorConfig,
    from: NaiveDate,
    to: NaiveDate,
    mut progress: impl FnMut(NaiveDate, usize),
) -> Result<Backfilled, AggregatorError> {
    // No rules: the health score does not depend on them, and their alerts would be dropped.
    let sink = |store: &Store| HistorySink { store: store.clone() };
    let mut evaluator = replay_evaluator(cfg, RuleSet::default(), sink).await?;
    let mut out = Backfilled::default();
    let mut day = from;
    while day <= to {
        let report = evaluator.evaluate(end_of_day(day)).await?;
        progress(day, report.accounts);
        out.days += 1;
        out.rows += report.accounts;
        day = day.succ_opt().expect("dates before year 262143");
    }
    Ok(out)
}

/// Stores only the health history; reads the stored history back; publishes and records nothing.
struct HistorySink {
    store: Store,
}

impl RecordedState for HistorySink {
    async fn recorded_episodes(&self) -> Result<Recorded, AggregatorError> {
        Ok(Recorded::default())
    }

    async fn record_pending(&self, _changes: &[Pending], _now: DateTime<Utc>) -> Result<(), AggregatorError> {
        Ok(())
    }

    async fn health_on(&self, day: NaiveDate) -> Result<HashMap<String, f64>, AggregatorError> {
        self.store.health_on(day).await
    }

    /// A backfill replays the past: no CSM worked those episodes.
    async fn workflow(
        &self,
        _alert_ids: &[String],
    ) -> Result<Vec<crate::evaluate::episode::Workflow>, AggregatorError> {
        Ok(Vec::new())
    }
}

impl PassOutput for HistorySink {
    async fn write_metrics(&self, rows: &[MetricsRow]) -> Result<(), AggregatorError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.store.write_health_history(rows).await
    }

    async fn publish(&self, _alerts: &[Alert]) -> Result<(), AggregatorError> {
        Ok(())
    }

    async fn record(&self, _rows: &[AlertRow]) -> Result<(), AggregatorError> {
        Ok(())
    }

    async fn record_actions(&self, _rows: &[ActionRow]) -> Result<(), AggregatorError> {
        Ok(())
    }
}
