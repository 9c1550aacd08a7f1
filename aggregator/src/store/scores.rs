//! Stored scored backtests (`backtest_scores`, migration 013): `aggregator backtest --score
//! --store` records each run, so the console's Rules page can show the latest score of the rule
//! set in force without replaying the history on a page view.

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::Store;
use crate::model::{date_number, to_datetime};
use crate::AggregatorError;

/// One row of `backtest_scores`.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct BacktestScoreRow {
    pub scored_at: u32,
    pub from_day: u16,
    pub to_day: u16,
    pub horizon_days: u32,
    /// Hex SHA-256 of the rule file's text: which rule set was scored.
    pub rules_digest: String,
    /// The score as `backtest --score --json` prints it.
    pub score: String,
}

impl BacktestScoreRow {
    pub fn new(
        scored_at: DateTime<Utc>,
        (from, to): (NaiveDate, NaiveDate),
        horizon_days: u32,
        rules_digest: String,
        score: String,
    ) -> Self {
        Self {
            scored_at: to_datetime(scored_at),
            from_day: date_number(from),
            to_day: date_number(to),
            horizon_days,
            rules_digest,
            score,
        }
    }
}

impl Store {
    /// Records a scored backtest.
    pub async fn write_backtest_score(&self, row: &BacktestScoreRow) -> Result<(), AggregatorError> {
        self.insert_rows(std::slice::from_ref(row)).await
    }
}
