//! The HTTP router: write endpoints, CORS for browser SDKs, and the operational endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{handlers, App};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/events", post(handlers::native))
        // The body limit is enforced (with our JSON error) in the request pipeline.
        .layer(DefaultBodyLimit::disable())
        .layer(cors(&app.config.cors_origins))
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(app.clone(), count_requests))
        .with_state(app)
}

/// Browser SDKs (analytics.js, RudderStack's JS SDK) post cross-origin with an Authorization
/// header, so preflights must be answered for the write routes.
fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::CONTENT_ENCODING])
        .max_age(Duration::from_secs(3600))
}

async fn count_requests(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    app.metrics.requests.with_label_values(&[route.as_str(), response.status().as_str()]).inc();
    response
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
