//! The broker dies while clients are sending: every request answered 200 must have all its
//! events on the topic once the broker is back; every other request must have been told 503.
//!
//! Uses a Tansu broker owned by the test (SIGKILL, then restart on the same data). Run by
//! `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{create_topics, read_records, OwnBroker};

const EVENTS_PER_REQUEST: usize = 5;
const KEY: &str = "outage-key-0123456789abcdef0123456";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs tansu: run deploy/local/test.sh"]
async fn no_acknowledged_event_is_lost_when_the_broker_is_killed() {
    let mut broker = OwnBroker::start("outage").await;
    create_topics(&broker.address(), &["usage-events", "usage-events-dlq"], 2).await;

    let mut cfg = testkit::ingest::config_for(&broker.address(), KEY, "outage");
    cfg.kafka.delivery_timeout_ms = 2_000;
    // The shipped default (idempotence off) matters here: Tansu 0.6.0 (SQLite storage) panics
    // in its idempotent-producer check when a producer that already holds a producer id writes
    // after an unclean broker restart ("more or less than one row", tansu-storage lite.rs).
    assert!(!cfg.kafka.idempotence);
    let ingest = testkit::ingest::serve(cfg).await;
    let url = format!("{}/v1/events", ingest.url);

    // Four clients send for 12 s; the broker is killed at 3 s and restarted at 7 s.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let until = Instant::now() + Duration::from_secs(12);
    let mut clients = Vec::new();
    for client in 0..4 {
        let (acked, statuses, url) = (acked.clone(), statuses.clone(), url.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            let mut n = 0;
            while Instant::now() < until {
                let ids: Vec<String> = (0..EVENTS_PER_REQUEST).map(|i| format!("c{client}-r{n}-e{i}")).collect();
                n += 1;
                let batch = json!({"batch": ids.iter().map(|id| json!({"kind": "login", "account_id": format!("acct-{client}"), "user_id": "u", "message_id": id})).collect::<Vec<_>>()});
                let status = match http.post(&url).basic_auth(KEY, Some("")).json(&batch).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                if status == 200 {
                    acked.lock().unwrap().extend(ids);
                }
                statuses.lock().unwrap().push(status);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.restart().await;
    for c in clients {
        c.await.unwrap();
    }

    eprintln!("watermarks after restart: {:?}", testkit::watermarks(&broker.address(), "usage-events"));
    let stored: HashSet<String> =
        read_records(&broker.address(), "usage-events", "outage-check", Duration::from_secs(15))
            .await
            .into_iter()
            .map(|r| r.value["message_id"].as_str().unwrap().to_owned())
            .collect();
    let statuses = statuses.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let unavailable = statuses.iter().filter(|&&s| s == 503).count();
    eprintln!(
        "{} requests: {ok} answered 200, {unavailable} answered 503; {} acknowledged events, {} on the topic",
        statuses.len(),
        acked.len(),
        stored.len()
    );
    assert_eq!(ok + unavailable, statuses.len(), "every answer is 200 or 503: {statuses:?}");
    assert!(unavailable > 0, "the outage must have been noticed");
    assert!(ok > 0);

    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
}
