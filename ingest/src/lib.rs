//! uptake ingest: the HTTP front door. Validates usage events and writes them to Kafka,
//! answering 200 only once the broker has acknowledged every event of the request.

// The public surface (what the binary, the tests, testkit and the bench use): the service
// ([`App`], [`serve`], [`serve_admin`]), its configuration and error, the write-key type tests
// configure, the route table the OpenAPI test holds to the document, and the sink seam
// ([`sink::EventSink`] with its Kafka and in-memory implementations). Everything else is private.
mod admin;
mod auth;
mod config;
mod error;
mod groups;
mod handlers;
mod keys;
mod metrics;
mod ratelimit;
mod request;
mod routes;
mod server;
pub mod sink;
mod suppress;

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use schemas::runtime::suppressions::Suppressions;
use tokio::net::TcpListener;

pub use config::{IngestConfig, RawIngestConfig};
pub use error::IngestError;
pub use keys::WriteKey;
pub use routes::ROUTES;

/// The shared state of the service.
pub struct App {
    pub config: IngestConfig,
    /// Where events go: Kafka in production ([`sink::KafkaSink`]), memory in fast tests
    /// ([`sink::CollectingSink`]).
    pub sink: Arc<dyn sink::EventSink>,
    pub write_keys: auth::WriteKeys,
    pub rate_limiter: ratelimit::RateLimiter,
    pub groups: groups::GroupMemory,
    pub metrics: metrics::Metrics,
    /// Permits for write requests in flight (`limits.max_in_flight_requests`), taken only once
    /// the sender's key is known.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The separate, small budget of requests whose key is in the body and so not yet known
    /// (`limits.max_keyless_in_flight`): they can never take the permits above.
    pub keyless_in_flight: Arc<tokio::sync::Semaphore>,
    /// The broker's last readiness answer, refreshed by [`admin::refresh_readiness`].
    pub ready: AtomicBool,
    /// Who must not be stored (docs/privacy.md#suppression): filled by the follower [`serve`]
    /// runs for an app made by [`App::new`], or given by the caller of [`App::with_sink`] /
    /// [`App::with_suppressions`].
    pub suppressions: Suppressions,
    /// Whether [`serve`] follows `kafka.suppressions_topic` into `suppressions`.
    follows_suppressions: bool,
}

impl App {
    /// The service writing to Kafka (`config.kafka`), its suppression list followed from
    /// `kafka.suppressions_topic` once [`serve`] runs (not ready until then).
    pub fn new(config: IngestConfig) -> Result<Arc<Self>, IngestError> {
        let metrics = metrics::Metrics::new();
        let sink = Arc::new(sink::KafkaSink::new(&config.kafka, metrics.clone())?);
        Self::assemble(config, sink, metrics, Suppressions::default(), true)
    }

    /// The service writing to `sink` instead of Kafka (`config.kafka` is then unused), with an
    /// empty suppression list.
    pub fn with_sink(config: IngestConfig, sink: Arc<dyn sink::EventSink>) -> Result<Arc<Self>, IngestError> {
        Self::with_suppressions(config, sink, Suppressions::ready_empty())
    }

    /// Like [`App::with_sink`], with the suppression list the caller holds (and changes).
    pub fn with_suppressions(
        config: IngestConfig,
        sink: Arc<dyn sink::EventSink>,
        suppressions: Suppressions,
    ) -> Result<Arc<Self>, IngestError> {
        Self::assemble(config, sink, metrics::Metrics::new(), suppressions, false)
    }

    fn assemble(
        config: IngestConfig,
        sink: Arc<dyn sink::EventSink>,
        metrics: metrics::Metrics,
        suppressions: Suppressions,
        follows_suppressions: bool,
    ) -> Result<Arc<Self>, IngestError> {
        let write_keys = auth::WriteKeys::new(config.write_keys.clone());
        let rate_limiter = ratelimit::RateLimiter::new(config.limits.rate_per_sec, config.limits.burst);
        let groups = groups::GroupMemory::new(config.segment.remembered_bytes);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight_requests));
        let keyless_in_flight = Arc::new(tokio::sync::Semaphore::new(config.limits.max_keyless_in_flight));
        Ok(Arc::new(Self {
            config,
            sink,
            write_keys,
            rate_limiter,
            groups,
            metrics,
            in_flight,
            keyless_in_flight,
            ready: AtomicBool::new(false),
            suppressions,
            follows_suppressions,
        }))
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes in-flight requests
/// and flushes the producer. Tests call this with a listener on port 0. The admin endpoints are
/// served apart, by [`serve_admin`]. The suppression list of an app made by [`App::new`] is
/// followed meanwhile, from before the first request until the last one has drained.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let limits = &app.config.limits;
    let server_limits = server::ServerLimits {
        header_timeout: limits.header_timeout(),
        max_connections: limits.max_connections,
        // A request in progress needs at most its body deadline plus the broker's.
        drain_timeout: limits.body_timeout() + app.config.kafka.delivery_timeout() + Duration::from_secs(1),
    };
    let follower = suppress::Follower::start(&app);
    let router = routes::router(app.clone());
    server::serve_http(listener, router, server_limits, Some(app.metrics.clone()), shutdown).await;
    follower.stop().await;
    app.sink.flush(Duration::from_secs(10))
}

/// Serves `/healthz`, `/readyz` and `/metrics` on `listener` (`admin_listen`) until `shutdown`.
pub async fn serve_admin(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()> + Send + 'static) {
    admin::serve_admin(listener, app, shutdown).await
}
