//! Suppression on the real broker (docs/privacy.md#suppression, issue 24): every ingest instance
//! follows the suppression topic; a suppressed person's or account's events are answered 200 and
//! never reach the events topic, on every instance, within seconds of the record; an unsuppress
//! takes them back; an instance started after a record exists loads it before it is ready and
//! before it writes anything.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test` (or run with
//! `UPTAKE_TEST_KAFKA=… UPTAKE_TEST_CLICKHOUSE=… cargo test -p ingest --test suppression -- --include-ignored`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ingest::App;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::privacy::{Subject, SuppressionRecord};
use serde_json::{json, Value};
use testkit::ingest::RunningIngest;
use testkit::{Proxy, Stack};

const KEY: &str = "suppression-key-0123456789abcdef0123";
/// How soon a record must take effect on a running instance.
const TAKES_EFFECT: Duration = Duration::from_secs(5);

/// Writes `subject`'s state onto the suppression topic, as the regulations API does.
async fn publish(producer: &FutureProducer, topic: &str, subject: Subject, suppressed: bool) {
    let key = subject.key();
    let record =
        SuppressionRecord { subject, suppressed, regulation_id: format!("test-{key}"), at: chrono::Utc::now() };
    let payload = serde_json::to_vec(&record).unwrap();
    producer
        .send(FutureRecord::to(topic).key(&key).payload(&payload), Duration::from_secs(10))
        .await
        .unwrap_or_else(|(e, _)| panic!("producing {key}: {e}"));
}

fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap()
}

/// Polls `done` until it holds, failing after `within`; returns how long it took.
async fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn readyz(ingest: &RunningIngest) -> (u16, Value) {
    let r = reqwest::get(format!("{}/readyz", ingest.admin_url)).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn wait_ready(ingest: &RunningIngest) {
    let started = Instant::now();
    while readyz(ingest).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "{} never became ready", ingest.admin_url);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Posts to `path` and returns the status and the `accepted` count.
async fn post(ingest: &RunningIngest, path: &str, body: Value) -> (u16, u64) {
    let r =
        reqwest::Client::new().post(format!("{}{path}", ingest.url)).bearer_auth(KEY).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body["accepted"].as_u64().unwrap_or(0))
}

fn login(account: &str, user: &str, id: &str) -> Value {
    json!({"kind": "login", "account_id": account, "user_id": user, "message_id": id})
}

fn track(account: &str, user: &str, id: &str) -> Value {
    json!({"userId": user, "event": "Report Exported", "messageId": id, "context": {"groupId": account}})
}

