//! The native event format: what is accepted, how it is normalised, and the precise errors.

use chrono::{DateTime, Duration, Utc};
use schemas::event::{Event, EventKind, TicketStatus};
use schemas::native::{split_body, Context};
use schemas::native_fast::{parse_event_fast, split_raw};
use schemas::outcome::Outcome;
use schemas::{FieldError, SchemaError};
use serde_json::{json, Value};

fn ctx() -> Context<'static> {
    Context {
        received_at: "2026-11-22T12:00:00Z".parse().unwrap(),
        source: "web",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
    }
}

/// Every case of this file goes through both paths: the validator's answer is what the tests
/// check, and the fast path must take every valid event and produce exactly the same one, and
/// decline every invalid one (the validator then names its fields).
fn parse_event(v: &Value, ctx: &Context<'_>) -> Result<Event, Vec<FieldError>> {
    let slow = schemas::native::parse_event(v, ctx);
    let fast = parse_event_fast(&v.to_string(), ctx);
    match (&slow, fast) {
        (Ok(slow), Some(mut fast)) => {
            if v.get("message_id").is_none_or(Value::is_null) {
                // Both paths make a fresh UUID for a missing id; only those may differ.
                fast.message_id = slow.message_id.clone();
            }
            assert_eq!(&fast, slow, "fast and slow path disagree on {v}");
        }
        (Ok(_), None) => panic!("the fast path declined a valid event: {v}"),
        (Err(errors), Some(fast)) => panic!("the fast path took an invalid event {v} ({errors:?}): {fast:?}"),
        (Err(_), None) => {}
    }
    slow
}

fn errors(v: Value) -> Vec<FieldError> {
    parse_event(&v, &ctx()).expect_err("must be rejected")
}

fn fields(v: Value) -> Vec<String> {
    errors(v).into_iter().map(|e| e.field).collect()
}

