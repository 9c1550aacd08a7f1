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
