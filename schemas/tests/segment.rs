//! The Segment Tracking API mapping, on the example payloads of Segment's spec documentation.

use chrono::{DateTime, Duration, Utc};
use schemas::event::{EventKind, TicketStatus};
use schemas::outcome::Outcome;
use schemas::segment::{parse_message, split_batch, CallType, Context, EventMapping};
use serde_json::{json, Value};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn no_groups(_: &str) -> Option<String> {
    None
}

fn with<R>(received: &str, groups: &(dyn Fn(&str) -> Option<String> + Sync), f: impl FnOnce(&Context<'_>) -> R) -> R {
    let mapping = EventMapping::default();
    let ctx = Context {
        received_at: t(received),
        source: "segment",
        max_future: Duration::minutes(10),
        max_age: Duration::days(730),
        mapping: &mapping,
        group_of_user: groups,
    };
    f(&ctx)
}

/// Segment's documented track example (spec/track).
fn course_clicked() -> Value {
    json!({
        "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
        "context": {"library": {"name": "analytics.js", "version": "2.11.1"}, "ip": "108.0.78.21", "groupId": "initech"},
        "event": "Course Clicked",
        "integrations": {},
        "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
        "properties": {"title": "Intro to Analytics"},
        "receivedAt": "2015-12-12T19:11:01.266Z",
        "sentAt": "2015-12-12T19:11:01.169Z",
        "timestamp": "2015-12-12T19:11:01.249Z",
        "type": "track",
        "userId": "AiUGstSDIg",
        "originalTimestamp": "2015-12-12T19:11:01.152Z"
    })
}

#[test]
fn the_documented_track_example_is_feature_use_with_skew_corrected_time() {
    let e =
        with("2015-12-12T19:11:01.300Z", &no_groups, |c| parse_message(Some(CallType::Track), &course_clicked(), c))
            .unwrap();
    assert_eq!(e.kind, EventKind::FeatureUsed);
    assert_eq!((e.event.as_str(), e.feature.as_deref(), e.count), ("Course Clicked", Some("Course Clicked"), Some(1)));
    assert_eq!((e.user_id.as_str(), e.account_id.as_str()), ("AiUGstSDIg", "initech"));
    assert_eq!(e.message_id, "ajs-f8ca1e4de5024d9430b3928bd8ac6b96");
    // received 01.300 − (sentAt 01.169 − timestamp 01.249) = 01.380
    assert_eq!(e.timestamp, t("2015-12-12T19:11:01.380Z"));
    assert_eq!(e.properties["title"], "Intro to Analytics");
    assert_eq!(e.properties["context"]["ip"], "108.0.78.21", "context kept for analysts");
    assert_eq!(e.source, "segment");
}

#[test]
fn the_documented_identify_group_page_screen_and_alias_examples_are_accepted() {
    let common = json!({"anonymousId": "507f191e810c19729de860ea", "channel": "browser", "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
        "sentAt": "2015-02-23T22:28:55.111Z", "timestamp": "2015-02-23T22:28:55.111Z", "userId": "97980cfea0067", "version": "1.1"});
    let msg = |extra: Value| {
        let mut m = common.clone();
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        m
    };
    let groups = |u: &str| (u == "97980cfea0067").then(|| "initech-remembered".to_owned());
    with("2015-02-23T22:28:55.387Z", &groups, |c| {
        let identify = msg(
            json!({"type": "identify", "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium", "logins": 5}}),
        );
        let e = parse_message(None, &identify, c).unwrap();
        assert_eq!((e.kind, e.user_id.as_str()), (EventKind::User, "97980cfea0067"));
        assert_eq!(e.traits["plan"], "premium");
        assert_eq!(e.account_id, "initech-remembered", "the user's last group call");
        assert_eq!(e.timestamp, t("2015-02-23T22:28:55.387Z"), "sentAt == timestamp: no skew, received time");

        let group = msg(json!({"type": "group", "groupId": "0e8c78ea9d97a7b8185e8632",
            "traits": {"name": "Initech", "industry": "Technology", "employees": 329, "plan": "enterprise", "total billed": 830}}));
        let e = parse_message(None, &group, c).unwrap();
        assert_eq!((e.kind, e.account_id.as_str()), (EventKind::Account, "0e8c78ea9d97a7b8185e8632"));
        assert_eq!(e.traits["employees"], 329);

        let page = msg(
            json!({"type": "page", "name": "Home", "properties": {"title": "Welcome | Initech", "url": "https://initech.com"}}),
        );
        let e = parse_message(None, &page, c).unwrap();
        assert_eq!((e.kind, e.feature.as_deref()), (EventKind::FeatureUsed, Some("page:Home")));
        assert_eq!(e.properties["url"], "https://initech.com");

        let screen = msg(json!({"type": "screen", "name": "Home", "properties": {"Feed Type": "private"}}));
        assert_eq!(parse_message(Some(CallType::Screen), &screen, c).unwrap().feature.as_deref(), Some("screen:Home"));

        let alias = msg(json!({"type": "alias", "previousId": "39239-239239-239239-23923", "userId": "507f191e81"}));
        let e = parse_message(None, &alias, c).unwrap();
        assert_eq!((e.kind, e.user_id.as_str()), (EventKind::User, "507f191e81"));
        assert_eq!(e.properties["alias_previous_id"], "39239-239239-239239-23923");
    });
}

