//! uptake's ClickHouse tables, owned in one place.
//!
//! What other crates use, and why:
//! - [`Warehouse`]: the client every service reads and writes through — migrations
//!   ([`Warehouse::migrate`], `aggregator migrate`), inserts that take the table from the row type
//!   ([`Warehouse::insert_rows`]), and queries written `{db}.table` with bound values
//!   ([`Warehouse::query`]).
//! - [`rows`]: one row type per table ([`Table`] names it), shared by the writer and the readers
//!   (the aggregator writes `alert_actions` rows the console also writes and reads).
//! - [`config::ClickHouseConfig`]: the `[clickhouse]` settings of the aggregator and the console.
//! - [`columns`]: how dates and times are encoded in columns.
//! - [`cluster`]: the same schema on a sharded, replicated cluster (`clickhouse.cluster`).
//! - [`migrations`]: the DDL (`warehouse/sql/NNN_*.sql`), for `aggregator sql` and the checks on
//!   current ClickHouse.
//! - [`RecordedOutcome`]: the ground truth of the scored backtest, read from `events` and
//!   `accounts` (the aggregator's backtest and the tools' signal report).
//!
//! Which crate writes which table is in docs/architecture.md ("Who owns which table"). Each
//! service's own reads (the evaluator's inputs, the console's pages) stay in that service, written
//! through [`Warehouse::query`].

mod client;
pub mod cluster;
pub mod columns;
pub mod config;
mod error;
pub mod failover;
pub mod migrations;
mod outcomes;
pub mod privacy;
pub mod retention;
pub mod rows;

pub use client::Warehouse;
pub use config::{ClickHouseConfig, Database};
pub use error::WarehouseError;
pub use outcomes::{OutcomeSource, RecordedOutcome};
pub use rows::Table;
