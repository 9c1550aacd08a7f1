//! The path every write request takes, whatever its API: authenticate, bound and decompress the
//! body, parse JSON, rate-limit, validate each event, then write the valid events to the events
//! topic and the rejected ones (with their reasons) to the dead-letter topic.

use std::io::Read;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap};
use flate2::read::{GzDecoder, ZlibDecoder};
use schemas::event::Event;
use schemas::FieldError;
use serde_json::Value;

use crate::auth::{key_from_body, key_from_headers};
use crate::{App, IngestError};

/// Who sent a request: the write key and the source it names.
pub struct Caller {
    pub write_key: String,
    pub source: String,
}

/// Reads and authenticates a request. A key in the headers is checked before the body is read,
/// so unknown senders cost us nothing; a key in the body (`writeKey`) after parsing.
pub async fn authenticate(app: &App, headers: &HeaderMap, body: Body) -> Result<(Caller, Value), IngestError> {
    let header_key = key_from_headers(headers);
    if let Some(key) = &header_key {
        app.write_keys.source_of(key).ok_or(IngestError::Unauthorized)?;
    }
    let limits = &app.config.limits;
    let raw = axum::body::to_bytes(body, limits.max_body_bytes)
        .await
        .map_err(|_| IngestError::BodyTooLarge { limit: limits.max_body_bytes })?;
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let json = decompress(&raw, encoding, limits.max_decompressed_bytes)?;
    let body: Value = serde_json::from_slice(&json).map_err(schemas::SchemaError::from)?;
    let write_key = header_key.or_else(|| key_from_body(&body)).ok_or(IngestError::Unauthorized)?;
    let source = app.write_keys.source_of(&write_key).ok_or(IngestError::Unauthorized)?.to_owned();
    Ok((Caller { write_key, source }, body))
}

/// Inflates a gzip or deflate body, refusing to produce more than `limit` bytes so that a small
/// compressed "bomb" cannot exhaust memory.
fn decompress(raw: &[u8], encoding: &str, limit: usize) -> Result<Vec<u8>, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => return Ok(raw.to_vec()),
        "gzip" | "x-gzip" => Box::new(GzDecoder::new(raw)),
        "deflate" => Box::new(ZlibDecoder::new(raw)),
        other => return Err(IngestError::UnsupportedEncoding(other.to_owned())),
    };
    let mut out = Vec::with_capacity(raw.len() * 4);
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadEncoding(format!("{encoding} body could not be decoded: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::BodyTooLarge { limit });
    }
    Ok(out)
}

/// What became of a request's events.
pub struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<FieldError>,
}

/// Validates every event with `parse`, writes the valid ones and dead-letters the invalid ones,
/// and returns only once Kafka acknowledged all of it. If nothing was valid the answer is 400;
/// the rejected events are dead-lettered all the same, so a misbehaving sender can be diagnosed.
pub async fn ingest_events(
    app: &App,
    auth: &Caller,
    raw: Vec<Value>,
    is_batch: bool,
    parse: impl Fn(&Value) -> Result<Event, Vec<FieldError>>,
) -> Result<Outcome, IngestError> {
    let limits = &app.config.limits;
    if raw.len() > limits.max_batch_events {
        return Err(IngestError::BatchTooLarge { len: raw.len(), limit: limits.max_batch_events });
    }
    app.rate_limiter
        .check(&auth.write_key, raw.len() as u32, Instant::now())
        .map_err(|wait| IngestError::RateLimited { retry_after_secs: wait.as_secs() + 1 })?;

    let mut events = Vec::with_capacity(raw.len());
    let mut rejected = Vec::new();
    let mut dead = Vec::new();
    for (index, item) in raw.into_iter().enumerate() {
        let size = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(usize::MAX);
        let result = if size > limits.max_event_bytes {
            Err(vec![FieldError::new("event", format!("is {size} bytes; at most {} per event", limits.max_event_bytes))])
        } else {
            parse(&item)
        };
        match result {
            Ok(event) => events.push(event),
            Err(errors) => {
                let errors: Vec<FieldError> =
                    errors.into_iter().map(|e| FieldError { index: is_batch.then_some(index), ..e }).collect();
                dead.push((item, errors.clone()));
                rejected.extend(errors);
            }
        }
    }
    app.metrics.events_rejected.with_label_values(&["invalid"]).inc_by(dead.len() as u64);
    let (sent, dead_lettered) = tokio::join!(app.sink.send_all(&events), app.sink.dead_letter(&dead, &auth.source));
    sent?;
    dead_lettered?;
    if events.is_empty() {
        return Err(IngestError::Invalid(rejected));
    }
    Ok(Outcome { accepted: events.len(), rejected })
}
