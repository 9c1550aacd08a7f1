use chrono::TimeZone;
use schemas::event::Event;
use serde_json::json;
use warehouse::rows::EventRow;

use super::*;

/// The reference: the row the owned path (`Event` → `EventRow`) makes, in RowBinary.
fn owned_row(e: &Event, origin: Origin<'_>) -> Vec<u8> {
    let r = EventRow::new(e.clone(), origin.topic, origin.partition, origin.offset);
    let mut out = Vec::new();
    for s in [&r.message_id, &r.account_id, &r.user_id, &r.kind, &r.event, &r.feature, &r.module] {
        put_str(&mut out, s);
    }
    for n in [r.uses, r.records, r.bytes] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    put_str(&mut out, &r.object);
    put_nullable_u8(&mut out, r.nps);
    put_nullable_u8(&mut out, r.csat);
    for s in [&r.ticket_id, &r.ticket_status, &r.priority, &r.outcome] {
        put_str(&mut out, s);
    }
    out.extend_from_slice(&r.timestamp.to_le_bytes());
    out.extend_from_slice(&r.received_at.to_le_bytes());
    for s in [&r.source, &r.traits, &r.properties, &r.kafka_topic] {
        put_str(&mut out, s);
    }
    out.extend_from_slice(&r.kafka_partition.to_le_bytes());
    out.extend_from_slice(&r.kafka_offset.to_le_bytes());
    out
}

fn borrowed_row(payload: &[u8], origin: Origin<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    EventRecord::parse(Some(payload)).unwrap().write_row(origin, &mut out);
    out
}

fn events() -> Vec<Event> {
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let base = |kind| {
        Event::new(
            kind,
            "m-1".into(),
            "acme".into(),
            "u1".into(),
            at("2026-11-24T02:22:55.123456Z"),
            at("2026-11-24T02:23:00Z"),
            "web".into(),
        )
    };
    let mut feature = base(EventKind::FeatureUsed);
    feature.feature = Some("reports \"pro\" ✓\n".into());
    feature.module = Some("analytics".into());
    feature.count = Some(3);
    feature.properties =
        json!({"plan": "pro", "client": "web", "n": [1, 2.5, {"x": null}]}).as_object().unwrap().clone();
    let mut data = base(EventKind::DataVolume);
    data.records = Some(u64::MAX);
    data.bytes = Some(4096);
    data.object = Some("contacts".into());
    let mut survey = base(EventKind::Survey);
    survey.nps = Some(9);
    survey.csat = Some(0);
    let mut ticket = base(EventKind::SupportTicket);
    ticket.ticket_id = Some("T-1".into());
    ticket.ticket_status = Some(TicketStatus::Closed);
    ticket.priority = Some("high".into());
    let mut account = base(EventKind::Account);
    account.traits =
        json!({"seats": 40, "renewal_date": "2027-01-01", "csm": "Zoë \\ Ann"}).as_object().unwrap().clone();
    account.account_id = "a".repeat(300); // a length that takes two LEB128 bytes
    let mut outcome = base(EventKind::Outcome);
    outcome.outcome = Some(Outcome::Churned);
    let mut old = base(EventKind::Login);
    old.timestamp = Utc.with_ymd_and_hms(1969, 12, 31, 23, 0, 0).unwrap(); // clamped to 0
    vec![base(EventKind::Login), feature, data, survey, ticket, account, outcome, old, base(EventKind::User)]
}

#[test]
fn the_borrowed_row_is_byte_for_byte_the_owned_one() {
    let origin = Origin { topic: "usage-events", partition: 3, offset: 1 << 40 };
    for e in events() {
        let payload = serde_json::to_vec(&e).unwrap();
        assert_eq!(borrowed_row(&payload, origin), owned_row(&e, origin), "{}", String::from_utf8_lossy(&payload));
    }
}

