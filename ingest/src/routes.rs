//! The public HTTP router: write endpoints, CORS for browser SDKs and `/healthz`. `/readyz` and
//! `/metrics` are on the admin listener ([`crate::admin`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{handlers, App};

/// Every route the public API serves, as (method, path). The router is built from this table and
/// the OpenAPI document (`schemas/openapi/ingest.json`) is tested against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/events"),
    ("POST", "/v1/track"),
    ("POST", "/v1/identify"),
    ("POST", "/v1/group"),
    ("POST", "/v1/page"),
    ("POST", "/v1/screen"),
    ("POST", "/v1/alias"),
    ("POST", "/v1/batch"),
    ("POST", "/v1/import"),
    ("GET", "/healthz"),
];

fn handler(path: &str) -> MethodRouter<Arc<App>> {
    match path {
        "/v1/events" => post(handlers::native),
        "/v1/track" => post(handlers::track),
        "/v1/identify" => post(handlers::identify),
        "/v1/group" => post(handlers::group),
        "/v1/page" => post(handlers::page),
        "/v1/screen" => post(handlers::screen),
        "/v1/alias" => post(handlers::alias),
        "/v1/batch" | "/v1/import" => post(handlers::batch),
        "/healthz" => get(|| async { Json(json!({ "status": "ok" })) }),
        other => unreachable!("route {other} is in ROUTES but has no handler"),
    }
}

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    for (_, path) in ROUTES {
        router = router.route(path, handler(path));
    }
    router
        // The body limit, its deadline and load shedding are enforced (with our JSON errors) in
        // the request pipeline, once the sender's key is known: see `request::authenticate`.
        .layer(DefaultBodyLimit::disable())
        .layer(cors(&app.config.cors_origins))
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
