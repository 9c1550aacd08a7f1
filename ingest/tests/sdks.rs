//! Unmodified Segment and RudderStack SDKs (their Python libraries, installed from PyPI by
//! deploy/local/test.sh) pointed at ingest: every call they make lands on the topic, attributed.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::time::Duration;

use schemas::event::{Event, EventKind};
use testkit::Stack;

const KEY: &str = "sdk-test-write-key-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack and the Python SDKs: run deploy/local/test.sh"]
async fn segment_and_rudderstack_sdks_work_unchanged() {
    let stack = Stack::from_env("sdks");
    let ingest = testkit::ingest::start(&stack, KEY, "sdk", |_| {}).await;
    let (topic, url) = (ingest.events_topic.clone(), ingest.url.clone());

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk_send.py");
    for sdk in ["segment", "rudder"] {
        let out = tokio::process::Command::new("python3").args([script, sdk, &url, KEY]).output().await.unwrap();
        assert!(
            out.status.success(),
            "{sdk}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let mut events: Vec<Event> = stack
        .read_topic(&topic, Duration::from_secs(6))
        .await
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).unwrap())
        .collect();
    events.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    for sdk in ["rudder", "segment"] {
        let mine: Vec<(&str, EventKind, &str, Option<&str>)> = events
            .iter()
            .filter(|e| e.message_id.starts_with(sdk))
            .map(|e| (e.message_id.as_str(), e.kind, e.account_id.as_str(), e.feature.as_deref()))
            .collect();
        let acct = format!("{sdk}-acct");
        let ids: Vec<String> = (1..=7).map(|i| format!("{sdk}-{i}")).collect();
        assert_eq!(
            mine,
            [
                // identify comes before the user's group call: unattributed, kept
                (ids[0].as_str(), EventKind::User, "", None),
                (ids[1].as_str(), EventKind::Account, acct.as_str(), None),
                (ids[2].as_str(), EventKind::FeatureUsed, acct.as_str(), Some("Report Exported")),
                (ids[3].as_str(), EventKind::Login, acct.as_str(), None),
                (ids[4].as_str(), EventKind::FeatureUsed, acct.as_str(), Some("page:Pricing")),
                (ids[5].as_str(), EventKind::FeatureUsed, acct.as_str(), Some("screen:Home")),
                (ids[6].as_str(), EventKind::User, acct.as_str(), None),
            ],
            "{sdk}"
        );
        let library =
            events.iter().find(|e| e.message_id == ids[2]).unwrap().properties["context"]["library"]["name"].clone();
        assert!(library.is_string(), "{sdk} context kept: {library}");
    }
}
