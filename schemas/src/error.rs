use serde::{Deserialize, Serialize};

/// One precise complaint about one input event: which event (its index in the request, if the
/// request was a batch), which field, and why. The ingest API returns a list of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { index: None, field: field.into(), reason: reason.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "event {i}: {}: {}", self.field, self.reason),
            None => write!(f, "{}: {}", self.field, self.reason),
        }
    }
}

/// Errors of the schemas library.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The input is not JSON, or not the JSON shape the contract requires.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The input is well-formed JSON but breaks the contract; one entry per problem.
    #[error("{} invalid field(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// A configuration file or environment override could not be read or does not fit its type.
    #[error("configuration: {0}")]
    Config(#[from] config::ConfigError),
    /// A Kafka client could not be created or a Kafka request failed (runtime plumbing).
    #[cfg(feature = "runtime")]
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker refused to create a topic.
    #[cfg(feature = "runtime")]
    #[error("creating topic {topic}: {reason}")]
    TopicCreation { topic: String, reason: String },
}