#[test]
fn objects_with_whitespace_are_stored_compact_and_empty_ones_as_nothing() {
    let origin = Origin { topic: "t", partition: 0, offset: 0 };
    let mut e = events().remove(0);
    e.properties = json!({"a": 1, "b": "x y"}).as_object().unwrap().clone();
    let compact = serde_json::to_string(&e).unwrap();
    let spaced = compact
        .replace(r#"{"a":1,"b":"x y"}"#, "{ \"a\" : 1,\n \"b\":\"x y\" }")
        .replace(r#""source":"web""#, r#""source":"web","traits": { }"#);
    assert_ne!(spaced, compact);
    let mut want_event = e.clone();
    want_event.traits.clear();
    assert_eq!(borrowed_row(spaced.as_bytes(), origin), owned_row(&want_event, origin));
}

#[test]
fn what_event_refuses_is_refused_with_the_same_reason() {
    let good = serde_json::to_value(&events()[1]).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut e = good.clone();
        e[k] = v;
        e.to_string()
    };
    let without = |k: &str| {
        let mut e = good.clone();
        e.as_object_mut().unwrap().remove(k);
        e.to_string()
    };
    let bad = [
        "{oops".to_owned(),
        "[]".to_owned(),
        without("message_id"),
        without("received_at"),
        with("kind", json!("teleport")),
        with("count", json!(-1)),
        with("nps", json!(300)),
        with("timestamp", json!("yesterday")),
        with("timestamp", json!("2026-02-30T00:00:00Z")),
        with("timestamp", json!(1700000000)),
        with("traits", json!(["seats"])),
        with("properties", json!(null)),
        with("ticket_status", json!("lost")),
        with("account_id", json!(7)),
    ];
    for payload in bad {
        let owned = serde_json::from_str::<Event>(&payload).expect_err(&payload).to_string();
        let borrowed = EventRecord::parse(Some(payload.as_bytes())).expect_err(&payload);
        assert!(borrowed.starts_with("not a canonical event: "), "{borrowed}");
        if payload.contains(r#""traits":["#) || payload.contains(r#""properties":null"#) {
            // A refused object is reported after it rather than at its start.
            assert!(borrowed.contains("expected a map") && owned.contains("expected a map"), "{borrowed} vs {owned}");
        } else {
            // (A JSON array is "expected struct EventRecord" rather than "struct Event".)
            assert_eq!(
                borrowed.replace("EventRecord", "Event"),
                format!("not a canonical event: {owned}"),
                "{payload}"
            );
        }
    }
    assert_eq!(EventRecord::parse(None).unwrap_err(), "record has no value");
}

#[test]
fn hand_read_times_agree_with_chrono() {
    let cases = [
        "2026-11-24T02:22:55Z",
        "2026-11-24T02:22:55.9Z",
        "2024-02-29T23:59:59.123456789Z",
        "2000-03-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "2100-02-28T12:00:00.5Z",
        "2026-11-24T02:22:55+05:30",
        "2026-11-24t02:22:55z",
        "2026-11-24T02:22:55.Z",
    ];
    for s in cases {
        let fast = utc_secs(s.as_bytes());
        let chrono = s.parse::<DateTime<Utc>>().ok().map(|t| t.timestamp());
        assert!(fast.is_none() || fast == chrono, "{s}: {fast:?} vs {chrono:?}");
        let got = serde_json::from_value::<Secs>(json!({ "t": s })).ok().map(|t| i64::from(t.t));
        assert_eq!(got, chrono, "{s}");
    }
    for day in (0..80_000).step_by(17) {
        let t = Utc.timestamp_opt(day * 86_400 + 45_296, 0).unwrap();
        let s = t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        assert_eq!(utc_secs(s.as_bytes()), Some(t.timestamp()), "{s}");
    }
}

#[derive(Deserialize)]
struct Secs {
    #[serde(deserialize_with = "datetime")]
    t: u32,
}

#[test]
fn the_columns_are_event_rows_fields() {
    use clickhouse::Row;
    assert_eq!(COLUMNS, EventRow::COLUMN_NAMES.join(","));
}
