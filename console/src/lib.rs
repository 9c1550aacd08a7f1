//! uptake's CSM console: a server-rendered web UI over the ClickHouse tables the aggregator
//! keeps — the book, the alert inbox and its workflow, account pages and the rules — and the
//! publisher of the workflow's lifecycle records on the alerts topic.

pub mod auth;
mod charts;
pub mod config;
mod error;
pub mod pages;
pub mod privacy;
pub mod store;
mod telemetry;
mod web;
mod workflow;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use aggregator::RuleSet;
use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;

pub use config::{ConsoleConfig, RawConsoleConfig};
pub use error::ConsoleError;
pub use schemas::runtime::Clock;

/// What every request handler shares.
pub struct App {
    cfg: ConsoleConfig,
    store: store::Store,
    workflow: workflow::Workflow,
    privacy: privacy::Privacy,
    signer: auth::Signer,
    limiter: auth::LoginLimiter,
    telemetry: telemetry::Telemetry,
    clock: Clock,
    rules: RuleSet,
    /// The console's user names: who an alert can be assigned to.
    users: Vec<String>,
}

impl App {
    /// Builds the shared state (the rule file is read and checked here).
    fn new(cfg: ConsoleConfig, clock: Clock) -> Result<Self, ConsoleError> {
        let rules = RuleSet::load(cfg.aggregator.rules_file.as_deref())?;
        let store = store::Store::new(&cfg.aggregator.clickhouse);
        let producer: FutureProducer = cfg.aggregator.kafka.to_rdkafka_producer().create()?;
        let users: Vec<String> = cfg.users.iter().map(|u| u.name.clone()).collect();
        let privacy = privacy::Privacy::new(
            warehouse::Warehouse::new(&cfg.aggregator.clickhouse),
            producer.clone(),
            cfg.aggregator.kafka.suppressions_topic.clone(),
            clock.clone(),
        );
        let workflow = workflow::Workflow::new(
            store.clone(),
            producer,
            cfg.aggregator.kafka.alerts_topic.clone(),
            clock.clone(),
            users.clone(),
        );
        Ok(Self {
            signer: auth::Signer::new(&cfg.session_secret),
            limiter: auth::LoginLimiter::new(cfg.login_attempts, cfg.address_attempts, cfg.login_window),
            telemetry: telemetry::Telemetry::new(),
            cfg,
            store,
            workflow,
            privacy,
            clock,
            rules,
            users,
        })
    }

    /// `; Secure` when the cookie must only travel over HTTPS.
    fn secure(&self) -> &'static str {
        if self.cfg.secure_cookie {
            "; Secure"
        } else {
            ""
        }
    }
}

/// Serves the console on `listener` until `shutdown` completes. `clock` is the wall clock in production; tests pass a fixed one they move.
pub async fn serve(
    cfg: ConsoleConfig,
    listener: TcpListener,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    serve_with_admin(cfg, listener, None, clock, shutdown).await
}

/// [`serve`], and `/healthz`, `/readyz` and `/metrics` on `admin` (the operator's listener,
/// `admin_listen`) until the same `shutdown`.
pub async fn serve_with_admin(
    cfg: ConsoleConfig,
    listener: TcpListener,
    admin: Option<TcpListener>,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    let app = Arc::new(App::new(cfg, clock)?);
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin = match admin {
        Some(admin) => {
            tracing::info!(addr = %admin.local_addr()?, "console admin listening");
            let mut stopped = stopped.clone();
            let router = web::admin_router(app.clone());
            Some(tokio::spawn(async move {
                axum::serve(admin, router)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            }))
        }
        None => None,
    };
    let service = web::router(app).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    let _ = stop.send(true);
    if let Some(admin) = admin {
        admin.await.map_err(|e| ConsoleError::Io(std::io::Error::other(e)))??;
    }
    Ok(served?)
}
