//! The native ingest format (`POST /v1/events`): parsing and validation into [`Event`].
//!
//! Validation is hand-written over `serde_json::Value` rather than derived, because the product
//! promises a precise complaint per field ("event 3: nps: must be an integer from 0 to 10"),
//! and it reports every problem of an event at once instead of stopping at the first.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::event::{Event, EventKind, TicketStatus};
use crate::fields::{IdType, Reader};
use crate::limits::{check_age, MAX_USES, MAX_VOLUME};
use crate::outcome::{trait_outcomes, Outcome};
use crate::{FieldError, SchemaError};

/// Longest accepted identifier in bytes (account, user, message, ticket ids; feature names):
/// the one id rule is [`crate::limits::check_id`].
pub const MAX_ID_LEN: usize = crate::limits::MAX_ID_BYTES;

/// What validation needs to know beyond the event itself.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub received_at: DateTime<Utc>,
    /// The source named by the write key, stamped on every event.
    pub source: &'a str,
    /// Timestamps further than this in the future are clock skew: clamped to `received_at`.
    pub max_future: Duration,
    /// Events older than this (before `received_at`) are refused with an error on `timestamp`.
    pub max_age: Duration,
}

/// Splits a parsed request body into its events: one event object, or `{"batch": [...]}`.
/// Returns the events and whether the body was a batch.
pub fn split_body(value: Value) -> Result<(Vec<Value>, bool), SchemaError> {
    let Value::Object(mut obj) = value else {
        return Err(invalid("body", "must be an event object or {\"batch\": [...]}"));
    };
    match obj.remove("batch") {
        None => Ok((vec![Value::Object(obj)], false)),
        Some(Value::Array(events)) if obj.is_empty() || obj.keys().all(|k| k == "writeKey") => {
            if events.is_empty() {
                return Err(invalid("batch", "must hold at least one event"));
            }
            Ok((events, true))
        }
        Some(Value::Array(_)) => Err(invalid("body", "a batch body may only hold \"batch\" (and \"writeKey\")")),
        Some(_) => Err(invalid("batch", "must be an array of events")),
    }
}

pub(crate) fn invalid(field: &str, reason: &str) -> SchemaError {
    SchemaError::Invalid(vec![FieldError::new(field, reason)])
}

const COMMON: &[&str] = &["kind", "account_id", "user_id", "timestamp", "message_id", "properties", "writeKey"];

pub(crate) fn kind_fields(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::Login => &[],
        EventKind::FeatureUsed => &["feature", "module", "count"],
        EventKind::DataVolume => &["records", "bytes", "object"],
        EventKind::Survey => &["nps", "csat"],
        EventKind::SupportTicket => &["ticket_id", "status", "priority"],
        EventKind::Account | EventKind::User => &["traits"],
        EventKind::Outcome => &["outcome"],
    }
}

/// Validates one native event and normalises it. Every problem is reported, not just the first.
pub fn parse_event(value: &Value, ctx: &Context<'_>) -> Result<Event, Vec<FieldError>> {
    let Value::Object(obj) = value else {
        return Err(vec![FieldError::new("event", "must be a JSON object")]);
    };
    let mut r = Reader::new(obj);
    let kind = match obj.get("kind") {
        None => {
            r.fail("kind", "is required");
            None
        }
        Some(Value::String(s)) => {
            let kind = EventKind::parse(s);
            if kind.is_none() {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                r.fail("kind", &format!("unknown kind {s:?}; expected one of {}", known.join(", ")));
            }
            kind
        }
        Some(_) => {
            r.fail("kind", "must be a string");
            None
        }
    };
    let Some(kind) = kind else { return Err(r.errors) };
    for key in obj.keys() {
        if !COMMON.contains(&key.as_str()) && !kind_fields(kind).contains(&key.as_str()) {
            r.fail(key, &format!("unknown field for kind {:?}", kind.as_str()));
        }
    }

    let needs_user = matches!(kind, EventKind::Login | EventKind::FeatureUsed | EventKind::User);
    let account_id = r.id("account_id", true).unwrap_or_default();
    let user_id = r.id("user_id", needs_user).unwrap_or_default();
    let message_id = r.id("message_id", false).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut properties = r.object("properties").unwrap_or_default();
    let timestamp = match r.timestamp("timestamp") {
        Some(t) if t > ctx.received_at + ctx.max_future => {
            // A clock far ahead would put the event into days that have not happened yet and
            // distort every window; keep the client's value for analysts, count it as received.
            properties.insert("uptake_client_timestamp".into(), Value::String(t.to_rfc3339()));
            ctx.received_at
        }
        Some(t) => {
            if let Some(reason) = check_age(t, ctx.received_at, ctx.max_age) {
                r.fail("timestamp", &reason);
            }
            t
        }
        None => ctx.received_at,
    };

    let mut event =
        Event::new(kind, message_id, account_id, user_id, timestamp, ctx.received_at, ctx.source.to_owned());
    event.properties = properties;
    match kind {
        EventKind::Login => {}
        EventKind::FeatureUsed => {
            event.feature = r.id("feature", true);
            event.module = r.id("module", false);
            event.count = Some(r.uint("count", 1, MAX_USES).unwrap_or(1));
        }
        EventKind::DataVolume => {
            event.records = r.uint("records", 0, MAX_VOLUME);
            event.bytes = r.uint("bytes", 0, MAX_VOLUME);
            event.object = r.id("object", false);
            if event.records.is_none() && event.bytes.is_none() && !r.has("records") && !r.has("bytes") {
                r.fail("records", "a data_volume event needs records and/or bytes");
            }
        }
        EventKind::Survey => {
            event.nps = r.uint("nps", 0, 10).map(|v| v as u8);
            event.csat = r.uint("csat", 1, 5).map(|v| v as u8);
            if !r.has("nps") && !r.has("csat") {
                r.fail("nps", "a survey event needs nps (0-10) and/or csat (1-5)");
            }
        }
        EventKind::SupportTicket => {
            event.ticket_id = r.id("ticket_id", true);
            event.ticket_status = match obj.get("status").and_then(Value::as_str) {
                Some("opened") => Some(TicketStatus::Opened),
                Some("closed") => Some(TicketStatus::Closed),
                _ => {
                    r.fail("status", "is required: \"opened\" or \"closed\"");
                    None
                }
            };
            event.priority = r.id("priority", false);
        }
        EventKind::Account => match r.object("traits") {
            Some(traits) => {
                // Outcome traits (`churned_at`…) are held to their date format here, once.
                r.errors.extend(trait_outcomes(&traits).err().unwrap_or_default());
                event.traits = traits;
            }
            None if !r.has("traits") => r.fail("traits", "an account event needs a traits object"),
            None => {}
        },
        EventKind::User => event.traits = r.object("traits").unwrap_or_default(),
        EventKind::Outcome => {
            event.outcome = match obj.get("outcome") {
                Some(Value::String(s)) if Outcome::parse(s).is_some() => Outcome::parse(s),
                _ => {
                    r.fail("outcome", "is required: \"churned\", \"renewed\" or \"contracted\"");
                    None
                }
            }
        }
    }
    r.finish(event)
}

impl Reader<'_> {
    /// An id or name under the one id rule ([`crate::limits::check_id`]); strings only.
    fn id(&mut self, field: &str, required: bool) -> Option<String> {
        self.id_at(field, self.obj.get(field), required, IdType::String)
    }

    fn uint(&mut self, field: &str, min: u64, max: u64) -> Option<u64> {
        self.count_at(field, self.obj.get(field), min, max)
    }
}