#[test]
fn login_is_normalised_with_its_source_and_times() {
    let e = parse_event(
        &json!({"kind": "login", "account_id": "acme", "user_id": "u1",
                "timestamp": "2026-11-20T09:30:00+01:00", "message_id": "m-1",
                "properties": {"plan": "pro"}}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(e.kind, EventKind::Login);
    assert_eq!(e.event, "login");
    assert_eq!(e.message_id, "m-1");
    assert_eq!((e.account_id.as_str(), e.user_id.as_str(), e.source.as_str()), ("acme", "u1", "web"));
    assert_eq!(e.timestamp, "2026-11-20T08:30:00Z".parse::<DateTime<Utc>>().unwrap());
    assert_eq!(e.received_at, ctx().received_at);
    assert_eq!(e.properties["plan"], "pro");
    assert_eq!(e.partition_key(), "acme");
}

#[test]
fn every_kind_carries_its_own_measures() {
    let f = parse_event(
        &json!({"kind": "feature_used", "account_id": "a", "user_id": "u", "feature": "reports", "module": "bi", "count": 3}),
        &ctx(),
    )
    .unwrap();
    assert_eq!((f.feature.as_deref(), f.module.as_deref(), f.count), (Some("reports"), Some("bi"), Some(3)));
    let f = parse_event(&json!({"kind": "feature_used", "account_id": "a", "user_id": "u", "feature": "x"}), &ctx())
        .unwrap();
    assert_eq!(f.count, Some(1), "count defaults to one use");

    let d =
        parse_event(&json!({"kind": "data_volume", "account_id": "a", "records": 120, "object": "contacts"}), &ctx())
            .unwrap();
    assert_eq!((d.records, d.bytes, d.object.as_deref()), (Some(120), None, Some("contacts")));

    let s = parse_event(&json!({"kind": "survey", "account_id": "a", "user_id": "u", "nps": 0, "csat": 5}), &ctx())
        .unwrap();
    assert_eq!((s.nps, s.csat), (Some(0), Some(5)));

    let t = parse_event(
        &json!({"kind": "support_ticket", "account_id": "a", "ticket_id": "T-9", "status": "opened", "priority": "high"}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(
        (t.ticket_id.as_deref(), t.ticket_status, t.priority.as_deref()),
        (Some("T-9"), Some(TicketStatus::Opened), Some("high"))
    );

    let a = parse_event(&json!({"kind": "account", "account_id": "a", "traits": {"seats": 25, "plan": "pro"}}), &ctx())
        .unwrap();
    assert_eq!(a.traits["seats"], 25);
    assert_eq!(a.user_id, "", "account events need no user");
}

#[test]
fn missing_message_id_gets_a_fresh_uuid_v7() {
    let v = json!({"kind": "login", "account_id": "a", "user_id": "u"});
    let (a, b) = (parse_event(&v, &ctx()).unwrap(), parse_event(&v, &ctx()).unwrap());
    let id = uuid::Uuid::parse_str(&a.message_id).expect("a UUID");
    assert_eq!(id.get_version_num(), 7);
    assert_ne!(a.message_id, b.message_id);
    assert_eq!(a.timestamp, ctx().received_at, "no timestamp means now");
}

#[test]
fn a_timestamp_far_in_the_future_is_clamped_and_kept_for_analysts() {
    let e = parse_event(
        &json!({"kind": "login", "account_id": "a", "user_id": "u", "timestamp": "2026-11-23T12:00:00Z"}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(e.timestamp, ctx().received_at);
    assert_eq!(e.properties["uptake_client_timestamp"], "2026-11-23T12:00:00+00:00");
    let near = parse_event(
        &json!({"kind": "login", "account_id": "a", "user_id": "u", "timestamp": "2026-11-22T12:05:00Z"}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(near.timestamp, "2026-11-22T12:05:00Z".parse::<DateTime<Utc>>().unwrap(), "small skew is kept");
}

#[test]
fn each_problem_names_its_field() {
    assert_eq!(fields(json!({"account_id": "a"})), ["kind"]);
    assert_eq!(fields(json!({"kind": "logon", "account_id": "a"})), ["kind"]);
    assert_eq!(fields(json!({"kind": "login", "user_id": "u"})), ["account_id"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": "a"})), ["user_id"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": "", "user_id": "u"})), ["account_id"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": 7, "user_id": "u"})), ["account_id"]);
    assert_eq!(fields(json!({"kind": "feature_used", "account_id": "a", "user_id": "u"})), ["feature"]);
    assert_eq!(
        fields(json!({"kind": "feature_used", "account_id": "a", "user_id": "u", "feature": "f", "count": 0})),
        ["count"]
    );
    assert_eq!(fields(json!({"kind": "data_volume", "account_id": "a"})), ["records"]);
    assert_eq!(fields(json!({"kind": "data_volume", "account_id": "a", "records": -5})), ["records"]);
    assert_eq!(fields(json!({"kind": "survey", "account_id": "a", "nps": 11})), ["nps"]);
    assert_eq!(fields(json!({"kind": "survey", "account_id": "a", "csat": 0})), ["csat"]);
    assert_eq!(
        fields(json!({"kind": "support_ticket", "account_id": "a", "ticket_id": "T", "status": "lost"})),
        ["status"]
    );
    assert_eq!(fields(json!({"kind": "account", "account_id": "a"})), ["traits"]);
    assert_eq!(
        fields(json!({"kind": "login", "account_id": "a", "user_id": "u", "timestamp": "yesterday"})),
        ["timestamp"]
    );
    assert_eq!(fields(json!({"kind": "login", "account_id": "a", "user_id": "u", "feature": "x"})), ["feature"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": "a", "user_id": "u", "properties": [1]})), ["properties"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": "a".repeat(257), "user_id": "u"})), ["account_id"]);
    assert_eq!(fields(json!("login")), ["event"]);
}

#[test]
fn all_problems_of_an_event_are_reported_at_once_with_readable_reasons() {
    let errs = errors(json!({"kind": "survey", "nps": 12, "csat": 9, "colour": "red"}));
    let mut got: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
    got.sort();
    assert_eq!(got, ["account_id", "colour", "csat", "nps"]);
    let nps = errs.iter().find(|e| e.field == "nps").unwrap();
    assert_eq!(nps.reason, "must be an integer from 0 to 10");
}

#[test]
fn bodies_are_one_event_or_a_batch() {
    let (events, batch) = split_body(json!({"kind": "login"})).unwrap();
    assert_eq!((events.len(), batch), (1, false));
    let (events, batch) =
        split_body(json!({"batch": [{"kind": "login"}, {"kind": "survey"}], "writeKey": "k"})).unwrap();
    assert_eq!((events.len(), batch), (2, true));
    for bad in [json!({"batch": []}), json!({"batch": {}}), json!([1, 2]), json!({"batch": [], "kind": "login"})] {
        assert!(matches!(split_body(bad.clone()), Err(SchemaError::Invalid(_))), "{bad} must be refused");
        let raw = split_raw(bad.to_string().as_bytes()).map(|_| ()).unwrap_err();
        let Err(SchemaError::Invalid(want)) = split_body(bad.clone()) else { unreachable!() };
        assert!(matches!(raw, SchemaError::Invalid(got) if got == want), "{bad}: split_raw must say the same");
    }
}

#[test]
fn an_outcome_event_records_what_happened_on_its_timestamp() {
    let e = parse_event(
        &json!({"kind": "outcome", "account_id": "acme", "outcome": "churned", "timestamp": "2026-11-01T00:00:00Z"}),
        &ctx(),
    )
    .unwrap();
    assert_eq!((e.kind, e.outcome, e.event.as_str()), (EventKind::Outcome, Some(Outcome::Churned), "outcome"));
    assert_eq!((e.account_id.as_str(), e.user_id.as_str()), ("acme", ""), "user_id is optional");
    assert_eq!(e.timestamp.date_naive().to_string(), "2026-11-01");
    let wire = serde_json::to_value(&e).unwrap();
    assert_eq!((wire["kind"].as_str(), wire["outcome"].as_str()), (Some("outcome"), Some("churned")));
    let renewed =
        parse_event(&json!({"kind": "outcome", "account_id": "a", "user_id": "u", "outcome": "renewed"}), &ctx());
    assert_eq!(renewed.unwrap().outcome, Some(Outcome::Renewed));
}

#[test]
fn an_outcome_event_needs_an_account_and_a_known_outcome() {
    assert_eq!(fields(json!({"kind": "outcome", "outcome": "churned"})), ["account_id"]);
    for bad in [
        json!({"kind": "outcome", "account_id": "a"}),
        json!({"kind": "outcome", "account_id": "a", "outcome": "lost"}),
    ] {
        let e = errors(bad);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "outcome");
        assert!(e[0].reason.contains("\"churned\", \"renewed\" or \"contracted\""), "{}", e[0].reason);
    }
    assert_eq!(fields(json!({"kind": "outcome", "account_id": "a", "outcome": "renewed", "nps": 9})), ["nps"]);
    assert_eq!(fields(json!({"kind": "login", "account_id": "a", "user_id": "u", "outcome": "renewed"})), ["outcome"]);
}

#[test]
fn account_traits_record_outcome_dates_and_refuse_other_values() {
    let e = parse_event(
        &json!({"kind": "account", "account_id": "a", "traits": {"churned_at": "2026-10-31", "renewed_at": "2026-01-01T10:00:00Z"}}),
        &ctx(),
    )
    .unwrap();
    assert_eq!(e.traits["churned_at"], "2026-10-31");
    let e = errors(json!({"kind": "account", "account_id": "a", "traits": {"contracted_at": "Q3"}}));
    assert_eq!(e.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["traits.contracted_at"]);
}
