use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemas::FieldError;
use serde_json::json;

/// Everything that can go wrong in ingest, each mapped to the HTTP answer the API promises.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("invalid configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    #[error(transparent)]
    Schema(#[from] schemas::SchemaError),
    #[error("missing or unknown write key")]
    Unauthorized,
    /// `limits.max_keyless_in_flight = 0`: this deployment takes keys from headers only.
    #[error("send the write key in the Authorization header (HTTP Basic user name or Bearer token)")]
    KeyRequiredInHeader,
    /// The body did not arrive within `limits.body_timeout_ms`.
    #[error("request body not received within {ms} ms")]
    BodyTimeout { ms: u64 },
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("batch of {len} events; at most {limit} per request")]
    BatchTooLarge { len: usize, limit: usize },
    #[error("unsupported Content-Encoding {0:?}; use gzip, deflate or none")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    BadEncoding(String),
    #[error("rate limit of this write key exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("invalid events")]
    Invalid(Vec<FieldError>),
    /// The broker did not acknowledge every event: the client must retry (with the same
    /// message ids, so nothing is counted twice).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// The suppression list was not loaded within `kafka.delivery_timeout_ms` of the request:
    /// writing now could store a suppressed person's events (docs/privacy.md#suppression).
    #[error("not ready: the suppression list is still loading; retry shortly")]
    NotReady,
    /// More write requests in flight than `limits.max_in_flight_requests`: refused before
    /// reading the body, so the client retries after a second instead of waiting in a queue.
    #[error("overloaded: {limit} requests already in flight; retry in 1 s")]
    Overloaded { limit: usize },
    /// More requests without a header key in flight than `limits.max_keyless_in_flight`: their
    /// own small budget, so they can never take the permits of authenticated writers.
    #[error(
        "overloaded: {limit} requests without a write key in the headers already in flight; \
         retry in 1 s or send the key in the Authorization header"
    )]
    KeylessOverloaded { limit: usize },
    #[error("kafka client: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Schema(_) | Self::Invalid(_) | Self::BadEncoding(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized | Self::KeyRequiredInHeader => StatusCode::UNAUTHORIZED,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge { .. } | Self::BatchTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_)
            | Self::Kafka(_)
            | Self::NotReady
            | Self::Overloaded { .. }
            | Self::KeylessOverloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short, stable label for metrics.
    pub fn reason_label(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Schema(_) => "bad_json",
            Self::Unauthorized | Self::KeyRequiredInHeader => "unauthorized",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BatchTooLarge { .. } => "batch_too_large",
            Self::Invalid(_) => "invalid",
            Self::UnsupportedEncoding(_) | Self::BadEncoding(_) => "bad_encoding",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) | Self::Kafka(_) => "unavailable",
            Self::NotReady => "not_ready",
            Self::Overloaded { .. } => "overloaded",
            Self::KeylessOverloaded { .. } => "overloaded_keyless",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let errors = match &self {
            Self::Invalid(errors) => errors.clone(),
            Self::Schema(schemas::SchemaError::Invalid(errors)) => errors.clone(),
            _ => Vec::new(),
        };
        let body = json!({ "success": false, "error": self.to_string(), "errors": errors });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let shed = matches!(self, Self::Overloaded { .. } | Self::KeylessOverloaded { .. });
            let secs = if shed { "1" } else { RETRY_AFTER_SECS };
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(secs));
        }
        if let Self::RateLimited { retry_after_secs } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way: this connection cannot be reused.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"uptake\""));
        }
        response
    }
}