/// The `uptake_ingest_suppressed_events_total` an instance exports.
async fn suppressed_counter(ingest: &RunningIngest) -> u64 {
    let text = reqwest::get(format!("{}/metrics", ingest.admin_url)).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("uptake_ingest_suppressed_events_total ")).expect("the counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The message ids on `topic`.
async fn arrived(stack: &Stack, topic: &str) -> BTreeSet<String> {
    let records = stack.read_topic(topic, Duration::from_secs(6)).await;
    records.into_iter().map(|(_, v)| v["message_id"].as_str().expect("a canonical event").to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn two_instances_drop_a_suppressed_person_or_account_and_take_them_back_when_lifted() {
    let stack = Stack::from_env("ingest_suppression");
    let a = testkit::ingest::start(&stack, KEY, "suppression", |_| {}).await;
    // The second instance: the same topics, its own process state.
    let b = testkit::ingest::serve((*a.app.config).clone()).await;
    wait_ready(&a).await;
    wait_ready(&b).await;
    let (events, suppressions) = (a.events_topic.clone(), a.suppressions_topic.clone());
    let producer = producer(&stack.kafka);
    let both = [("a", &a), ("b", &b)];

    // A person suppressed: dropped on both instances, native and Segment; bob is kept.
    publish(&producer, &suppressions, Subject::user("ann"), true).await;
    for (name, ingest) in both {
        let took = until("ann suppressed", TAKES_EFFECT, || ingest.app.suppressions.matches("acme", "ann")).await;
        eprintln!("instance {name}: ann suppressed {took:?} after the record");
    }
    for (name, ingest) in both {
        let (ann, bob) = (format!("p1-{name}-ann"), format!("p1-{name}-bob"));
        let batch = json!({"batch": [login("acme", "ann", &ann), login("acme", "bob", &bob)]});
        assert_eq!(post(ingest, "/v1/events", batch).await, (200, 2), "instance {name}");
        assert_eq!(post(ingest, "/v1/track", track("acme", "ann", &format!("p1-{name}-ann-seg"))).await, (200, 1));
    }

    // Lifted: ann's new events are stored again.
    publish(&producer, &suppressions, Subject::user("ann"), false).await;
    for (_, ingest) in both {
        until("ann lifted", TAKES_EFFECT, || !ingest.app.suppressions.matches("acme", "ann")).await;
    }
    for (name, ingest) in both {
        let (ann, bob) = (format!("p2-{name}-ann"), format!("p2-{name}-bob"));
        let batch = json!({"batch": [login("acme", "ann", &ann), login("acme", "bob", &bob)]});
        assert_eq!(post(ingest, "/v1/events", batch).await, (200, 2));
    }

    // A whole account suppressed: every user of globex dropped, acme kept.
    publish(&producer, &suppressions, Subject::account("globex"), true).await;
    for (_, ingest) in both {
        until("globex suppressed", TAKES_EFFECT, || ingest.app.suppressions.matches("globex", "anyone")).await;
    }
    for (name, ingest) in both {
        let batch = json!({"batch": [
            login("globex", "gus", &format!("p3-{name}-gus")),
            login("globex", "gina", &format!("p3-{name}-gina")),
            login("acme", "bob", &format!("p3-{name}-bob"))
        ]});
        assert_eq!(post(ingest, "/v1/events", batch).await, (200, 3));
        let segment = json!({"batch": [{"type": "track", "userId": "gus", "event": "Report Exported",
            "messageId": format!("p3-{name}-gus-seg"), "context": {"groupId": "globex"}}]});
        assert_eq!(post(ingest, "/v1/batch", segment).await, (200, 1));
    }

    let want: BTreeSet<String> = ["p1-{}-bob", "p2-{}-ann", "p2-{}-bob", "p3-{}-bob"]
        .iter()
        .flat_map(|p| ["a", "b"].map(|n| p.replace("{}", n)))
        .collect();
    assert_eq!(arrived(&stack, &events).await, want, "exactly the events of subjects not suppressed at the time");
    for (name, ingest) in both {
        // ann twice in phase 1; gus, gina and gus (Segment) in phase 3.
        assert_eq!(suppressed_counter(ingest).await, 5, "instance {name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn an_instance_started_after_a_suppression_loads_it_before_it_is_ready_or_writes() {
    let stack = Stack::from_env("ingest_suppression_late");
    let mut cfg = testkit::ingest::config(&stack, KEY, "suppression-late").await;
    let (events, suppressions) = (cfg.kafka.topic.clone(), cfg.kafka.suppressions_topic.clone());
    stack.create_topics(&[&suppressions], 1).await;
    // ann among others, and zed suppressed then lifted: the list is the latest record per key,
    // read to the end the topic had at start.
    let producer = producer(&stack.kafka);
    for i in 0..50 {
        publish(&producer, &suppressions, Subject::user(format!("before-{i}")), true).await;
    }
    publish(&producer, &suppressions, Subject::user("ann"), true).await;
    publish(&producer, &suppressions, Subject::user("zed"), true).await;
    for i in 0..50 {
        publish(&producer, &suppressions, Subject::user(format!("after-{i}")), true).await;
    }
    publish(&producer, &suppressions, Subject::user("zed"), false).await;

    // The instance reaches the broker only through a proxy, cut at first: it cannot load the
    // list, and the window in which it has not is as long as the test wants.
    let proxy = Proxy::start(&stack.kafka).await;
    proxy.cut();
    cfg.kafka.brokers = format!("127.0.0.1:{}", proxy.port);
    // A request sent at once waits for the list rather than fail, for as long as this.
    cfg.kafka.delivery_timeout_ms = 30_000;
    let late = testkit::ingest::serve_app(App::new(cfg.build_and_validate().unwrap()).unwrap()).await;

    // The first request, before anything is loaded.
    let first = {
        let batch = [
            login("acme", "ann", "late-ann-1"),
            login("acme", "bob", "late-bob-1"),
            login("acme", "zed", "late-zed-1"),
        ];
        let (url, batch) = (late.url.clone(), json!({ "batch": batch }));
        tokio::spawn(async move {
            let r = reqwest::Client::new().post(format!("{url}/v1/events")).bearer_auth(KEY).json(&batch).send();
            let r = r.await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    let cut_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < cut_until {
        let (status, body) = readyz(&late).await;
        assert_eq!(status, 503, "ready without its suppression list: {body}");
        assert!(body["reason"].as_str().unwrap().contains("suppression list not loaded"), "{body}");
        assert!(!first.is_finished(), "the first request was answered before the list was loaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    proxy.restore();
    let started = Instant::now();
    wait_ready(&late).await;
    eprintln!("ready {:?} after the broker became reachable", started.elapsed());
    let list = &late.app.suppressions;
    assert!(list.matches("acme", "ann") && !list.matches("acme", "zed"), "ready only with the whole list loaded");
    assert_eq!(list.len(), 101, "every suppressed subject of the topic");

    let (status, body) = first.await.unwrap();
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(3)), "{body}");
    let second = json!({"batch": [login("acme", "ann", "late-ann-2"), login("acme", "bob", "late-bob-2")]});
    assert_eq!(post(&late, "/v1/events", second).await, (200, 2));

    let want: BTreeSet<String> = ["late-bob-1", "late-zed-1", "late-bob-2"].map(String::from).into();
    assert_eq!(arrived(&stack, &events).await, want, "ann's events never written, not even the first");
    assert_eq!(suppressed_counter(&late).await, 2);
}
