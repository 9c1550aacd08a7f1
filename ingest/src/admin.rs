//! The admin listener (`admin_listen`): `/healthz`, `/readyz` and `/metrics`, as the aggregator
//! has them. Off the public write port: the internet need not read our metrics, and `/readyz`
//! must not let anyone make us call the broker per request. Readiness is therefore cached: a
//! background task asks the broker every few seconds and `/readyz` reads the last answer. It
//! also needs the suppression list loaded (docs/privacy.md#suppression): an instance that has
//! not read it yet would store a suppressed person's events, so it takes no traffic.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::server::{serve_http, ServerLimits};
use crate::App;

/// How often the broker is asked whether our topic is there.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(2);
/// How long one such question may take; a slower broker counts as not ready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(app)
}

/// Why ingest is not ready now, or `None` when it is: the broker answered the last check for our
/// topic and the suppression list is loaded.
pub(crate) fn not_ready_reason(app: &App) -> Option<&'static str> {
    match (app.ready.load(Ordering::Relaxed), app.suppressions.is_ready()) {
        (true, true) => None,
        (false, true) => Some("kafka unreachable"),
        (true, false) => Some("suppression list not loaded"),
        (false, false) => Some("kafka unreachable; suppression list not loaded"),
    }
}

/// Ready when [`not_ready_reason`] finds nothing: a load balancer stops sending us traffic we
/// could only refuse with 503.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    match not_ready_reason(&app) {
        None => Json(json!({ "ready": true })).into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reason": reason }))).into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<App>>) -> String {
    app.metrics.producer_queue.set(app.sink.queue_len() as i64);
    app.metrics.render()
}

/// Refreshes `app.ready` forever (the caller aborts it): the first check at once, then every
/// [`READINESS_INTERVAL`].
pub async fn refresh_readiness(app: Arc<App>) {
    loop {
        let ready = app.sink.is_ready(READINESS_TIMEOUT).await;
        if ready != app.ready.swap(ready, Ordering::Relaxed) {
            tracing::info!(ready, "broker readiness changed");
        }
        app.metrics.ready.set(i64::from(not_ready_reason(&app).is_none()));
        tokio::time::sleep(READINESS_INTERVAL).await;
    }
}

/// Serves the admin endpoints on `listener` until `shutdown`, refreshing readiness meanwhile.
pub async fn serve_admin(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let refresher = tokio::spawn(refresh_readiness(app.clone()));
    let limits = ServerLimits {
        header_timeout: app.config.limits.header_timeout(),
        // Scrapers and probes: a handful at a time.
        max_connections: 64,
        drain_timeout: Duration::from_secs(1),
    };
    serve_http(listener, router(app), limits, None, shutdown).await;
    refresher.abort();
}
