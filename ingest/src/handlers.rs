//! Write endpoints: the native API and the Segment Tracking API. Both normalise into the
//! canonical event and share one pipeline ([`crate::request`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use schemas::event::EventKind;
use schemas::segment::{self, CallType};
use serde_json::json;

use crate::request::{authenticate, ingest_events, Outcome, Parser, RawEvent};
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
        let (caller, json) = authenticate(&app, &headers, body).await?;
        let (raw, is_batch) = schemas::native_fast::split_raw(&json)?;
        let ctx = schemas::native::Context {
            received_at: Utc::now(),
            source: &caller.source,
            max_future: max_future(&app),
            max_age: app.config.max_age(),
        };
        let parser = Parser {
            fast: |text: &str| schemas::native_fast::parse_event_fast(text, &ctx),
            validate: |v: &serde_json::Value| schemas::native::parse_event(v, &ctx),
        };
        let raw = raw.into_iter().map(RawEvent::Text).collect();
        ingest_events(&app, &caller, raw, is_batch, parser).await
    }
    .await;
    respond(&app, result)
}

/// The Segment parse step shared by every Segment endpoint: the group memory feeds the
/// attribution chain, and group calls update it (in request order, so a group call earlier in
/// a batch attributes the track calls after it).
fn parse_segment(
    app: &App,
    call: Option<CallType>,
    msg: &serde_json::Value,
    ctx: &segment::Context<'_>,
) -> Result<schemas::event::Event, Vec<schemas::FieldError>> {
    let event = segment::parse_message(call, msg, ctx)?;
    if event.kind == EventKind::Account {
        app.groups.remember(&event.source, &event.user_id, &event.account_id);
    }
    Ok(event)
}

async fn segment_request(app: Arc<App>, headers: HeaderMap, body: Body, call: Option<CallType>) -> Response {
    let result = async {
        let (caller, json) = authenticate(&app, &headers, body).await?;
        let body = serde_json::from_slice(&json).map_err(schemas::SchemaError::from)?;
        let (raw, is_batch) = match call {
            Some(_) => (vec![body], false),
            None => (segment::split_batch(body)?, true),
        };
        let lookup = |user: &str| app.groups.account_of(&caller.source, user);
        let ctx = segment::Context {
            received_at: Utc::now(),
            source: &caller.source,
            max_future: max_future(&app),
            max_age: app.config.max_age(),
            mapping: &app.config.segment.mapping,
            group_of_user: &lookup,
        };
        // No fast path yet: a Segment batch merges its shared context into every message.
        let parser =
            Parser { fast: |_: &str| None, validate: |v: &serde_json::Value| parse_segment(&app, call, v, &ctx) };
        ingest_events(&app, &caller, raw.into_iter().map(RawEvent::Value).collect(), is_batch, parser).await
    }
    .await;
    respond(&app, result)
}

/// `POST /v1/track` (Segment).
pub async fn track(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Track)).await
}

/// `POST /v1/identify` (Segment).
pub async fn identify(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Identify)).await
}

/// `POST /v1/group` (Segment).
pub async fn group(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Group)).await
}

/// `POST /v1/page` (Segment).
pub async fn page(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Page)).await
}

/// `POST /v1/screen` (Segment).
pub async fn screen(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Screen)).await
}

/// `POST /v1/alias` (Segment).
pub async fn alias(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, Some(CallType::Alias)).await
}

/// `POST /v1/batch` and `POST /v1/import` (Segment): each message names its call in `type`.
pub async fn batch(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    segment_request(app, headers, body, None).await
}
