//! The fast path of the native format: a request body split into the raw JSON text of each event,
//! and a valid event deserialized straight into typed, borrowed fields — no `serde_json::Value`
//! tree for the body or the event (that tree was most of ingest's CPU per event).
//!
//! The fast path only ever *accepts*: anything it does not take (a bad field, a duplicate key, a
//! string with escapes where it borrows, an unknown field) returns `None`, and the caller runs the
//! precise validator of [`crate::native`] on that one event, which names every bad field. So the
//! error contract lives in one place, and valid events — nearly all of them — never build a tree.
//! For every input the fast path takes, it produces exactly the event [`native::parse_event`]
//! produces (checked by the native tests, which feed every case to both).
//!
//! [`native::parse_event`]: crate::native::parse_event

use std::borrow::Cow;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::event::{Event, EventKind, TicketStatus};
use crate::limits::{check_age, check_id, MAX_USES, MAX_VOLUME};
use crate::native::{invalid, Context};
use crate::outcome::{trait_outcomes, Outcome};
use crate::SchemaError;

/// Splits a native request body (JSON text) into the raw text of its events: one event object,
/// or `{"batch": [...]}`. Returns the events and whether the body was a batch. The same answers
/// as [`crate::native::split_body`]: not JSON is [`SchemaError::Json`], the wrong shape names
/// `body` or `batch`.
pub fn split_raw(json: &[u8]) -> Result<(Vec<&RawValue>, bool), SchemaError> {
    // One pass over the body: its top-level keys, and the text of each event of its batch.
    let top: Top<'_> = match serde_json::from_slice(json) {
        Ok(top) => top,
        Err(_) => {
            // Not JSON at all stays a JSON error (400 "invalid JSON"); JSON of another shape
            // is the contract's complaint about the body.
            serde_json::from_slice::<IgnoredAny>(json)?;
            return Err(invalid("body", "must be an event object or {\"batch\": [...]}"));
        }
    };
    match top.batch {
        None => Ok((vec![serde_json::from_slice(json)?], false)),
        Some(Batch::NotArray) => Err(invalid("batch", "must be an array of events")),
        Some(Batch::Events(_)) if top.other_keys => {
            Err(invalid("body", "a batch body may only hold \"batch\" (and \"writeKey\")"))
        }
        Some(Batch::Events(events)) if events.is_empty() => Err(invalid("batch", "must hold at least one event")),
        Some(Batch::Events(events)) => Ok((events, true)),
    }
}

/// The top level of a native body: the last `batch` (as the validator reads duplicates), and
/// whether it holds keys besides `batch` and `writeKey`.
struct Top<'a> {
    batch: Option<Batch<'a>>,
    other_keys: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Top<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut top = Top { batch: None, other_keys: false };
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    if key.0 == "batch" {
                        top.batch = Some(map.next_value()?);
                    } else {
                        top.other_keys |= key.0 != "writeKey";
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(top)
            }
        }
        d.deserialize_map(V)
    }
}

/// A body's `batch`: the text of each event when it is an array.
enum Batch<'a> {
    Events(Vec<&'a RawValue>),
    NotArray,
}

impl<'de: 'a, 'a> Deserialize<'de> for Batch<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Batch<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(64));
                while let Some(event) = seq.next_element()? {
                    events.push(event);
                }
                Ok(Batch::Events(events))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Batch::NotArray)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Batch::NotArray)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object key, borrowed from the body unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Str::deserialize(d).map(|s| Key(s.0))
    }
}

/// A JSON string, borrowed from the body unless it had escapes (then owned, still valid).
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A field that may be absent, `null` or a value: the validator treats `null` as absent for
/// every field but refuses a field the kind does not have even when it is `null`, so the fast
/// path must tell the three apart (an `Option` cannot).
#[derive(Default)]
enum Slot<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Slot<T> {
    fn present(&self) -> bool {
        !matches!(self, Slot::Absent)
    }

    fn value(self) -> Option<T> {
        match self {
            Slot::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Slot<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_json calls `deserialize_option` with `None` for `null` only.
        Option::<T>::deserialize(d).map(|v| v.map_or(Slot::Null, Slot::Value))
    }
}

/// Every field of the native format, typed as the validator requires it. A wrong JSON type, an
/// unknown or a duplicate field fails deserialization, and with it the fast path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    #[serde(default, borrow)]
    account_id: Slot<Str<'a>>,
    #[serde(default, borrow)]
    user_id: Slot<Str<'a>>,
    #[serde(default, borrow)]
    timestamp: Slot<Str<'a>>,
    #[serde(default, borrow)]
    message_id: Slot<Str<'a>>,
    #[serde(default)]
    properties: Slot<Map<String, Value>>,
    #[serde(default, rename = "writeKey")]
    _write_key: Slot<IgnoredAny>,
    #[serde(default, borrow)]
    feature: Slot<Str<'a>>,
    #[serde(default, borrow)]
    module: Slot<Str<'a>>,
    #[serde(default)]
    count: Slot<u64>,
    #[serde(default)]
    records: Slot<u64>,
    #[serde(default)]
    bytes: Slot<u64>,
    #[serde(default, borrow)]
    object: Slot<Str<'a>>,
    #[serde(default)]
    nps: Slot<u64>,
    #[serde(default)]
    csat: Slot<u64>,
    #[serde(default, borrow)]
    ticket_id: Slot<Str<'a>>,
    #[serde(default, borrow)]
    status: Slot<Str<'a>>,
    #[serde(default, borrow)]
    priority: Slot<Str<'a>>,
    #[serde(default)]
    traits: Slot<Map<String, Value>>,
    #[serde(default, borrow)]
    outcome: Slot<Str<'a>>,
}

