//! Alerts under unlucky faults, against the real ClickHouse and broker with a local webhook
//! receiver: the `alerts` INSERT fails after the pass published its records (the table is
//! renamed away for that pass — a real server error at exactly that step). Whether the
//! evaluator then carries on or crashes and restarts, the episode keeps one `alert_id`, CSMs get
//! each record once, and the episode's resolution matches the record they got.
//!
//! Also: a receive error on the alerts topic (subscribed before it exists) is counted and never
//! ends the notifier, which delivers once the topic exists.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator::config::{WebhookConfig, WebhookFormat};
use aggregator::{AggregatorConfig, RawAggregatorConfig};
use aggregator::{Evaluator, Ownership, RuleSet, Telemetry};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use testkit::events::{self, at as t};
use testkit::Stack;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

const TOPIC: &str = "abuse-events";
const RULES: &str = r#"
[[rule]]
id = "quiet"
description = "No login for a week"
severity = "critical"
when = { kind = "inactivity", since = "login", days = 7 }
"#;

/// Every request the webhook got: its Idempotency-Key.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>);

impl Receiver {
    async fn start(&self) -> String {
        async fn receive(State(rx): State<Receiver>, headers: HeaderMap) -> StatusCode {
            let key = headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            rx.0.lock().unwrap().push(key);
            StatusCode::OK
        }
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn keys(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// The evaluator's and the notifier's config on fresh topics and a fresh database, one webhook.
async fn setup(stack: &Stack, webhook_url: String) -> (AggregatorConfig, Warehouse, FutureProducer) {
    let (alerts, dlq) = (stack.topic("usage-alerts"), stack.topic("usage-alerts-dlq"));
    stack.create_topics(&[&alerts, &dlq], 1).await;
    let mut cfg = RawAggregatorConfig::default();
    cfg.kafka.brokers = stack.kafka.clone();
    cfg.kafka.events_topic = TOPIC.into();
    cfg.kafka.alerts_topic = alerts;
    cfg.kafka.librdkafka.insert("session.timeout.ms".into(), "6000".into());
    cfg.clickhouse.url = stack.clickhouse.clone();
    cfg.clickhouse.database = stack.database();
    cfg.notifier.group_id = format!("notifier-{}", stack.suffix);
    cfg.notifier.dlq_topic = dlq;
    let hook = format!("name = \"csm\"\nurl = {webhook_url:?}\nformat = \"json\"");
    cfg.notifier.webhooks = vec![toml::from_str::<WebhookConfig>(&hook).unwrap()];
    assert_eq!(cfg.notifier.webhooks[0].format, WebhookFormat::Json);
    cfg.rules_file = Some(testkit::aggregator::rules_file(stack, RULES));
    let cfg = cfg.build_and_validate().unwrap();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    store.insert_rows(&[login(1, "2026-03-01T12:00:00Z")]).await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    (cfg, store, producer)
}

fn evaluator(cfg: &AggregatorConfig, store: &Warehouse, producer: &FutureProducer) -> Evaluator {
    let metrics = Arc::new(Telemetry::new());
    let rules = RuleSet::load(cfg.rules_file.as_deref()).unwrap();
    Evaluator::live(cfg, rules, store.clone(), producer.clone(), metrics, Arc::new(Ownership::fixed([0])))
}

/// One pass at `at` whose `alerts` INSERT fails: the table is away for exactly that pass (the
/// evaluator read it when it loaded the open episodes, in an earlier pass).
async fn pass_with_failing_alerts_insert(stack: &Stack, ev: &mut Evaluator, at: &str) {
    let db = stack.database();
    stack.execute(&format!("RENAME TABLE {db}.alerts TO {db}.alerts_away")).await;
    let result = ev.evaluate(t(at)).await;
    stack.execute(&format!("RENAME TABLE {db}.alerts_away TO {db}.alerts")).await;
    let err = result.expect_err("the alerts INSERT was to fail").to_string();
    assert!(err.contains("alerts"), "failed for another reason: {err}");
}

/// (alert_id, status) of every record on the alerts topic.
async fn published(stack: &Stack, topic: &str) -> Vec<(String, String)> {
    let records = stack.read_topic(topic, Duration::from_secs(5)).await;
    records
        .iter()
        .map(|(_, a)| (a["alert_id"].as_str().unwrap().to_owned(), a["status"].as_str().unwrap().to_owned()))
        .collect()
}

/// (alert_id, status) of every row of `alerts`, in recording order.
async fn recorded(stack: &Stack) -> Vec<(String, String)> {
    let sql = format!("SELECT alert_id, status FROM {}.alerts ORDER BY recorded_at, status", stack.database());
    let rows = stack.query(&sql).await;
    rows.iter()
        .map(|r| (r["alert_id"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap().to_owned()))
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pair(id: &str, status: &str) -> (String, String) {
    (id.to_owned(), status.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn refire_after_failed_alerts_insert_keeps_alert_id_and_delivers_once() {
    let stack = Stack::from_env("refire_same_id");
    let rx = Receiver::default();
    let (cfg, store, producer) = setup(&stack, rx.start().await).await;
    let metrics = Arc::new(Telemetry::new());
    let (stop, notifier) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics.clone());

    let mut ev = evaluator(&cfg, &store, &producer);
    assert!(ev.evaluate(t("2026-03-05T18:00:00Z")).await.unwrap().fired.is_empty(), "4 days: not yet");
    // Fires and publishes, then the INSERT fails; the process dies before any retry.
    pass_with_failing_alerts_insert(&stack, &mut ev, "2026-03-08T18:00:00Z").await;
    drop(ev);
    let first = published(&stack, &cfg.kafka.alerts_topic).await;
    assert_eq!(first.len(), 1, "the failed pass published its record: {first:?}");
    let id = first[0].0.clone();
    assert!(recorded(&stack).await.is_empty(), "and stored nothing");

    // The restarted evaluator sees no open episode and fires it again: with the same id.
    let mut ev = evaluator(&cfg, &store, &producer);
    let refired = ev.evaluate(t("2026-03-09T18:00:00Z")).await.unwrap().fired;
    assert_eq!(
        refired.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(),
        [id.as_str()],
        "re-fired with a new id"
    );
    assert_eq!(published(&stack, &cfg.kafka.alerts_topic).await, [pair(&id, "firing"), pair(&id, "firing")]);
    assert_eq!(recorded(&stack).await, [pair(&id, "firing")]);

    // The notifier got both records and delivered one: the ledger knew the second.
    let skipped = || metrics.notifications.with_label_values(&["csm", "already_delivered"]).get();
    wait_until("the notifier to handle both records", || skipped() == 1).await;
    assert_eq!(rx.keys(), [format!("{id}:firing")]);

    // The episode resolves under the id the CSM got, and that reaches them once too.
    store.insert_rows(&[login(2, "2026-03-10T09:00:00Z")]).await.unwrap();
    let resolved = ev.evaluate(t("2026-03-10T18:00:00Z")).await.unwrap().resolved;
    assert_eq!(resolved.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    wait_until("the resolution to be delivered", || rx.keys().len() == 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // room for a wrong extra delivery
    assert_eq!(rx.keys(), [format!("{id}:firing"), format!("{id}:resolved")]);
    assert_eq!(recorded(&stack).await, [pair(&id, "firing"), pair(&id, "resolved")]);
    stop.send(true).unwrap();
    notifier.await.unwrap();
}

/// Login `n` of `quiet-co`'s `u1` at `at`, as stored from partition 0 at offset `n`.
fn login(n: usize, at: &str) -> EventRow {
    events::stored(events::login(format!("abuse-{n}"), "quiet-co", "u1", t(at), "abuse"), TOPIC, n as i64)
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_failed_alerts_insert_is_stored_by_the_next_pass_without_republishing() {
    let stack = Stack::from_env("unrecorded_alerts");
    let (cfg, store, producer) = setup(&stack, "http://127.0.0.1:9/unused".into()).await;
    let mut ev = evaluator(&cfg, &store, &producer);
    ev.evaluate(t("2026-03-05T18:00:00Z")).await.unwrap();
    pass_with_failing_alerts_insert(&stack, &mut ev, "2026-03-08T18:00:00Z").await;

    // The evaluator carries on: the next pass stores the row and publishes nothing new.
    let r = ev.evaluate(t("2026-03-09T18:00:00Z")).await.unwrap();
    assert!(r.fired.is_empty(), "re-fired: {:?}", r.fired);
    let topic = published(&stack, &cfg.kafka.alerts_topic).await;
    assert_eq!(topic.len(), 1, "{topic:?}");
    let id = topic[0].0.clone();
    assert_eq!(recorded(&stack).await, [pair(&id, "firing")]);

    // A restart now reads the episode back as open: no re-fire, and it resolves under its id.
    let mut ev = evaluator(&cfg, &store, &producer);
    assert!(ev.evaluate(t("2026-03-09T19:00:00Z")).await.unwrap().fired.is_empty());
    store.insert_rows(&[login(2, "2026-03-10T09:00:00Z")]).await.unwrap();
    let r = ev.evaluate(t("2026-03-10T18:00:00Z")).await.unwrap();
    assert_eq!(r.resolved.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    // The next episode gets a new id, the same on any instance that fires it.
    for day in ["2026-03-17T18:00:00Z", "2026-03-18T18:00:00Z"] {
        let fired = ev.evaluate(t(day)).await.unwrap().fired;
        if let Some(next) = fired.first() {
            assert_ne!(next.alert_id, id, "a new episode, a new id");
            assert_eq!(published(&stack, &cfg.kafka.alerts_topic).await.len(), 3);
            return;
        }
    }
    panic!("the second episode did not fire");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn notifier_receive_error_is_counted_and_never_fatal() {
    let stack = Stack::from_env("notifier_recv_errors");
    let rx = Receiver::default();
    let (cfg, store, producer) = setup(&stack, rx.start().await).await;
    let mut cfg = cfg.to_raw();
    // Subscribed to a topic that does not exist yet: librdkafka reports that as a receive error
    // (once; the backoff itself is unit-tested in notifier::backoff). Refresh metadata often, so
    // the topic is found soon once it exists.
    cfg.kafka.alerts_topic = stack.topic("not-yet-alerts");
    cfg.kafka.librdkafka.insert("topic.metadata.refresh.interval.ms".into(), "500".into());
    let cfg = cfg.build_and_validate().unwrap();
    let metrics = Arc::new(Telemetry::new());
    let (stop, notifier) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics.clone());
    wait_until("a receive error", || metrics.notify_receive_errors.get() >= 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!notifier.is_finished(), "the notifier ended on a receive error");

    // The topic appears: the notifier recovers by itself and delivers.
    stack.create_topics(&[&cfg.kafka.alerts_topic], 1).await;
    let mut ev = evaluator(&cfg, &store, &producer);
    let fired = ev.evaluate(t("2026-03-08T18:00:00Z")).await.unwrap().fired;
    assert_eq!(fired.len(), 1);
    wait_until("the alert to be delivered", || !rx.keys().is_empty()).await;
    assert_eq!(rx.keys(), [format!("{}:firing", fired[0].alert_id)]);
    stop.send(true).unwrap();
    notifier.await.unwrap();
}
