//! The path every write request takes, whatever its API: authenticate (and take a load-shedding
//! permit), bound and decompress the body, parse JSON, rate-limit, validate each event, then
//! write the valid events to the events topic and the rejected ones (with their reasons) to the
//! dead-letter topic.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use flate2::read::{GzDecoder, ZlibDecoder};
use prometheus::IntCounter;
use schemas::event::Event;
use schemas::FieldError;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{key_from_body, key_from_headers};
use crate::{App, IngestError};

/// Who sent a request: the write key and the source it names.
pub struct Caller {
    pub write_key: String,
    pub source: String,
    /// The request's `max_in_flight_requests` permit, held until the caller is dropped (after
    /// the broker answered).
    _permit: OwnedSemaphorePermit,
}

/// Reads and authenticates a request, in the order that makes an unknown sender cheap:
///
/// - key in the headers: checked first (401 at once), then the main in-flight permit (503 at
///   once when full), then the body is read, inflated and parsed;
/// - key in the body (`writeKey`, as analytics.js sends it): the body must be read, inflated and
///   parsed to find it, so these requests get their own small budget
///   (`max_keyless_in_flight`) and a lower inflation bound (`max_keyless_body_bytes`); only
///   once the key is known do they take a main permit. Stalled or abusive key-less clients can
///   then never starve authenticated writers.
///
/// Every body read is bounded by `body_timeout_ms` (408).
///
/// Returns the decoded JSON text, unparsed: each API parses it into what it needs (the native
/// API never builds a `Value` tree of a valid body).
pub async fn authenticate(app: &App, headers: &HeaderMap, body: Body) -> Result<(Caller, Bytes), IngestError> {
    let limits = &app.config.limits;
    if let Some(write_key) = key_from_headers(headers) {
        let source = app.write_keys.source_of(&write_key).ok_or(IngestError::Unauthorized)?.to_owned();
        let permit = main_permit(app)?;
        let raw = read_body(app, headers, body).await?;
        let decoded = app.metrics.decoded_bytes.with_label_values(&["header"]);
        let json = decode(raw, encoding(headers), limits.max_decompressed_bytes, &decoded)?;
        return Ok((Caller { write_key, source, _permit: permit }, json));
    }
    if limits.max_keyless_in_flight == 0 {
        return Err(IngestError::KeyRequiredInHeader);
    }
    let keyless = try_permit(&app.keyless_in_flight)
        .ok_or(IngestError::KeylessOverloaded { limit: limits.max_keyless_in_flight })?;
    let raw = read_body(app, headers, body).await?;
    let decoded = app.metrics.decoded_bytes.with_label_values(&["body"]);
    let json = decode(raw, encoding(headers), limits.keyless_body_limit(), &decoded)?;
    // Parsed here only to find the key: key-less bodies are small (`max_keyless_body_bytes`).
    let body: Value = serde_json::from_slice(&json).map_err(schemas::SchemaError::from)?;
    let write_key = key_from_body(&body).ok_or(IngestError::Unauthorized)?;
    let source = app.write_keys.source_of(&write_key).ok_or(IngestError::Unauthorized)?.to_owned();
    let permit = main_permit(app)?;
    drop(keyless);
    Ok((Caller { write_key, source, _permit: permit }, json))
}

fn try_permit(semaphore: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    semaphore.clone().try_acquire_owned().ok()
}

/// A `max_in_flight_requests` permit, or 503 at once: the client retries after a second
/// instead of waiting in a queue.
fn main_permit(app: &App) -> Result<OwnedSemaphorePermit, IngestError> {
    try_permit(&app.in_flight).ok_or(IngestError::Overloaded { limit: app.config.limits.max_in_flight_requests })
}

fn encoding(headers: &HeaderMap) -> &str {
    headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity")
}

/// Reads the whole body, at most `max_body_bytes` (413) and within `body_timeout_ms` (408). A
/// declared `Content-Length` over the limit is refused before reading anything.
async fn read_body(app: &App, headers: &HeaderMap, body: Body) -> Result<Bytes, IngestError> {
    let limits = &app.config.limits;
    let too_large = IngestError::BodyTooLarge { limit: limits.max_body_bytes };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout(), read).await {
        Ok(Ok(raw)) => Ok(raw),
        Ok(Err(_)) => Err(too_large),
        Err(_) => Err(IngestError::BodyTimeout { ms: limits.body_timeout_ms }),
    }
}

