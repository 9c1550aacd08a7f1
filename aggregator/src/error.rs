/// Everything that can go wrong in the aggregator library.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error("invalid configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("kafka delivery failed: {0}")]
    Delivery(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("a background task failed: {0}")]
    Task(String),
}

/// A warehouse error keeps its kind: the consume path tells a poison batch from an outage by the
/// ClickHouse error inside (`consume::poison`), whichever crate's call returned it.
impl From<warehouse::WarehouseError> for AggregatorError {
    fn from(e: warehouse::WarehouseError) -> Self {
        match e {
            warehouse::WarehouseError::ClickHouse(e) => Self::ClickHouse(e),
            warehouse::WarehouseError::Schema(e) => Self::Schema(e),
            warehouse::WarehouseError::Config { key, reason } => Self::Config { key, reason },
        }
    }
}
