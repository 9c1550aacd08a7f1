//! The ingest API against the real broker: what is accepted lands on the topic exactly as
//! normalised; what is refused says why and writes nothing to the events topic.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::io::Write;
use std::time::Duration;

use flate2::write::ZlibEncoder;
use ingest::RawIngestConfig;
use schemas::event::{Event, EventKind};
use serde_json::{json, Value};
use testkit::ingest::RunningIngest;
use testkit::Stack;

const KEY: &str = "api-test-key-0123456789abcdef01234";

/// ingest on port 0 against fresh topics; stops when dropped.
async fn start(stack: &Stack, tweak: impl FnOnce(&mut RawIngestConfig)) -> RunningIngest {
    testkit::ingest::start(stack, KEY, "api-test", tweak).await
}

fn post(url: &str, path: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().post(format!("{url}{path}")).basic_auth(KEY, Some(""))
}

fn events_of(records: Vec<(String, Value)>) -> Vec<(String, Event)> {
    let mut out: Vec<(String, Event)> =
        records.into_iter().map(|(k, v)| (k, serde_json::from_value(v).expect("canonical event"))).collect();
    out.sort_by(|a, b| a.1.message_id.cmp(&b.1.message_id));
    out
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn every_native_kind_round_trips_through_the_topic() {
    let stack = Stack::from_env("ingest_kinds");
    let ingest = start(&stack, |_| {}).await;
    let ts = "2026-11-20T10:00:00Z";
    let batch = json!({"batch": [
        {"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "m1", "timestamp": ts},
        {"kind": "feature_used", "account_id": "acme", "user_id": "u1", "message_id": "m2", "timestamp": ts,
         "feature": "reports", "module": "bi", "count": 3, "properties": {"plan": "pro"}},
        {"kind": "data_volume", "account_id": "acme", "message_id": "m3", "timestamp": ts, "records": 120, "bytes": 4096, "object": "contacts"},
        {"kind": "survey", "account_id": "globex", "user_id": "g1", "message_id": "m4", "timestamp": ts, "nps": 9, "csat": 4},
        {"kind": "support_ticket", "account_id": "globex", "message_id": "m5", "timestamp": ts, "ticket_id": "T-1", "status": "opened", "priority": "high"},
        {"kind": "account", "account_id": "globex", "message_id": "m6", "timestamp": ts, "traits": {"seats": 25, "csm": "dana"}},
        {"kind": "user", "account_id": "globex", "user_id": "g1", "message_id": "m7", "timestamp": ts, "traits": {"role": "admin"}},
        {"kind": "outcome", "account_id": "globex", "message_id": "m7x", "timestamp": ts, "outcome": "renewed"}
    ]});
    let r = post(&ingest.url, "/v1/events").json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true, "accepted": 8, "rejected": []}));
    // A single event with the key in the body.
    let single =
        json!({"writeKey": KEY, "kind": "login", "account_id": "initech", "user_id": "i1", "message_id": "m8"});
    let r = reqwest::Client::new().post(format!("{}/v1/events", ingest.url)).json(&single).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let events = events_of(stack.read_topic(&ingest.events_topic, Duration::from_secs(6)).await);
    let ids: Vec<&str> = events.iter().map(|(_, e)| e.message_id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m7x", "m8"]);
    let by_id = |id: &str| events.iter().find(|(_, e)| e.message_id == id).unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds, EventKind::ALL.iter().copied().chain([EventKind::Login]).collect::<Vec<_>>());
    for (key, e) in &events {
        assert_eq!(key, &e.account_id, "key = account id");
        assert_eq!(e.source, "api-test");
    }
    let (_, f) = by_id("m2");
    assert_eq!((f.feature.as_deref(), f.module.as_deref(), f.count), (Some("reports"), Some("bi"), Some(3)));
    assert_eq!(f.properties["plan"], "pro");
    assert_eq!(f.timestamp.to_rfc3339(), "2026-11-20T10:00:00+00:00");
    let (_, d) = by_id("m3");
    assert_eq!((d.records, d.bytes, d.object.as_deref()), (Some(120), Some(4096), Some("contacts")));
    let (_, s) = by_id("m4");
    assert_eq!((s.nps, s.csat), (Some(9), Some(4)));
    let (_, t) = by_id("m5");
    assert_eq!((t.ticket_id.as_deref(), t.priority.as_deref()), (Some("T-1"), Some("high")));
    let (_, a) = by_id("m6");
    assert_eq!(a.traits["seats"], 25);
    assert_eq!(by_id("m8").1.account_id, "initech");
    assert_eq!(by_id("m7x").1.outcome, Some(schemas::outcome::Outcome::Renewed));
    assert!(stack.read_topic(&ingest.dlq_topic, Duration::from_secs(2)).await.is_empty());
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_partly_invalid_batch_writes_the_valid_events_and_dead_letters_the_rest() {
    let stack = Stack::from_env("ingest_partial");
    let ingest = start(&stack, |_| {}).await;
    let batch = json!({"batch": [
        {"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "ok-1"},
        {"kind": "survey", "account_id": "acme", "user_id": "u1", "message_id": "bad-1", "nps": 12},
        {"kind": "login", "account_id": "acme", "user_id": "u2", "message_id": "ok-2"},
        // An event's fields by position: the fast path once read this as a login.
        ["login", "acme", "u3"]
    ]});
    let r = post(&ingest.url, "/v1/events").json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "accepted": 2,
               "rejected": [{"index": 1, "field": "nps", "reason": "must be an integer from 0 to 10"},
                            {"index": 3, "field": "event", "reason": "must be a JSON object"}]})
    );
    let events = events_of(stack.read_topic(&ingest.events_topic, Duration::from_secs(5)).await);
    assert_eq!(events.iter().map(|(_, e)| e.message_id.as_str()).collect::<Vec<_>>(), ["ok-1", "ok-2"]);
    let dead = stack.read_records(&ingest.dlq_topic, Duration::from_secs(3)).await;
    assert_eq!(dead.len(), 2);
    // Keyed by account, the two may sit on different partitions: found by content, not order.
    let bad = dead.iter().find(|d| d.value["message_id"] == "bad-1").expect("the rejected event, verbatim");
    let array = dead.iter().find(|d| d.value == json!(["login", "acme", "u3"])).expect("the array, verbatim");
    let header =
        |record: &testkit::Record, name: &str| record.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header(bad, "error").as_deref(), Some("nps: must be an integer from 0 to 10"));
    assert_eq!(header(bad, "source").as_deref(), Some("api-test"));
    assert_eq!(header(array, "error").as_deref(), Some("event: must be a JSON object"));
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn compressed_bodies_are_accepted() {
    let stack = Stack::from_env("ingest_gzip");
    let ingest = start(&stack, |_| {}).await;
    let body = json!({"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "gz"}).to_string();
    let r = post(&ingest.url, "/v1/events")
        .header("Content-Encoding", "gzip")
        .body(testkit::gzip(body.as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body = json!({"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "zz"}).to_string();
    let mut z = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(body.as_bytes()).unwrap();
    let r = post(&ingest.url, "/v1/events")
        .header("Content-Encoding", "deflate")
        .body(z.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = events_of(stack.read_topic(&ingest.events_topic, Duration::from_secs(5)).await);
    assert_eq!(events.iter().map(|(_, e)| e.message_id.as_str()).collect::<Vec<_>>(), ["gz", "zz"]);
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn refused_requests_say_why_and_write_nothing() {
    let stack = Stack::from_env("ingest_refused");
    let ingest = start(&stack, |c| {
        c.limits.max_body_bytes = 4096;
        c.limits.max_decompressed_bytes = 64 * 1024;
        c.limits.max_event_bytes = 1024;
        c.limits.max_batch_events = 5;
    })
    .await;
    let login = json!({"kind": "login", "account_id": "acme", "user_id": "u1"});
    let url = format!("{}/v1/events", ingest.url);
    let http = reqwest::Client::new();

    let check = |r: reqwest::Response, status: u16, error: &'static str| async move {
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert!(body["error"].as_str().unwrap().contains(error), "{body}");
        body
    };
    check(http.post(&url).json(&login).send().await.unwrap(), 401, "write key").await;
    check(http.post(&url).basic_auth("wrong-key-123", Some("")).json(&login).send().await.unwrap(), 401, "write key")
        .await;
    check(
        http.post(&url).json(&json!({"writeKey": "nope-nope", "kind": "login"})).send().await.unwrap(),
        401,
        "write key",
    )
    .await;
    let big = json!({"kind": "login", "account_id": "acme", "user_id": "u1", "properties": {"pad": "x".repeat(5000)}});
    check(post(&ingest.url, "/v1/events").json(&big).send().await.unwrap(), 413, "larger than 4096").await;
    let six = json!({"batch": vec![login.clone(); 6]});
    check(post(&ingest.url, "/v1/events").json(&six).send().await.unwrap(), 413, "at most 5").await;
    // 1 MiB of padding compresses to about 1 KiB: a bomb for a 64 KiB decompression limit.
    let bomb =
        json!({"kind": "login", "account_id": "acme", "user_id": "u1", "properties": {"pad": "0".repeat(1 << 20)}});
    let bomb = testkit::gzip(bomb.to_string().as_bytes());
    assert!(bomb.len() < 4096);
    let r = post(&ingest.url, "/v1/events").header("Content-Encoding", "gzip").body(bomb).send().await.unwrap();
    check(r, 413, "larger than 65536").await;
    let r = post(&ingest.url, "/v1/events").header("Content-Encoding", "br").json(&login).send().await.unwrap();
    check(r, 415, "Content-Encoding").await;
    let r = post(&ingest.url, "/v1/events")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    check(r, 400, "invalid JSON").await;
    let body = check(
        post(&ingest.url, "/v1/events").json(&json!({"kind": "login", "account_id": "acme"})).send().await.unwrap(),
        400,
        "invalid",
    )
    .await;
    assert_eq!(body["errors"], json!([{"field": "user_id", "reason": "is required"}]));
    let oversize =
        json!({"kind": "login", "account_id": "acme", "user_id": "u1", "properties": {"pad": "x".repeat(2000)}});
    let body = check(post(&ingest.url, "/v1/events").json(&oversize).send().await.unwrap(), 400, "invalid").await;
    assert_eq!(body["errors"][0]["field"], "event");

    assert!(stack.read_topic(&ingest.events_topic, Duration::from_secs(4)).await.is_empty(), "nothing written");
    // The two invalid events were dead-lettered with their reasons; the refused requests were not.
    let dead = stack.read_records(&ingest.dlq_topic, Duration::from_secs(2)).await;
    let reasons: Vec<&str> =
        dead.iter().flat_map(|r| r.headers.iter().filter(|(k, _)| k == "error").map(|(_, v)| v.as_str())).collect();
    let size = serde_json::to_vec(&oversize).unwrap().len();
    assert_eq!(reasons, ["user_id: is required".to_owned(), format!("event: is {size} bytes; at most 1024 per event")]);
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_write_key_over_its_rate_gets_429_with_retry_after() {
    let stack = Stack::from_env("ingest_rate");
    let ingest = start(&stack, |c| {
        c.limits.rate_per_sec = 1;
        c.limits.burst = 10;
    })
    .await;
    let batch = |n: usize, tag: &str| json!({"batch": (0..n).map(|i| json!({"kind": "login", "account_id": "acme", "user_id": "u", "message_id": format!("{tag}-{i}")})).collect::<Vec<_>>()});
    assert_eq!(post(&ingest.url, "/v1/events").json(&batch(10, "a")).send().await.unwrap().status(), 200);
    let r = post(&ingest.url, "/v1/events").json(&batch(5, "b")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // 5 events at 1/s: at most 5 s (+1 for rounding up), less if the first request was slow.
    assert!((1..=6).contains(&retry), "retry after {retry} s");
    // Honouring Retry-After works.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(post(&ingest.url, "/v1/events").json(&batch(5, "c")).send().await.unwrap().status(), 200);
    let events = stack.read_topic(&ingest.events_topic, Duration::from_secs(5)).await;
    let mut ids: Vec<String> = events.iter().map(|(_, e)| e["message_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids.len(), 15, "the refused batch wrote nothing: {ids:?}");
    assert!(ids.iter().all(|id| !id.starts_with("b-")));
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn every_segment_endpoint_round_trips_through_the_topic() {
    let stack = Stack::from_env("ingest_segment");
    let ingest = start(&stack, |_| {}).await;
    let ts = json!({"timestamp": "2026-11-20T10:00:00Z"});
    let call = |path: &'static str, body: Value| {
        let mut body = body;
        body.as_object_mut().unwrap().extend(ts.as_object().unwrap().clone());
        let url = ingest.url.clone();
        async move {
            let r = post(&url, path).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
        }
    };
    // Order matters: the group call ties s-user to acme, so the later track call without
    // context.groupId is attributed to acme.
    call("/v1/group", json!({"userId": "s-user", "groupId": "acme", "messageId": "s1", "traits": {"plan": "enterprise", "seats": 50}})).await;
    call(
        "/v1/track",
        json!({"userId": "s-user", "event": "Report Exported", "messageId": "s2", "properties": {"format": "csv"}}),
    )
    .await;
    call("/v1/identify", json!({"userId": "s-user", "messageId": "s3", "traits": {"email": "s@example.com"}})).await;
    call("/v1/page", json!({"userId": "s-user", "name": "Pricing", "messageId": "s4", "context": {"groupId": "acme"}}))
        .await;
    call("/v1/screen", json!({"anonymousId": "anon-1", "name": "Home", "messageId": "s5"})).await;
    call("/v1/alias", json!({"userId": "s-user", "previousId": "anon-1", "messageId": "s6"})).await;
    let batch = json!({
        "batch": [
            {"type": "track", "userId": "s-user", "event": "Signed In", "messageId": "s7"},
            {"type": "track", "userId": "b-user", "event": "Data Imported", "properties": {"records": 40}, "messageId": "s8"}
        ],
        "context": {"groupId": "globex"},
        "writeKey": KEY
    });
    let r = reqwest::Client::new().post(format!("{}/v1/batch", ingest.url)).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = post(&ingest.url, "/v1/import")
        .json(&json!({"batch": [{"type": "screen", "userId": "i-user", "name": "Import", "messageId": "s9"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let events = events_of(stack.read_topic(&ingest.events_topic, Duration::from_secs(6)).await);
    let got: Vec<(&str, &str, EventKind, &str, Option<&str>)> = events
        .iter()
        .map(|(key, e)| (e.message_id.as_str(), e.account_id.as_str(), e.kind, key.as_str(), e.feature.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("s1", "acme", EventKind::Account, "acme", None),
            ("s2", "acme", EventKind::FeatureUsed, "acme", Some("Report Exported")),
            ("s3", "acme", EventKind::User, "acme", None),
            ("s4", "acme", EventKind::FeatureUsed, "acme", Some("page:Pricing")),
            ("s5", "", EventKind::FeatureUsed, "anon-1", Some("screen:Home")),
            ("s6", "acme", EventKind::User, "acme", None),
            ("s7", "globex", EventKind::Login, "globex", None),
            ("s8", "globex", EventKind::DataVolume, "globex", None),
            ("s9", "", EventKind::FeatureUsed, "i-user", Some("screen:Import")),
        ]
    );
    assert_eq!(events[0].1.traits["seats"], 50);
    assert_eq!(events[7].1.records, Some(40));
    assert!(events.iter().all(|(_, e)| e.source == "api-test"));
}
