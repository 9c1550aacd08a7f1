//! The native fast path (`schemas::native_fast`) on what the validator's own cases do not
//! exercise: the raw split of a body, and JSON texts that only differ in how they are written.

use chrono::Duration;
use schemas::native::{parse_event, Context};
use schemas::native_fast::{parse_event_fast, split_raw};
use schemas::SchemaError;
use serde_json::Value;

fn ctx() -> Context<'static> {
    Context {
        received_at: "2026-11-22T12:00:00Z".parse().unwrap(),
        source: "web",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
    }
}

/// The fast path's event for `text`, checked against the validator's for the same text.
fn fast(text: &str) -> Option<schemas::event::Event> {
    let event = parse_event_fast(text, &ctx())?;
    let value: Value = serde_json::from_str(text).unwrap();
    assert_eq!(parse_event(&value, &ctx()).as_ref(), Ok(&event), "{text}");
    Some(event)
}

#[test]
fn a_batch_is_split_into_the_text_of_each_event() {
    let body = br#" { "writeKey": "k", "batch": [ {"kind":"login"} , {"kind": "survey", "nps": 3} ] } "#;
    let (events, batch) = split_raw(body).unwrap();
    assert!(batch);
    let texts: Vec<&str> = events.iter().map(|e| e.get()).collect();
    assert_eq!(texts, [r#"{"kind":"login"}"#, r#"{"kind": "survey", "nps": 3}"#]);
    let (events, batch) = split_raw(br#"{"kind":"login","account_id":"a"}"#).unwrap();
    assert_eq!((events.len(), batch, events[0].get()), (1, false, r#"{"kind":"login","account_id":"a"}"#));
}

#[test]
fn a_duplicate_batch_is_read_as_the_validator_reads_it_the_last_one_wins() {
    for body in [
        r#"{"batch": [{"kind":"login"}], "batch": 5}"#,
        r#"{"batch": 5, "batch": [{"kind":"login"}], "x": {"batch": 1}}"#,
    ] {
        let want = schemas::native::split_body(serde_json::from_str(body).unwrap()).map(|(e, b)| (e.len(), b));
        let got = split_raw(body.as_bytes()).map(|(e, b)| (e.len(), b));
        match (want, got) {
            (Err(SchemaError::Invalid(want)), Err(SchemaError::Invalid(got))) => assert_eq!(want, got, "{body}"),
            (want, got) => panic!("{body}: {want:?} vs {got:?}"),
        }
    }
    let (events, _) = split_raw(br#"{"batch": 1, "batch": [{"kind":"login"}, 7], "writeKey": "k"}"#).unwrap();
    assert_eq!(events.iter().map(|e| e.get()).collect::<Vec<_>>(), [r#"{"kind":"login"}"#, "7"]);
}

#[test]
fn a_body_that_is_not_json_is_a_json_error_and_other_shapes_name_the_body() {
    for not_json in [&b"{\"batch\": [1,"[..], b"nope", b"{} {}", b"\xff"] {
        assert!(matches!(split_raw(not_json), Err(SchemaError::Json(_))), "{not_json:?}");
    }
    for shape in [&b"[1, 2]"[..], b"\"login\"", b"null"] {
        let Err(SchemaError::Invalid(errors)) = split_raw(shape) else { panic!("{shape:?} must be refused") };
        assert_eq!(errors[0].field, "body");
    }
}

#[test]
fn escaped_strings_and_whitespace_take_the_fast_path_with_the_same_event() {
    let e =
        fast(r#" { "kind" : "login", "message_id": "m", "account_id": "ac\u006de", "user_id": "Z\u00fcrich \"1\"" } "#)
            .unwrap();
    assert_eq!((e.account_id.as_str(), e.user_id.as_str()), ("acme", "Zürich \"1\""));
    let e = fast(r#"{"kind":"feature_used","message_id":"m","account_id":"a","user_id":"u","feature":"f","properties":{"n":1.5,"x":[null]}}"#)
        .unwrap();
    assert_eq!(e.properties["n"], 1.5);
}

#[test]
fn what_the_fast_path_declines_the_validator_decides() {
    for text in [
        // Duplicate keys: the validator's last-one-wins, not the fast path's business.
        r#"{"kind":"login","account_id":"a","user_id":"u","user_id":"v"}"#,
        // A field of another kind, even null, is refused by the validator.
        r#"{"kind":"login","account_id":"a","user_id":"u","nps":null}"#,
        r#"{"kind":"login","account_id":"a","user_id":"u","colour":"red"}"#,
        r#"{"kind":"feature_used","account_id":"a","user_id":"u","feature":"f","count":2.0}"#,
        r#"{"kind":"login","account_id":" a","user_id":"u"}"#,
        r#"{"kind":"login","account_id":"a","user_id":"u","timestamp":"yesterday"}"#,
        r#"[{"kind":"login"}]"#,
    ] {
        assert!(parse_event_fast(text, &ctx()).is_none(), "{text}");
    }
    // The validator takes duplicates (last wins); the fast path leaves them to it.
    let dup: Value = serde_json::from_str(r#"{"kind":"login","account_id":"a","user_id":"u","user_id":"v"}"#).unwrap();
    assert_eq!(parse_event(&dup, &ctx()).unwrap().user_id, "v");
}

#[test]
fn null_common_fields_are_absent_on_both_paths() {
    let e = fast(r#"{"kind":"login","account_id":"a","user_id":"u","timestamp":null,"properties":null,"writeKey":null,"message_id":"m"}"#)
        .unwrap();
    assert_eq!((e.timestamp, e.properties.len()), (ctx().received_at, 0));
}

#[test]
fn an_array_holding_an_events_fields_by_position_is_not_an_event() {
    // A derived struct reads an array as its fields in order; proptest found the fast path
    // taking `["login","login","0"]` as a login the validator refuses.
    for text in [r#"["login","login","0"]"#, r#" ["login","u1","a1"]"#] {
        assert_eq!(parse_event_fast(text, &ctx()), None, "{text}");
        let value: Value = serde_json::from_str(text).unwrap();
        let errors = parse_event(&value, &ctx()).unwrap_err();
        assert_eq!(errors[0].field, "event", "{text}");
    }
    // The same inside a batch: the event's text is split out raw and still declined.
    let (events, batched) = split_raw(br#"{"batch":[["login","u1","a1"]]}"#).unwrap();
    assert!(batched);
    assert_eq!(parse_event_fast(events[0].get(), &ctx()), None);
}