/// Decodes a gzip, deflate or plain body, refusing to produce more than `limit` bytes so that a
/// small compressed "bomb" cannot exhaust memory. `decoded` counts the bytes produced, refused
/// or not (what the work cost us).
/// A plain body is passed on as it was read, not copied.
fn decode(raw: Bytes, encoding: &str, limit: usize, decoded: &IntCounter) -> Result<Bytes, IngestError> {
    let reader: Box<dyn Read + '_> = match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => {
            decoded.inc_by(raw.len() as u64);
            if raw.len() > limit {
                return Err(IngestError::BodyTooLarge { limit });
            }
            return Ok(raw);
        }
        "gzip" | "x-gzip" => Box::new(GzDecoder::new(&raw[..])),
        "deflate" => Box::new(ZlibDecoder::new(&raw[..])),
        other => return Err(IngestError::UnsupportedEncoding(other.to_owned())),
    };
    let mut out = Vec::with_capacity((raw.len() * 4).min(limit + 1));
    let result = reader.take(limit as u64 + 1).read_to_end(&mut out);
    decoded.inc_by(out.len() as u64);
    result.map_err(|e| IngestError::BadEncoding(format!("{encoding} body could not be decoded: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::BodyTooLarge { limit });
    }
    Ok(out.into())
}

/// What became of a request's events.
pub struct Outcome {
    pub accepted: usize,
    pub rejected: Vec<FieldError>,
}

/// One event of a request as it came: the raw JSON text of a native event (parsed only by the
/// fast path when it is valid), or a value already parsed (Segment, whose batch merging works on
/// values).
pub enum RawEvent<'a> {
    Text(&'a RawValue),
    Value(Value),
}

/// How a request's events are parsed: `fast` turns the text of a valid event into its event
/// (`None` for anything else), `validate` names every bad field of a parsed one.
pub struct Parser<F, V> {
    pub fast: F,
    pub validate: V,
}

/// How much larger than its text an event's compact JSON can get: a number such as `1e15`
/// re-serialises as `1000000000000000.0`, at most about 4 × its bytes with its separator.
/// Texts within `max_event_bytes / 4` cannot break the limit, so the fast path skips measuring
/// them; larger ones are measured exactly, as the validator always did.
const MAX_COMPACT_GROWTH: usize = 4;

/// Validates every event, writes the valid ones and dead-letters the invalid ones, and returns
/// only once Kafka acknowledged all of it. If nothing was valid the answer is 400; the rejected
/// events are dead-lettered all the same, so a misbehaving sender can be diagnosed. Valid events
/// of a suppressed subject count as accepted but are not written.
pub async fn ingest_events(
    app: &App,
    auth: &Caller,
    raw: Vec<RawEvent<'_>>,
    is_batch: bool,
    parser: Parser<impl Fn(&str) -> Option<Event>, impl Fn(&Value) -> Result<Event, Vec<FieldError>>>,
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
        let item = match item {
            RawEvent::Text(text) => {
                let fast = (text.get().len() <= limits.max_event_bytes / MAX_COMPACT_GROWTH)
                    .then(|| (parser.fast)(text.get()))
                    .flatten();
                if let Some(event) = fast {
                    events.push(event);
                    continue;
                }
                // The rare bad (or very large) event: parsed once more, for the validator.
                serde_json::from_str(text.get()).map_err(schemas::SchemaError::from)?
            }
            RawEvent::Value(value) => value,
        };
        let size = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(usize::MAX);
        let result = if size > limits.max_event_bytes {
            Err(vec![FieldError::new(
                "event",
                format!("is {size} bytes; at most {} per event", limits.max_event_bytes),
            )])
        } else {
            (parser.validate)(&item)
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
    // Nothing is written before the suppression list is loaded, and a suppressed subject's
    // events are answered as accepted but never written (docs/privacy.md#suppression).
    crate::suppress::loaded(app).await?;
    let valid = events.len();
    let suppressed = crate::suppress::drop_suppressed(app, &mut events);
    crate::suppress::drop_suppressed_dead(app, &mut dead);
    let (sent, dead_lettered) = tokio::join!(app.sink.send_all(&events), app.sink.dead_letter(&dead, &auth.source));
    sent?;
    dead_lettered?;
    if valid == 0 {
        return Err(IngestError::Invalid(rejected));
    }
    app.metrics.suppressed_events.inc_by(suppressed as u64);
    Ok(Outcome { accepted: valid, rejected })
}
