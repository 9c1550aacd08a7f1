//! Property tests: whatever JSON a client sends, the parsers and batch splitters answer with
//! an event or a list of field errors — they never panic (a panic would be a 500 and, in a
//! batch, would drop the valid events beside the bad one).
//!
//! Values are built from the real field names and the values they expect (kinds, call types,
//! mapped event names, timestamps at the edges of chrono's range), mixed with deep nesting,
//! huge and negative numbers, floats and arbitrary unicode, so most cases get deep into the
//! parsers instead of failing at the first check.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use schemas::segment::{CallType, EventMapping};
use schemas::{native, segment};
use serde_json::{Map, Number, Value};

const FIELDS: &[&str] = &[
    // native
    "kind",
    "account_id",
    "user_id",
    "timestamp",
    "message_id",
    "properties",
    "writeKey",
    "feature",
    "module",
    "count",
    "records",
    "bytes",
    "object",
    "nps",
    "csat",
    "ticket_id",
    "status",
    "priority",
    "traits",
    "batch",
    // Segment
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "event",
    "context",
    "groupId",
    "previousId",
    "integrations",
    "sentAt",
    "originalTimestamp",
    "name",
    "category",
    "path",
    "accountId",
    "ticketId",
];

fn leaf() -> impl Strategy<Value = Value> {
    let known = proptest::sample::select(
        &[
            "login",
            "feature_used",
            "data_volume",
            "survey",
            "support_ticket",
            "account",
            "user",
            "opened",
            "closed",
            "track",
            "identify",
            "group",
            "page",
            "screen",
            "alias",
            "Signed In",
            "Data Imported",
            "Survey Submitted",
            "Ticket Opened",
            "Ticket Closed",
            "",
            " ",
            " acme",
            "\u{0}",
            "\u{202E}x",
            "x\u{200B}",
            "東京",
        ][..],
    );
    let times = proptest::sample::select(
        &[
            "2026-11-22T12:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2015-12-12T19:11:01.249Z",
            "2026-11-22T12:00:00+23:59",
            "1970-01-01T00:00:00-23:59",
            "2026-02-30T00:00:00Z",
        ][..],
    );
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => prop_oneof![Just(u64::MAX), Just(0u64), Just(1_000_000_000_000), Just(1_000_001)].prop_map(Value::from),
        1 => any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        1 => prop_oneof![Just(1e300), Just(-1e300), Just(-0.0), Just(0.5)].prop_map(|f: f64| Value::from(f)),
        2 => ".*".prop_map(Value::String),
        2 => "\\PC{0,300}".prop_map(Value::String),
        4 => known.prop_map(|s: &str| Value::String(s.to_owned())),
        2 => times.prop_map(|s: &str| Value::String(s.to_owned())),
        1 => (257usize..40_000).prop_map(|n| Value::String("x".repeat(n))),
    ]
}

/// Arbitrary JSON whose objects are keyed mostly by the real field names, nested up to 8 deep.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(8, 64, 8, |inner| {
        let key = prop_oneof![4 => proptest::sample::select(FIELDS).prop_map(str::to_owned), 1 => ".{0,12}"];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key, inner), 0..12)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const KINDS: &[&str] = &["login", "feature_used", "data_volume", "survey", "support_ticket", "account", "user"];
const CALLS: &[&str] = &["track", "identify", "group", "page", "screen", "alias"];

/// An event-shaped object, which is what the parsers get almost always: a valid `kind` and
/// `type` (so both parsers go past their first check) and the real fields, mostly with leaf
/// values (ids, counts, timestamps), sometimes nested ones.
fn event_object() -> impl Strategy<Value = Value> {
    let field = (proptest::sample::select(FIELDS), prop_oneof![3 => leaf(), 1 => json_value()]);
    (proptest::sample::select(KINDS), proptest::sample::select(CALLS), proptest::collection::vec(field, 0..16))
        .prop_map(|(kind, call, fields)| {
            let mut obj = Map::new();
            obj.insert("kind".into(), Value::from(kind));
            obj.insert("type".into(), Value::from(call));
            for (k, v) in fields {
                obj.insert(k.to_owned(), v);
            }
            Value::Object(obj)
        })
}

fn received() -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse().unwrap()
}

proptest! {
    // 256 cases each keeps the file within seconds in a debug build on 2 shared cores.
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn native_parser_never_panics(value in prop_oneof![json_value(), event_object()]) {
        let ctx = native::Context { received_at: received(), source: "prop", max_future: Duration::minutes(10), max_age: Duration::days(730) };
        let slow = native::parse_event(&value, &ctx);
        // The fast path takes only what the validator accepts, and makes the same event of it.
        if let Some(mut fast) = schemas::native_fast::parse_event_fast(&value.to_string(), &ctx) {
            let slow = slow.expect("the fast path took an event the validator refuses");
            fast.message_id.clone_from(&slow.message_id);
            prop_assert_eq!(fast, slow);
        }
        if let Ok((events, _)) = native::split_body(value) {
            for e in &events {
                let _ = native::parse_event(e, &ctx);
            }
        }
    }

    #[test]
    fn segment_parser_never_panics(value in prop_oneof![json_value(), event_object()], call in 0usize..7) {
        let mapping = EventMapping::default();
        let groups = |user: &str| user.contains('a').then(|| "remembered".to_owned());
        let ctx = segment::Context {
            received_at: received(),
            source: "prop",
            max_future: Duration::minutes(10),
            max_age: Duration::days(730),
            mapping: &mapping,
            group_of_user: &groups,
        };
        let calls = [None, Some(CallType::Track), Some(CallType::Identify), Some(CallType::Group), Some(CallType::Page), Some(CallType::Screen), Some(CallType::Alias)];
        let _ = segment::parse_message(calls[call], &value, &ctx);
        if let Ok(messages) = segment::split_batch(value) {
            for m in &messages {
                let _ = segment::parse_message(None, m, &ctx);
            }
        }
    }

    #[test]
    fn segment_batches_never_panic(messages in proptest::collection::vec(event_object(), 1..4), shared in event_object()) {
        let mut body = shared.as_object().cloned().unwrap_or_default();
        body.insert("batch".into(), Value::Array(messages));
        let mapping = EventMapping::default();
        let ctx = segment::Context {
            received_at: received(),
            source: "prop",
            max_future: Duration::minutes(10),
            max_age: Duration::days(730),
            mapping: &mapping,
            group_of_user: &|_| None,
        };
        if let Ok(messages) = segment::split_batch(Value::Object(body)) {
            for m in &messages {
                let _ = segment::parse_message(None, m, &ctx);
            }
        }
    }
}

/// Deeper than any generated value: a client can nest as deep as serde_json parses (128).
#[test]
fn deeply_nested_bodies_do_not_panic() {
    let mut deep = Value::from(1);
    for i in 0..120 {
        deep = if i % 2 == 0 {
            serde_json::json!({"properties": deep, "groupId": 1e300})
        } else {
            serde_json::json!([deep, "\u{202E}"])
        };
    }
    let ctx = native::Context {
        received_at: received(),
        source: "prop",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
    };
    let mut event = serde_json::json!({"kind": "login", "account_id": "a", "user_id": "u"});
    event["properties"] = serde_json::json!({"deep": deep});
    let _ = native::parse_event(&event, &ctx);
}
