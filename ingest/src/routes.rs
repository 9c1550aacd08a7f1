//! The HTTP router: the native events API and the operational endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use crate::auth::{key_from_body, key_from_headers};
use crate::{App, IngestError};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app)
}

async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    app.metrics.requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    response
}

/// `POST /v1/events`: one native event, or `{"batch": [...]}`.
///
/// Valid events of a batch are written even when others are invalid; the response lists every
/// rejected event (index, field, reason). 200 is sent only after Kafka acknowledged every
/// accepted event; if nothing in the request is valid the answer is 400.
async fn post_events(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Result<Response, IngestError> {
    let result = handle_events(&app, &headers, body).await;
    if let Err(e) = &result {
        let n = match e {
            IngestError::Invalid(errors) => errors.len() as u64,
            _ => 1,
        };
        app.metrics.events_rejected.with_label_values(&[e.reason_label()]).inc_by(n);
    }
    result
}

async fn handle_events(app: &App, headers: &HeaderMap, body: Body) -> Result<Response, IngestError> {
    let header_key = key_from_headers(headers);
    // A key in the header is checked before the body is even read: unknown senders cost nothing.
    let header_source = match &header_key {
        Some(k) => Some(app.write_keys.source_of(k).ok_or(IngestError::Unauthorized)?.to_owned()),
        None => None,
    };
    let bytes = read_body(body, app.config.limits.max_body_bytes).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(schemas::SchemaError::from)?;
    let source = match header_source {
        Some(s) => s,
        None => {
            let key = key_from_body(&value).ok_or(IngestError::Unauthorized)?;
            app.write_keys.source_of(&key).ok_or(IngestError::Unauthorized)?.to_owned()
        }
    };

    let (raw, is_batch) = schemas::native::split_body(value)?;
    let limit = app.config.limits.max_batch_events;
    if raw.len() > limit {
        return Err(IngestError::BatchTooLarge { len: raw.len(), limit });
    }
    let ctx = schemas::native::Context {
        received_at: Utc::now(),
        source: &source,
        max_future: chrono::Duration::seconds(app.config.limits.max_future_secs),
    };
    let mut events = Vec::with_capacity(raw.len());
    let mut rejected = Vec::new();
    for (index, item) in raw.iter().enumerate() {
        match schemas::native::parse_event(item, &ctx) {
            Ok(event) => events.push(event),
            Err(errors) => rejected.extend(errors.into_iter().map(|mut e| {
                e.index = is_batch.then_some(index);
                e
            })),
        }
    }
    if events.is_empty() {
        return Err(IngestError::Invalid(rejected));
    }
    app.sink.send_all(&events).await?;
    if !rejected.is_empty() {
        app.metrics.events_rejected.with_label_values(&["invalid"]).inc_by(rejected.len() as u64);
    }
    let body = json!({ "success": true, "accepted": events.len(), "rejected": rejected });
    Ok((StatusCode::OK, Json(body)).into_response())
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| IngestError::BodyTooLarge { limit })
}

/// Ready when the broker answers for our topic: a load balancer stops sending us traffic we
/// could only refuse with 503.
async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.sink.is_ready(Duration::from_secs(2)).await {
        Json(json!({ "ready": true })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reason": "kafka unreachable" })))
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> String {
    app.metrics.producer_queue.set(app.sink.queue_len() as i64);
    app.metrics.render()
}
