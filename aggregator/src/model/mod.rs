//! The customer-success model, pure: the metric catalogue and its rows, the derivations
//! (changes, ratios, recency), lifecycle stage and health. No I/O: the store fills the inputs,
//! the evaluator writes the rows (docs/architecture.md#layers).

pub mod baseline;
pub mod book;
pub mod catalogue;
pub mod derive;
pub mod detector;
pub mod health;
pub mod lifecycle;
pub mod people;
pub mod score;

pub use catalogue::{Metric, MetricsRow, WindowRow};
pub use derive::{lapses, metrics_row, AccountInputs, Model};
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

/// ClickHouse's `Date` and `DateTime` encodings, the warehouse's (model code and tests use them).
pub use warehouse::columns::{date_number, epoch_day_plus, to_datetime};