#[test]
fn the_documented_batch_example_shares_its_context_and_sent_at() {
    let body = json!({
        "batch": [
            {"type": "identify", "userId": "019mr8mf4r", "traits": {"email": "jake@yahoo.com", "name": "Jake Peterson", "age": 26}, "timestamp": "2012-12-02T00:30:12.984Z"},
            {"type": "track", "userId": "019mr8mf4r", "event": "Song Played", "properties": {"name": "Fallin for You", "artist": "Dierks Bentley"}, "timestamp": "2012-12-02T00:30:08.276Z"},
            {"type": "track", "userId": "971mj8mk7p", "event": "Song Played", "context": {"device": {"type": "tablet"}, "groupId": "acme"}, "timestamp": "2012-12-02T00:30:08.276Z"}
        ],
        "context": {"device": {"type": "phone", "name": "Apple iPhone 6"}, "groupId": "globex"},
        "sentAt": "2012-12-02T00:30:13.000Z"
    });
    let messages = split_batch(body).unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["context"]["device"]["type"], "phone");
    assert_eq!(messages[2]["context"]["device"]["type"], "tablet", "the message's own context keys win");
    assert_eq!(messages[1]["sentAt"], "2012-12-02T00:30:13.000Z");
    let events: Vec<_> = with("2012-12-02T00:30:14.000Z", &no_groups, |c| {
        messages.iter().map(|m| parse_message(None, m, c).unwrap()).collect()
    });
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [EventKind::User, EventKind::FeatureUsed, EventKind::FeatureUsed]
    );
    assert_eq!(events[1].account_id, "globex", "batch context.groupId");
    assert_eq!(events[2].account_id, "acme");
    // received 14.000 − (sent 13.000 − 08.276) = 09.276
    assert_eq!(events[1].timestamp, t("2012-12-02T00:30:09.276Z"));
    assert!(split_batch(json!({"batch": []})).is_err());
    assert!(split_batch(json!({"context": {}})).is_err());
}

#[test]
fn attribution_follows_the_chain_in_order() {
    let remembered = |_: &str| Some("from-group-call".to_owned());
    let base = json!({"userId": "u1", "event": "Report Exported"});
    let account = |m: Value, g: &(dyn Fn(&str) -> Option<String> + Sync)| {
        with("2026-11-22T12:00:00Z", g, |c| parse_message(Some(CallType::Track), &m, c).unwrap().account_id)
    };
    let mut m = base.clone();
    m["context"] = json!({"groupId": "ctx"});
    m["properties"] = json!({"account_id": "prop"});
    assert_eq!(account(m, &remembered), "ctx");
    let mut m = base.clone();
    m["properties"] = json!({"account_id": "prop"});
    assert_eq!(account(m, &remembered), "prop");
    let mut m = base.clone();
    m["properties"] = json!({"accountId": 42});
    assert_eq!(account(m, &remembered), "42");
    assert_eq!(account(base.clone(), &remembered), "from-group-call");
    assert_eq!(account(base, &no_groups), "", "unattributed, but kept");
}

#[test]
fn mapped_event_names_become_their_kinds() {
    let track = |event: &str, props: Value| {
        with("2026-11-22T12:00:00Z", &no_groups, |c| {
            parse_message(Some(CallType::Track), &json!({"userId": "u", "event": event, "properties": props}), c)
        })
    };
    assert_eq!(track("signed in", json!({})).unwrap().kind, EventKind::Login, "case-insensitive");
    let d = track("Data Imported", json!({"records": 250, "bytes": 1024, "object": "contacts"})).unwrap();
    assert_eq!(
        (d.kind, d.records, d.bytes, d.object.as_deref()),
        (EventKind::DataVolume, Some(250), Some(1024), Some("contacts"))
    );
    let s = track("Survey Submitted", json!({"nps": 3})).unwrap();
    assert_eq!((s.kind, s.nps, s.csat), (EventKind::Survey, Some(3), None));
    let k = track("Ticket Closed", json!({"ticketId": "T-7", "priority": "low"})).unwrap();
    assert_eq!(
        (k.kind, k.ticket_status, k.ticket_id.as_deref()),
        (EventKind::SupportTicket, Some(TicketStatus::Closed), Some("T-7"))
    );
    let f = track("Dashboard Shared", json!({"module": "bi", "count": 3})).unwrap();
    assert_eq!(
        (f.kind, f.feature.as_deref(), f.module.as_deref(), f.count),
        (EventKind::FeatureUsed, Some("Dashboard Shared"), Some("bi"), Some(3))
    );
}

