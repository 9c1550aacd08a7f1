//! The one error of the tools crate: what can stop a load run, a bench or a signal run.

use std::time::Duration;

/// Everything that can stop a tool. The binaries print it and exit non-zero (anyhow in `main`).
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// The run cannot go on: a service did not start, a count came out wrong, an option is out
    /// of range. The message says which.
    #[error("{0}")]
    Setup(String),
    /// Ingest answered with a status that retrying cannot fix (400, 401, 413…): a generator bug
    /// must not go unnoticed.
    #[error("ingest answered {status}: {body}")]
    Refused { status: reqwest::StatusCode, body: String },
    /// Ingest kept refusing (503/429), or was unreachable, for `after`.
    #[error("ingest kept refusing (503/429){} for {:.0} s", if *.unreachable { " or was unreachable" } else { "" }, .after.as_secs_f64())]
    GaveUp { after: Duration, unreachable: bool },
    /// A book's files (`signal --book DIR`) are missing or wrong: which file, where, why.
    #[error("{path}: {why}")]
    Book { path: std::path::PathBuf, why: String },
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("aggregator: {0}")]
    Aggregator(#[from] aggregator::AggregatorError),
    #[error("{0}")]
    Warehouse(#[from] warehouse::WarehouseError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
