//! The one error type of the table crate.

/// What a ClickHouse read, write or migration, or the `[clickhouse]` settings, can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("{0}")]
    Schema(#[from] schemas::SchemaError),
    #[error("config: {key}: {reason}")]
    Config { key: String, reason: String },
}
