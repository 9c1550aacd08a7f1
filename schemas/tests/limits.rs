//! What an event may contain, in both formats: one id rule on every id field, counts capped,
//! events no older than the configured age. Each refusal names the field and the limit.

use chrono::{DateTime, Duration, Utc};
use schemas::limits::{MAX_ID_BYTES, MAX_USES, MAX_VOLUME};
use schemas::segment::{parse_message, CallType, EventMapping};
use schemas::{native, FieldError};
use serde_json::{json, Value};

const NOW: &str = "2026-11-22T12:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn native_result(v: &Value) -> Result<schemas::event::Event, Vec<FieldError>> {
    let ctx = native::Context {
        received_at: now(),
        source: "web",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
    };
    native::parse_event(v, &ctx)
}

fn segment_result(call: Option<CallType>, v: &Value) -> Result<schemas::event::Event, Vec<FieldError>> {
    let mapping = EventMapping::default();
    let remembered = |_: &str| Some("remembered".to_owned());
    let ctx = schemas::segment::Context {
        received_at: now(),
        source: "segment",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
        mapping: &mapping,
        group_of_user: &remembered,
    };
    parse_message(call, v, &ctx)
}

/// The only error of a refused event, as `field: reason`.
fn only_error(result: Result<schemas::event::Event, Vec<FieldError>>) -> String {
    let errors = result.expect_err("must be refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    format!("{}: {}", errors[0].field, errors[0].reason)
}

/// Ids that break the rule, each with the words of its refusal.
fn bad_ids() -> Vec<(String, &'static str)> {
    vec![
        ("x".repeat(32 * 1024), "is 32768 bytes; ids are at most 256"),
        ("é".repeat(MAX_ID_BYTES / 2 + 1), "is 258 bytes; ids are at most 256"),
        ("acme\u{0}".into(), "contains the invisible character U+0000"),
        ("ac\nme".into(), "contains the invisible character U+000A"),
        ("ac\u{200B}me".into(), "contains the invisible character U+200B"),
        ("\u{202E}emca".into(), "contains the invisible character U+202E"),
        (" acme".into(), "must not start or end with whitespace"),
        ("   ".into(), "must not be empty"),
    ]
}

#[test]
fn native_every_id_field_follows_the_id_rule() {
    let base = |field: &str| -> Value {
        let mut e = match field {
            "ticket_id" | "priority" => {
                json!({"kind": "support_ticket", "account_id": "a", "ticket_id": "T-1", "status": "opened"})
            }
            "object" => json!({"kind": "data_volume", "account_id": "a", "records": 1}),
            _ => json!({"kind": "feature_used", "account_id": "a", "user_id": "u", "feature": "reports"}),
        };
        e[field] = json!("ok-value");
        e
    };
    for field in ["account_id", "user_id", "message_id", "feature", "module", "ticket_id", "priority", "object"] {
        native_result(&base(field)).unwrap_or_else(|e| panic!("{field}: {e:?}"));
        let longest = "x".repeat(MAX_ID_BYTES);
        let mut e = base(field);
        e[field] = json!(longest);
        assert!(native_result(&e).is_ok(), "{field}: {MAX_ID_BYTES} bytes are allowed");
        for (id, why) in bad_ids() {
            let mut e = base(field);
            e[field] = json!(id);
            let got = only_error(native_result(&e));
            assert!(got.starts_with(&format!("{field}: {why}")), "{field}: got {got:?}, want {why:?}");
        }
    }
}

/// Puts `id` at a dotted `path` of a message.
fn set(msg: &mut Value, path: &str, id: Value) {
    match path.split_once('.') {
        Some((outer, inner)) => {
            if !msg[outer].is_object() {
                msg[outer] = json!({});
            }
            msg[outer][inner] = id;
        }
        None => msg[path] = id,
    }
}

#[test]
fn segment_every_id_field_follows_the_id_rule() {
    // (call, the message without the id, the id's path)
    let cases: Vec<(CallType, Value, &str)> = vec![
        (CallType::Track, json!({"event": "Report Exported"}), "userId"),
        (CallType::Track, json!({"event": "Report Exported"}), "anonymousId"),
        (CallType::Track, json!({"userId": "u", "event": "Report Exported"}), "messageId"),
        (CallType::Track, json!({"userId": "u"}), "event"),
        (CallType::Track, json!({"userId": "u", "event": "Report Exported"}), "context.groupId"),
        (CallType::Track, json!({"userId": "u", "event": "Report Exported"}), "properties.account_id"),
        (CallType::Track, json!({"userId": "u", "event": "Report Exported"}), "properties.accountId"),
        (CallType::Track, json!({"userId": "u", "event": "Report Exported"}), "properties.module"),
        (CallType::Track, json!({"userId": "u", "event": "Ticket Opened"}), "properties.ticket_id"),
        (CallType::Track, json!({"userId": "u", "event": "Ticket Opened"}), "properties.ticketId"),
        (
            CallType::Track,
            json!({"userId": "u", "event": "Data Imported", "properties": {"records": 1}}),
            "properties.object",
        ),
        (CallType::Identify, json!({"userId": "u"}), "traits.account_id"),
        (CallType::Identify, json!({"userId": "u"}), "traits.accountId"),
        (CallType::Group, json!({"userId": "u"}), "groupId"),
        (CallType::Alias, json!({"userId": "u"}), "previousId"),
        (CallType::Page, json!({"userId": "u"}), "name"),
        (CallType::Page, json!({"userId": "u"}), "properties.path"),
        (CallType::Screen, json!({"userId": "u", "name": "Home"}), "category"),
    ];
    for (call, msg, path) in cases {
        let mut ok = msg.clone();
        set(&mut ok, path, json!("fine-id"));
        segment_result(Some(call), &ok).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        let mut longest = msg.clone();
        set(&mut longest, path, json!("x".repeat(MAX_ID_BYTES)));
        assert!(segment_result(Some(call), &longest).is_ok(), "{path}: {MAX_ID_BYTES} bytes are allowed");
        for (id, why) in bad_ids() {
            let mut bad = msg.clone();
            set(&mut bad, path, json!(id));
            let got = only_error(segment_result(Some(call), &bad));
            assert!(got.starts_with(&format!("{path}: {why}")), "{path}: got {got:?}, want {why:?}");
        }
    }
}

#[test]
fn a_32k_context_group_id_is_refused_with_its_path_and_size() {
    let msg = json!({"userId": "u", "event": "x", "context": {"groupId": "g".repeat(32768)}});
    assert_eq!(
        only_error(segment_result(Some(CallType::Track), &msg)),
        "context.groupId: is 32768 bytes; ids are at most 256"
    );
    // Numeric ids are stringified and then held to the same rule.
    let msg = json!({"userId": 12345, "event": "x", "context": {"groupId": 42}});
    let e = segment_result(Some(CallType::Track), &msg).unwrap();
    assert_eq!((e.user_id.as_str(), e.account_id.as_str()), ("12345", "42"));
}

#[test]
fn counts_are_capped_in_both_formats() {
    let native_volume =
        |records: Value| native_result(&json!({"kind": "data_volume", "account_id": "a", "records": records}));
    assert_eq!(native_volume(json!(MAX_VOLUME)).unwrap().records, Some(MAX_VOLUME));
    assert_eq!(only_error(native_volume(json!(MAX_VOLUME + 1))), "records: must be an integer from 0 to 1000000000000");
    assert_eq!(only_error(native_volume(json!(u64::MAX))), "records: must be an integer from 0 to 1000000000000");
    let bytes = native_result(&json!({"kind": "data_volume", "account_id": "a", "bytes": u64::MAX}));
    assert_eq!(only_error(bytes), "bytes: must be an integer from 0 to 1000000000000");
    let uses = |count: u64| {
        native_result(
            &json!({"kind": "feature_used", "account_id": "a", "user_id": "u", "feature": "f", "count": count}),
        )
    };
    assert_eq!(uses(MAX_USES).unwrap().count, Some(MAX_USES));
    assert_eq!(only_error(uses(MAX_USES + 1)), "count: must be an integer from 1 to 1000000");

    let track = |event: &str, props: Value| {
        segment_result(Some(CallType::Track), &json!({"userId": "u", "event": event, "properties": props}))
    };
    assert_eq!(
        only_error(track("Data Imported", json!({"records": u64::MAX}))),
        "properties.records: must be an integer from 0 to 1000000000000"
    );
    assert_eq!(
        only_error(track("Data Imported", json!({"bytes": 1e15}))),
        "properties.bytes: must be an integer from 0 to 1000000000000"
    );
    assert_eq!(
        only_error(track("Report Exported", json!({"count": u64::MAX}))),
        "properties.count: must be an integer from 1 to 1000000"
    );
    assert_eq!(track("Report Exported", json!({"count": 7})).unwrap().count, Some(7));
}

#[test]
fn events_older_than_the_maximum_age_are_refused_naming_timestamp() {
    let three_years = (now() - Duration::days(3 * 365 + 1)).to_rfc3339();
    let almost_two = (now() - Duration::days(729)).to_rfc3339();
    let login = |ts: &str| native_result(&json!({"kind": "login", "account_id": "a", "user_id": "u", "timestamp": ts}));
    assert!(login(&almost_two).is_ok(), "a two-year back-fill is stored");
    assert_eq!(
        only_error(login(&three_years)),
        "timestamp: is 1096 days old; events may be at most 730 days old (limits.max_age_days)"
    );

    let track = |m: Value| segment_result(Some(CallType::Track), &m);
    assert!(track(json!({"userId": "u", "event": "x", "timestamp": almost_two})).is_ok());
    assert!(only_error(track(json!({"userId": "u", "event": "x", "timestamp": three_years})))
        .starts_with("timestamp: is 1096 days old"));
    assert!(only_error(track(json!({"userId": "u", "event": "x", "originalTimestamp": three_years})))
        .starts_with("originalTimestamp: is 1096 days old"));
    // The age is judged after the clock-skew correction: a client clock three years behind,
    // with a matching sentAt, sent an event that happened just now.
    let skewed = json!({"userId": "u", "event": "x", "timestamp": three_years, "sentAt": three_years});
    assert_eq!(track(skewed).unwrap().timestamp, now());
}
