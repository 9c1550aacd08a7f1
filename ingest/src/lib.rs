//! uptake ingest: the HTTP front door. Validates usage events and writes them to Kafka,
//! answering 200 only once the broker has acknowledged every event of the request.

pub mod auth;
pub mod config;
mod error;
pub mod groups;
pub mod handlers;
pub mod metrics;
pub mod ratelimit;
pub mod request;
pub mod routes;
pub mod sink;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use config::IngestConfig;
pub use error::IngestError;

/// The shared state of the service.
pub struct App {
    pub config: IngestConfig,
    pub sink: sink::KafkaSink,
    pub write_keys: auth::WriteKeys,
    pub rate_limiter: ratelimit::RateLimiter,
    pub groups: groups::GroupMemory,
    pub metrics: metrics::Metrics,
    /// Permits for write requests in flight (`limits.max_in_flight_requests`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl App {
    pub fn new(config: IngestConfig) -> Result<Arc<Self>, IngestError> {
        config.validate()?;
        let metrics = metrics::Metrics::new();
        let sink = sink::KafkaSink::new(&config.kafka, metrics.clone())?;
        let write_keys = auth::WriteKeys::new(config.write_keys.clone());
        let rate_limiter = ratelimit::RateLimiter::new(config.limits.rate_per_sec, config.limits.burst);
        let groups = groups::GroupMemory::new(config.segment.remembered_bytes);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight_requests));
        Ok(Arc::new(Self { config, sink, write_keys, rate_limiter, groups, metrics, in_flight }))
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests
/// and flushes the producer. Tests call this with a listener on port 0.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let router = routes::router(app.clone());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| IngestError::Unavailable(format!("http server: {e}")))?;
    app.sink.flush(Duration::from_secs(10))
}
