//! The customer-success model, pure: the metric catalogue and its rows, the derivations
//! (changes, ratios, recency), lifecycle stage and health. No I/O: the store fills the inputs,
//! the evaluator writes the rows (docs/architecture.md#layers).

pub mod baseline;
pub mod catalogue;
pub mod derive;
pub mod health;
pub mod lifecycle;

use chrono::{DateTime, NaiveDate, Utc};

pub use catalogue::{Metric, MetricsRow, WindowRow};
pub use derive::{metrics_row, AccountInputs, Model};
pub use health::HealthConfig;
pub use lifecycle::{LifecycleConfig, Stage};

/// Percentage change from `previous` to `current`; `None` when there is no previous base.
pub fn change_pct(previous: u64, current: u64) -> Option<f64> {
    (previous > 0).then(|| (current as f64 - previous as f64) * 100.0 / previous as f64)
}

/// `num ÷ den`; `None` when there is nothing to divide by.
pub fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

pub(crate) fn epoch_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// The date of a ClickHouse `Date` day number.
pub fn epoch_day_plus(day: u16) -> NaiveDate {
    epoch_day() + chrono::Days::new(day as u64)
}

/// Days since the epoch, as ClickHouse `Date` stores them.
pub fn date_number(d: NaiveDate) -> u16 {
    (d - epoch_day()).num_days().clamp(0, u16::MAX as i64) as u16
}

/// Seconds since the epoch, as ClickHouse `DateTime` (a UInt32) stores them.
pub fn to_datetime(t: DateTime<Utc>) -> u32 {
    t.timestamp().clamp(0, u32::MAX as i64) as u32
}
