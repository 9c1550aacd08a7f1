//! Write endpoints: the native API and the Segment Tracking API. Both normalise into the
//! canonical event and share one pipeline ([`crate::request`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::json;

use crate::request::{authenticate, ingest_events, Outcome};
use crate::{App, IngestError};

/// The JSON answer to a write, or the error's own response; refusals are counted by reason.
fn respond(app: &App, result: Result<Outcome, IngestError>) -> Response {
    match result {
        Ok(outcome) => {
            Json(json!({ "success": true, "accepted": outcome.accepted, "rejected": outcome.rejected })).into_response()
        }
        Err(e) => {
            app.metrics.requests_refused.with_label_values(&[e.reason_label()]).inc();
            e.into_response()
        }
    }
}

fn max_future(app: &App) -> chrono::Duration {
    chrono::Duration::seconds(app.config.limits.max_future_secs)
}

/// `POST /v1/events`: one native event, or `{"batch": [...]}`.
pub async fn native(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let (caller, body) = authenticate(&app, &headers, body).await?;
        let (raw, is_batch) = schemas::native::split_body(body)?;
        let ctx = schemas::native::Context { received_at: Utc::now(), source: &caller.source, max_future: max_future(&app) };
        ingest_events(&app, &caller, raw, is_batch, |v| schemas::native::parse_event(v, &ctx)).await
    }
    .await;
    respond(&app, result)
}
