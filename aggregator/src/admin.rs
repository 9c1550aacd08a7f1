//! Admin HTTP endpoints: `/healthz` (the process runs), `/readyz` (ClickHouse answers) and
//! `/metrics` (Prometheus).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::AggregatorError;

#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    pub metrics: Arc<Telemetry>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|State(s): State<AdminState>| async move { s.metrics.render() }))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.store.ping().await {
        Json(json!({ "ready": true })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reason": "clickhouse unreachable" })))
            .into_response()
    }
}

pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AggregatorError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await?;
    Ok(())
}
