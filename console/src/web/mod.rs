//! The HTTP side, in three parts: the routes and what every response carries (here), who is
//! signed in and how they sign in and out ([`session`]: the session cookie or trusted header,
//! CSRF, the sign-in limit, and [`session::Who`], the signed-in user as a handler argument), and
//! the pages and actions ([`handlers`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;

use crate::pages::{self, Viewer};
use crate::{App, ConsoleError};

mod admin;
mod handlers;
mod session;

use handlers::{account_page, alert_action, book_page, inbox_page, rules_page};
use session::{login_form, login_post, logout};

const CSS: &str = include_str!("../../assets/console.css");
/// No script, no frames, no third-party anything: the pages need none.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/book") }))
        .route("/login", get(login_form).post(login_post))
        .route("/logout", post(logout))
        .route("/book", get(book_page))
        .route("/inbox", get(inbox_page))
        .route("/accounts/{account}", get(account_page))
        .route("/alerts/{alert}/{action}", post(alert_action))
        .route("/rules", get(rules_page))
        .route("/admin/privacy", get(admin::privacy_page).post(admin::privacy_file))
        .route("/admin/privacy/export", get(admin::privacy_export))
        .route("/admin/privacy/{id}", get(admin::privacy_request))
        .route("/api/v1/regulations", get(admin::api_list).post(admin::api_file))
        .route("/api/v1/regulations/{id}", get(admin::api_get))
        .route("/api/v1/exports", get(admin::api_export))
        .route("/static/console.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS) }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

/// The operator's endpoints, on the admin listener only: health, readiness, metrics.
pub fn admin_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(|State(app): State<Arc<App>>| async move { app.telemetry.render() }))
        .with_state(app)
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    res
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.store.ping().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "clickhouse unreachable").into_response()
    }
}

pub(super) fn page(status: StatusCode, markup: Markup) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], markup.into_string()).into_response()
}

/// A ClickHouse or broker failure as the page a CSM sees: nothing was changed, try again.
pub(super) fn unavailable(e: &ConsoleError, viewer: &Viewer<'_>) -> Response {
    tracing::warn!(error = %e, "console request failed");
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::error_page(
            "Temporarily unavailable",
            &format!("uptake could not reach its data: {e}. Try again in a moment."),
            Some(viewer),
        ),
    )
}
