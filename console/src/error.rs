use thiserror::Error;

/// Everything the console can fail with.
#[derive(Debug, Error)]
pub enum ConsoleError {
    #[error("invalid configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error(transparent)]
    Aggregator(#[from] aggregator::AggregatorError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("password hash: {0}")]
    Password(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// An alert or account that does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A form value the action cannot take, or an action the episode's state refuses (400/409).
    #[error("{field}: {reason}")]
    Refused { field: String, reason: String },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A warehouse error is a ClickHouse error, or one the aggregator's error already names (the
/// settings are the aggregator's `[clickhouse]` section): no new variant to match.
impl From<warehouse::WarehouseError> for ConsoleError {
    fn from(e: warehouse::WarehouseError) -> Self {
        match e {
            warehouse::WarehouseError::ClickHouse(e) => Self::ClickHouse(e),
            other => Self::Aggregator(other.into()),
        }
    }
}