/// Fails the fast path (the validator then says why).
struct Reject;

type Fast<T> = Result<T, Reject>;

fn ok_if(cond: bool) -> Fast<()> {
    if cond {
        Ok(())
    } else {
        Err(Reject)
    }
}

/// An id under the one id rule: `None` when absent or null, unless `required`.
fn id(slot: Slot<Str<'_>>, required: bool) -> Fast<Option<String>> {
    match slot {
        Slot::Value(s) => {
            check_id(&s.0).map_err(|_| Reject)?;
            Ok(Some(s.0.into_owned()))
        }
        _ if required => Err(Reject),
        _ => Ok(None),
    }
}

fn count(slot: Slot<u64>, min: u64, max: u64) -> Fast<Option<u64>> {
    match slot {
        Slot::Value(v) if (min..=max).contains(&v) => Ok(Some(v)),
        Slot::Value(_) => Err(Reject),
        _ => Ok(None),
    }
}

/// The event `text` holds, when it is valid; `None` sends it to [`crate::native::parse_event`].
pub fn parse_event_fast(text: &str, ctx: &Context<'_>) -> Option<Event> {
    // A derived struct also deserializes from an array, its fields by position, so
    // `["login","u1","a1"]` would pass as a login; an event must be an object.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let fields: Fields<'_> = serde_json::from_str(text).ok()?;
    build(fields, ctx).ok()
}

fn build(f: Fields<'_>, ctx: &Context<'_>) -> Fast<Event> {
    let kind = EventKind::parse(&f.kind.0).ok_or(Reject)?;
    // A field of another kind is refused even when null, as the validator does.
    let present = [
        ("feature", f.feature.present()),
        ("module", f.module.present()),
        ("count", f.count.present()),
        ("records", f.records.present()),
        ("bytes", f.bytes.present()),
        ("object", f.object.present()),
        ("nps", f.nps.present()),
        ("csat", f.csat.present()),
        ("ticket_id", f.ticket_id.present()),
        ("status", f.status.present()),
        ("priority", f.priority.present()),
        ("traits", f.traits.present()),
        ("outcome", f.outcome.present()),
    ];
    let allowed = crate::native::kind_fields(kind);
    ok_if(present.iter().all(|(name, is)| !is || allowed.contains(name)))?;

    let needs_user = matches!(kind, EventKind::Login | EventKind::FeatureUsed | EventKind::User);
    let account_id = id(f.account_id, true)?.unwrap_or_default();
    let user_id = id(f.user_id, needs_user)?.unwrap_or_default();
    let message_id = id(f.message_id, false)?.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut properties = f.properties.value().unwrap_or_default();
    let timestamp = match f.timestamp {
        Slot::Value(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(&s.0).map_err(|_| Reject)?.with_timezone(&chrono::Utc);
            if t > ctx.received_at + ctx.max_future {
                // Clamped as the validator does (see there why).
                properties.insert("uptake_client_timestamp".into(), Value::String(t.to_rfc3339()));
                ctx.received_at
            } else {
                ok_if(check_age(t, ctx.received_at, ctx.max_age).is_none())?;
                t
            }
        }
        _ => ctx.received_at,
    };

    let mut event =
        Event::new(kind, message_id, account_id, user_id, timestamp, ctx.received_at, ctx.source.to_owned());
    event.properties = properties;
    match kind {
        EventKind::Login => {}
        EventKind::FeatureUsed => {
            event.feature = id(f.feature, true)?;
            event.module = id(f.module, false)?;
            event.count = Some(count(f.count, 1, MAX_USES)?.unwrap_or(1));
        }
        EventKind::DataVolume => {
            ok_if(matches!(f.records, Slot::Value(_)) || matches!(f.bytes, Slot::Value(_)))?;
            event.records = count(f.records, 0, MAX_VOLUME)?;
            event.bytes = count(f.bytes, 0, MAX_VOLUME)?;
            event.object = id(f.object, false)?;
        }
        EventKind::Survey => {
            ok_if(matches!(f.nps, Slot::Value(_)) || matches!(f.csat, Slot::Value(_)))?;
            event.nps = count(f.nps, 0, 10)?.map(|v| v as u8);
            event.csat = count(f.csat, 1, 5)?.map(|v| v as u8);
        }
        EventKind::SupportTicket => {
            event.ticket_id = id(f.ticket_id, true)?;
            event.ticket_status = match f.status.value().as_ref().map(|s| &*s.0) {
                Some("opened") => Some(TicketStatus::Opened),
                Some("closed") => Some(TicketStatus::Closed),
                _ => return Err(Reject),
            };
            event.priority = id(f.priority, false)?;
        }
        EventKind::Account => {
            let traits = f.traits.value().ok_or(Reject)?;
            trait_outcomes(&traits).map_err(|_| Reject)?;
            event.traits = traits;
        }
        EventKind::User => event.traits = f.traits.value().unwrap_or_default(),
        EventKind::Outcome => {
            event.outcome = Some(f.outcome.value().and_then(|s| Outcome::parse(&s.0)).ok_or(Reject)?);
        }
    }
    Ok(event)
}
