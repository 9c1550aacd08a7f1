//! The hot path of the consumer: a Kafka record's canonical event JSON, decoded into a struct
//! that borrows its strings from the record, and written as one RowBinary row of `events`.
//!
//! Decoding into an owned [`Event`](schemas::event::Event) and then an owned
//! [`EventRow`](warehouse::rows::EventRow) cost a dozen allocations per event, a `BTreeMap` per
//! object and chrono's generic date parser (docs/BENCHMARKS.md, "Aggregator CPU profile"). Here
//! strings are borrowed (copied only when they hold JSON escapes), `traits` and `properties` are
//! kept as the JSON text they arrived as, and RFC 3339 UTC timestamps are read by hand. What is
//! accepted and refused is exactly what `Event` accepts (the tests decode both ways): a record
//! that is no canonical event is dead-lettered with serde's message, field and position.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use schemas::event::{EventKind, TicketStatus};
use schemas::outcome::Outcome;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The `events` columns [`EventRecord::write_row`] writes, in its order.
pub const COLUMNS: &str = "message_id,account_id,user_id,kind,event,feature,module,uses,records,bytes,object,nps,csat,\
ticket_id,ticket_status,priority,outcome,timestamp,received_at,source,traits,properties,kafka_topic,kafka_partition,\
kafka_offset";

/// A canonical event, borrowed from the record's payload. Field names and types are
/// [`Event`](schemas::event::Event)'s.
#[derive(Debug, Deserialize)]
pub struct EventRecord<'a> {
    #[serde(borrow)]
    pub message_id: Cow<'a, str>,
    #[serde(borrow)]
    pub account_id: Cow<'a, str>,
    #[serde(borrow)]
    pub user_id: Cow<'a, str>,
    pub kind: EventKind,
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    /// Seconds since the epoch, clamped to ClickHouse's `DateTime` range.
    #[serde(deserialize_with = "datetime")]
    pub timestamp: u32,
    #[serde(deserialize_with = "datetime")]
    pub received_at: u32,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow, default)]
    pub feature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub module: Option<Cow<'a, str>>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub records: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(borrow, default)]
    pub object: Option<Cow<'a, str>>,
    #[serde(default)]
    pub nps: Option<u8>,
    #[serde(default)]
    pub csat: Option<u8>,
    #[serde(borrow, default)]
    pub ticket_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub ticket_status: Option<TicketStatus>,
    #[serde(borrow, default)]
    pub priority: Option<Cow<'a, str>>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub traits: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "object")]
    pub properties: Option<&'a RawValue>,
}

/// Where a record came from: the `kafka_*` columns.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl<'a> EventRecord<'a> {
    /// A record's value as a canonical event, or why it is not one (the dead-letter reason).
    pub fn parse(payload: Option<&'a [u8]>) -> Result<Self, String> {
        let payload = payload.ok_or("record has no value")?;
        serde_json::from_slice(payload).map_err(|e| format!("not a canonical event: {e}"))
    }

    /// Appends the event's `events` row in RowBinary, columns as [`COLUMNS`] lists them (the
    /// order of [`EventRow`](warehouse::rows::EventRow)'s fields).
    pub fn write_row(&self, origin: Origin<'_>, out: &mut Vec<u8>) {
        put_str(out, &self.message_id);
        put_str(out, &self.account_id);
        put_str(out, &self.user_id);
        put_str(out, self.kind.as_str());
        put_str(out, &self.event);
        put_str(out, opt(&self.feature));
        put_str(out, opt(&self.module));
        out.extend_from_slice(&self.count.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.records.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.bytes.unwrap_or(0).to_le_bytes());
        put_str(out, opt(&self.object));
        put_nullable_u8(out, self.nps);
        put_nullable_u8(out, self.csat);
        put_str(out, opt(&self.ticket_id));
        put_str(out, self.ticket_status.map_or("", ticket_status));
        put_str(out, opt(&self.priority));
        put_str(out, self.outcome.map_or("", Outcome::as_str));
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.received_at.to_le_bytes());
        put_str(out, &self.source);
        put_json(out, self.traits);
        put_json(out, self.properties);
        put_str(out, origin.topic);
        out.extend_from_slice(&origin.partition.to_le_bytes());
        out.extend_from_slice(&origin.offset.to_le_bytes());
    }
}

/// An optional string column: '' when absent.
fn opt<'s>(s: &'s Option<Cow<'_, str>>) -> &'s str {
    s.as_deref().unwrap_or_default()
}

fn ticket_status(s: TicketStatus) -> &'static str {
    match s {
        TicketStatus::Opened => "opened",
        TicketStatus::Closed => "closed",
    }
}

/// RowBinary `String`: LEB128 length, then the bytes.
fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(s.as_bytes());
}

/// RowBinary `Nullable(UInt8)`: 1 for NULL, else 0 and the value.
fn put_nullable_u8(out: &mut Vec<u8>, v: Option<u8>) {
    match v {
        Some(v) => out.extend_from_slice(&[0, v]),
        None => out.push(1),
    }
}

/// A JSON object column: '' when absent or empty, else compact JSON — the text as it arrived
/// when it is already compact (ingest writes it so), re-serialised when it holds whitespace,
/// which the `visitParam*` functions of the views would trip over.
fn put_json(out: &mut Vec<u8>, raw: Option<&RawValue>) {
    let text = raw.map_or("", RawValue::get);
    if !text.bytes().any(|b| b.is_ascii_whitespace()) {
        return put_str(out, if text == "{}" { "" } else { text });
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
    if map.is_empty() {
        put_str(out, "");
    } else {
        put_str(out, &serde_json::Value::Object(map).to_string());
    }
}

/// `traits` / `properties`: a JSON object (as `Event`'s `Map` demands), kept as text.
fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    let raw = <&RawValue>::deserialize(d)?;
    if !raw.get().starts_with('{') {
        return Err(de::Error::invalid_type(Unexpected::Other(raw.get()), &"a map"));
    }
    Ok(Some(raw))
}

/// An RFC 3339 time as seconds since the epoch, clamped to `DateTime`'s range (as
/// [`warehouse::columns::to_datetime`]). `YYYY-MM-DDTHH:MM:SS[.f]Z` — how chrono writes a UTC time —
/// is read by hand; anything else goes through chrono's parser, which decides what is valid.
fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct Secs;
    impl Visitor<'_> for Secs {
        type Value = u32;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string") // chrono's words
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<u32, E> {
            let secs = match utc_secs(s.as_bytes()) {
                Some(secs) => secs,
                None => s.parse::<DateTime<Utc>>().map_err(E::custom)?.timestamp(),
            };
            Ok(secs.clamp(0, i64::from(u32::MAX)) as u32)
        }
    }
    d.deserialize_str(Secs)
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.digits]Z`; `None` for any other shape or an
/// out-of-range field (chrono then parses it, or refuses it with its own message).
fn utc_secs(s: &[u8]) -> Option<i64> {
    let (head, tail) = (s.get(..19)?, &s[19..]);
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        head[r].iter().try_fold(0i64, |n, &b| b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0')))
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !seps.iter().all(|&(i, c)| head[i] == c) {
        return None;
    }
    let fraction = match tail {
        [b'.', rest @ .., b'Z'] => rest,
        [b'Z'] => &[],
        _ => return None,
    };
    if (fraction.is_empty() && tail.len() > 1) || !fraction.iter().all(u8::is_ascii_digit) || fraction.len() > 9 {
        return None;
    }
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