#[test]
fn a_future_timestamp_is_clamped_and_kept() {
    let m = json!({"userId": "u", "event": "x", "timestamp": "2026-11-23T12:00:00Z"});
    let e = with("2026-11-22T12:00:00Z", &no_groups, |c| parse_message(Some(CallType::Track), &m, c)).unwrap();
    assert_eq!(e.timestamp, t("2026-11-22T12:00:00Z"));
    assert_eq!(e.properties["uptake_client_timestamp"], "2026-11-23T12:00:00+00:00");
}

#[test]
fn every_problem_is_named_by_its_field() {
    let fields = |call: Option<CallType>, m: Value| -> Vec<String> {
        let mut f: Vec<String> = with("2026-11-22T12:00:00Z", &no_groups, |c| parse_message(call, &m, c))
            .expect_err("must be rejected")
            .into_iter()
            .map(|e| e.field)
            .collect();
        f.sort();
        f
    };
    assert_eq!(fields(None, json!({"userId": "u", "type": "click"})), ["type"]);
    assert_eq!(fields(Some(CallType::Track), json!({"event": "x"})), ["userId"]);
    assert_eq!(fields(Some(CallType::Track), json!({"userId": "u"})), ["event"]);
    assert_eq!(
        fields(Some(CallType::Track), json!({"userId": "u", "event": "x", "timestamp": "noon", "properties": []})),
        ["properties", "timestamp"]
    );
    assert_eq!(fields(Some(CallType::Group), json!({"userId": "u"})), ["groupId"]);
    assert_eq!(fields(Some(CallType::Alias), json!({"anonymousId": "a"})), ["previousId", "userId"]);
    assert_eq!(
        fields(Some(CallType::Track), json!({"userId": "u", "event": "Survey Submitted", "properties": {"nps": 11}})),
        ["properties.nps"]
    );
    assert_eq!(
        fields(Some(CallType::Track), json!({"userId": "u", "event": "Data Imported", "properties": {}})),
        ["properties.records"]
    );
    assert_eq!(
        fields(Some(CallType::Track), json!({"userId": "u", "event": "Ticket Opened"})),
        ["properties.ticket_id"]
    );
    assert_eq!(fields(Some(CallType::Track), json!({"userId": {"id": 1}, "event": "x"})), ["userId"]);
}

#[test]
fn outcome_tracks_record_churn_renewal_and_contraction_for_their_account() {
    let track = |name: &str, extra: Value| {
        let mut msg = json!({"type": "track", "userId": "u1", "event": name, "timestamp": "2026-05-10T08:00:00Z"});
        msg.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        with("2026-05-10T08:00:01Z", &|_: &str| Some("remembered".to_owned()), |c| parse_message(None, &msg, c))
    };
    let churn = track("Account Churned", json!({"context": {"groupId": "acme"}})).unwrap();
    assert_eq!(
        (churn.kind, churn.outcome, churn.account_id.as_str()),
        (EventKind::Outcome, Some(Outcome::Churned), "acme")
    );
    assert_eq!((churn.event.as_str(), churn.feature.as_deref()), ("Account Churned", None));
    let renew = track("subscription renewed", json!({"properties": {"account_id": "globex"}})).unwrap();
    assert_eq!((renew.outcome, renew.account_id.as_str()), (Some(Outcome::Renewed), "globex"), "case-insensitive");
    let down = track("Subscription Downgraded", json!({})).unwrap();
    assert_eq!((down.outcome, down.account_id.as_str()), (Some(Outcome::Contracted), "remembered"), "the user's group");
    for name in ["Subscription Cancelled", "Subscription Canceled", "Customer Churned"] {
        assert_eq!(
            track(name, json!({"context": {"groupId": "a"}})).unwrap().outcome,
            Some(Outcome::Churned),
            "{name}"
        );
    }
}

#[test]
fn an_outcome_track_without_an_account_is_refused() {
    let msg = json!({"type": "track", "userId": "u1", "event": "Account Churned"});
    let errors = with("2026-05-10T08:00:01Z", &no_groups, |c| parse_message(None, &msg, c)).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "context.groupId");
    assert!(errors[0].reason.contains("needs an account"), "{}", errors[0].reason);
}

#[test]
fn group_traits_record_outcome_dates() {
    let group = |traits: Value| {
        let msg = json!({"type": "group", "userId": "u1", "groupId": "acme", "traits": traits});
        with("2026-05-10T08:00:01Z", &no_groups, |c| parse_message(None, &msg, c))
    };
    let e = group(json!({"name": "Acme", "churned_at": "2026-05-01"})).unwrap();
    assert_eq!((e.kind, e.traits["churned_at"].as_str()), (EventKind::Account, Some("2026-05-01")));
    let errors = group(json!({"renewed_at": "soon"})).unwrap_err();
    assert_eq!(errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["traits.renewed_at"]);
}
