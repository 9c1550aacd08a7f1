//! ingest in-process in one call: API and admin listeners on port 0, fresh topics on the test
//! stack (or any brokers), stopped when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ingest::WriteKey;
use ingest::{App, IngestError, RawIngestConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Stack;

/// The configuration of an ingest writing to fresh `usage-events` and `usage-events-dlq`
/// topics of `stack` (created here, 2 partitions), accepting `key` as `source`, and following a
/// fresh suppressions topic (created by [`serve`]).
pub async fn config(stack: &Stack, key: &str, source: &str) -> RawIngestConfig {
    let (events, dlq) = (stack.topic("usage-events"), stack.topic("usage-events-dlq"));
    stack.create_topics(&[&events, &dlq], 2).await;
    let mut cfg = config_for(&stack.kafka, key, source);
    cfg.kafka.topic = events;
    cfg.kafka.dlq_topic = dlq;
    cfg.kafka.suppressions_topic = stack.topic("usage-suppressions");
    cfg
}

/// The configuration of an ingest on `brokers` (topics as configured by default), accepting
/// `key` as `source`. No topic is created.
pub fn config_for(brokers: &str, key: &str, source: &str) -> RawIngestConfig {
    let mut cfg = RawIngestConfig::default();
    cfg.kafka.brokers = brokers.into();
    cfg.write_keys = vec![WriteKey { key: key.into(), source: source.into() }];
    cfg
}

/// A running ingest. Dropping it stops the API (in-flight requests finish, the producer is
/// flushed); [`RunningIngest::stop`] does the same and waits.
pub struct RunningIngest {
    /// `http://` address of the API.
    pub url: String,
    /// `http://` address of `/healthz`, `/readyz`, `/metrics`.
    pub admin_url: String,
    pub api: SocketAddr,
    pub admin: SocketAddr,
    pub app: Arc<App>,
    pub events_topic: String,
    pub dlq_topic: String,
    pub suppressions_topic: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), IngestError>>>,
}

impl RunningIngest {
    /// Stops the API and waits until it drained and flushed.
    pub async fn stop(mut self) -> Result<(), IngestError> {
        drop(self.stop.take());
        self.task.take().expect("running").await.expect("ingest task panicked")
    }
}

impl Drop for RunningIngest {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// Serves `cfg`, validated, on port 0 (API and admin listeners), after creating its
/// suppressions topic if the brokers answer (an ingest is not ready without it).
pub async fn serve(cfg: RawIngestConfig) -> RunningIngest {
    ensure_topic(&cfg.kafka.brokers, &cfg.kafka.suppressions_topic).await;
    serve_app(App::new(cfg.build_and_validate().expect("a valid ingest config")).expect("ingest")).await
}

/// Creates `topic` (1 partition) unless it exists. Skipped when the first broker refuses
/// connections: tests that never reach a broker point ingest at a closed port.
async fn ensure_topic(brokers: &str, topic: &str) {
    let first = brokers.split(',').next().unwrap_or_default().trim();
    let reachable = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(first)).await;
    if !matches!(reachable, Ok(Ok(_))) {
        return;
    }
    // Several tests may create the shared default topic at once: "already exists" is fine.
    if let Err(e) = schemas::runtime::kafka::create_topics(brokers, &[topic], 1).await {
        if !e.to_string().contains("already exists") {
            eprintln!("creating the suppressions topic {topic}: {e}");
        }
    }
}

/// Serves an already built `app` (e.g. one with a collecting sink) on port 0.
pub async fn serve_app(app: Arc<App>) -> RunningIngest {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (api, admin) = (listener.local_addr().unwrap(), admin_listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ingest::serve_admin(admin_listener, app.clone(), std::future::pending()));
    let task = tokio::spawn(ingest::serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    RunningIngest {
        url: format!("http://{api}"),
        admin_url: format!("http://{admin}"),
        api,
        admin,
        events_topic: app.config.kafka.topic.clone(),
        dlq_topic: app.config.kafka.dlq_topic.clone(),
        suppressions_topic: app.config.kafka.suppressions_topic.clone(),
        app,
        stop: Some(stop),
        task: Some(task),
    }
}

/// [`config`] then [`serve`], with `tweak` applied to the configuration in between.
pub async fn start(stack: &Stack, key: &str, source: &str, tweak: impl FnOnce(&mut RawIngestConfig)) -> RunningIngest {
    let mut cfg = config(stack, key, source).await;
    tweak(&mut cfg);
    serve(cfg).await
}
