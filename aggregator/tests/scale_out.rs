//! Two aggregator instances in one consumer group share the partitions; each account's metrics
//! and rules are computed by exactly one of them, so every declining account alerts exactly once.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveTime, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::event::Event;
use testkit::{events, Stack};
use tokio::sync::oneshot;

const ACCOUNTS: usize = 12;

fn login(account: usize, user: usize, days_ago: u64) -> Event {
    let day = Utc::now().date_naive() - Days::new(days_ago);
    let ts = day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()).and_utc();
    let id = format!("a{account}-u{user}-d{days_ago}");
    let e = events::login(id, &format!("account-{account:02}"), &format!("user-{user}"), ts, "scale-out");
    events::received_at(e, Utc::now())
}

struct Instance {
    admin: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), aggregator::AggregatorError>>,
}

async fn start(stack: &Stack, topics: &(String, String, String)) -> Instance {
    let mut cfg = testkit::aggregator::config_for(stack, "scale-out");
    (cfg.kafka.events_topic, cfg.kafka.alerts_topic, cfg.kafka.dlq_topic) = topics.clone();
    cfg.kafka.librdkafka.insert("session.timeout.ms".into(), "6000".into());
    cfg.batch.max_wait_ms = 100;
    cfg.evaluation.interval_ms = 500;
    // The history arrives all at once and old: judged 1 s after it stopped arriving, not after the
    // default 5 minutes (the settling itself is tests/timeline.rs's).
    cfg.evaluation.settle_ms = 1_000;
    // A week-over-week rule: this two-week book is too short for the shipped baseline rules.
    cfg.rules_file = Some(testkit::aggregator::week_over_week_rules(stack));
    let running = testkit::aggregator::start(cfg.build_and_validate().unwrap()).await;
    Instance { admin: format!("{}/metrics", running.admin_url), stop: running.stop, task: running.task }
}

async fn gauge(admin: &str, name: &str) -> u64 {
    let text = reqwest::get(admin).await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn two_instances_split_the_accounts_and_alert_once_each() {
    let stack = Stack::from_env("scale_out");
    let topics = (stack.topic("usage-events"), stack.topic("usage-alerts"), stack.topic("usage-events-dlq"));
    stack.create_topics(&[&topics.0, &topics.1, &topics.2], 4).await;
    let a = start(&stack, &topics).await;
    let b = start(&stack, &topics).await;

    // Every account: 6 users the week before last, 2 last week → −67 %, so every one alerts.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    for account in 0..ACCOUNTS {
        let events = (0..6).map(|u| login(account, u, 9)).chain((0..2).map(|u| login(account, u, 2)));
        for e in events {
            let payload = serde_json::to_vec(&e).unwrap();
            producer
                .send(FutureRecord::to(&topics.0).key(&e.account_id).payload(&payload), Duration::from_secs(10))
                .await
                .unwrap();
        }
    }

    // Both instances end up evaluating a share, and together every account exactly once.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut on_a, mut on_b) = (0, 0);
    while Instant::now() < deadline {
        on_a = gauge(&a.admin, "uptake_aggregator_accounts_evaluated").await;
        on_b = gauge(&b.admin, "uptake_aggregator_accounts_evaluated").await;
        if on_a > 0 && on_b > 0 && on_a + on_b == ACCOUNTS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(on_a > 0 && on_b > 0, "both instances evaluate: {on_a} + {on_b}");
    assert_eq!(on_a + on_b, ACCOUNTS as u64, "each account on exactly one instance");

    tokio::time::sleep(Duration::from_secs(3)).await; // several more passes on both instances
    let alerts = stack.read_topic(&topics.1, Duration::from_secs(6)).await;
    let mut per_account: BTreeMap<String, usize> = BTreeMap::new();
    for (key, alert) in &alerts {
        assert_eq!(alert["status"], "firing");
        *per_account.entry(key.clone()).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..ACCOUNTS).map(|i| (format!("account-{i:02}"), 1)).collect();
    assert_eq!(per_account, expected, "one alert per account");

    for i in [a, b] {
        i.stop.send(()).unwrap();
        i.task.await.unwrap().unwrap();
    }
}
