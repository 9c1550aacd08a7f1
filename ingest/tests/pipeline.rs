//! The request pipeline without a broker: ingest with a [`CollectingSink`] instead of Kafka.
//! Auth, parsing, validation, dead letters and status codes, in milliseconds; runs under a bare
//! `cargo test`.

use std::sync::Arc;

use ingest::sink::{CollectingSink, EventSink};
use ingest::WriteKey;
use ingest::{App, RawIngestConfig};
use schemas::event::EventKind;
use serde_json::{json, Value};

const KEY: &str = "pipeline-key-0123456789abcdef012345";

/// ingest on port 0 writing to `sink`; the server runs until the test ends.
async fn start(sink: Arc<CollectingSink>) -> String {
    let cfg = RawIngestConfig {
        write_keys: vec![WriteKey { key: KEY.into(), source: "pipeline".into() }],
        ..RawIngestConfig::default()
    }
    .build_and_validate()
    .unwrap();
    let app = App::with_sink(cfg, sink as Arc<dyn EventSink>).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ingest::serve(listener, app, std::future::pending()));
    url
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{url}/v1/events")).bearer_auth(KEY).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn accepted_events_reach_the_sink_and_invalid_ones_are_dead_lettered() {
    let sink = Arc::new(CollectingSink::new());
    let url = start(sink.clone()).await;
    let batch = json!({"batch": [
        {"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "m1"},
        {"kind": "feature_used", "account_id": "acme", "user_id": "u1", "message_id": "m2", "feature": "reports"},
        {"kind": "login", "user_id": "u2", "message_id": "m3", "writeKey": "leaked"}
    ]});
    let (status, body) = post(&url, batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 2, "{body}");

    let events = sink.events();
    let got: Vec<(&str, EventKind, &str)> =
        events.iter().map(|e| (e.message_id.as_str(), e.kind, e.source.as_str())).collect();
    assert_eq!(got, [("m1", EventKind::Login, "pipeline"), ("m2", EventKind::FeatureUsed, "pipeline")]);
    let dead = sink.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "pipeline");
    assert!(dead[0].0.reason.contains("account_id"), "{}", dead[0].0.reason);
    assert!(!String::from_utf8_lossy(&dead[0].0.payload).contains("leaked"), "credentials are stripped");
}

#[tokio::test]
async fn a_sink_that_is_down_is_a_503_and_nothing_is_acknowledged() {
    let sink = Arc::new(CollectingSink::new());
    let url = start(sink.clone()).await;
    sink.set_unavailable(true);
    let (status, body) = post(&url, json!({"kind": "login", "account_id": "acme", "user_id": "u1"})).await;
    assert_eq!(status, 503, "{body}");
    assert!(sink.events().is_empty());

    sink.set_unavailable(false);
    let (status, _) = post(&url, json!({"kind": "login", "account_id": "acme", "user_id": "u1"})).await;
    assert_eq!(status, 200);
    assert_eq!(sink.events().len(), 1);
}
