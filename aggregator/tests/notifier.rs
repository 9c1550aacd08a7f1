//! The CSM notifier against the real broker and ClickHouse, with a local HTTP receiver:
//! routing by severity, status and CSM owner; exactly one answered delivery per alert record and
//! webhook across a crash of the notifier in the middle of a delivery (and a record the
//! aggregator published twice); a failing receiver gets its retries, then the alert is parked
//! on the dead-letter topic and counted; the CSM workflow: a snoozed episode's records are held
//! back (ledger outcome `snoozed`) until the snooze ends, lifecycle records are delivered with
//! their wording, and every delivery links to the console.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator::config::{WebhookConfig, WebhookFormat};
use aggregator::AggregatorConfig;
use aggregator::Telemetry;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::alert::{Alert, AlertAction, AlertStatus, Severity};
use serde_json::Value;
use testkit::Stack;
use tokio::sync::Notify;
use warehouse::rows::ActionRow;
use warehouse::Warehouse;

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    hook: String,
    idempotency_key: String,
    body: Value,
    /// Set when the receiver sent its answer; a request whose sender died first stays false.
    answered: bool,
}

/// A webhook receiver: `/ok/NAME` answers 200 (after a short pause, so deliveries overlap a
/// crash); the `hold_nth` request to `/ok/all` is held open far longer than the test runs;
/// `/fail/NAME` answers 500, `/reject/NAME` 400.
#[derive(Clone, Default)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    hold_nth: Option<usize>,
    held: Arc<Notify>,
}

impl Receiver {
    async fn start(self) -> String {
        let app = axum::Router::new().route("/{mode}/{hook}", axum::routing::post(receive)).with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn log(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// Answered deliveries per (webhook, Idempotency-Key).
    fn answered(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for r in self.log().into_iter().filter(|r| r.answered) {
            *out.entry((r.hook, r.idempotency_key)).or_default() += 1;
        }
        out
    }
}

async fn receive(
    State(rx): State<Receiver>,
    Path((mode, hook)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let entry = Received {
        hook: hook.clone(),
        idempotency_key: headers.get("idempotency-key").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default(),
        body: serde_json::from_str(&body).expect("a JSON body"),
        answered: false,
    };
    let index = {
        let mut log = rx.log.lock().unwrap();
        log.push(entry);
        log.len() - 1
    };
    let nth_to_all = rx.log().iter().filter(|r| r.hook == "all").count();
    if mode == "ok" && hook == "all" && Some(nth_to_all) == rx.hold_nth {
        rx.held.notify_one();
        tokio::time::sleep(Duration::from_secs(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    rx.log.lock().unwrap()[index].answered = true;
    match mode.as_str() {
        "ok" => StatusCode::OK,
        "fail" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn alert(i: usize, status: AlertStatus) -> Alert {
    let severity = [Severity::Info, Severity::Warning, Severity::Critical][i % 3];
    let fired_at = "2026-05-04T08:00:00Z".parse().unwrap();
    Alert {
        alert_id: Alert::episode_id(&format!("acct-{i}"), "usage_drop", None),
        account_id: format!("acct-{i}"),
        rule_id: "usage_drop".into(),
        severity,
        status,
        fired_at,
        resolved_at: (status == AlertStatus::Resolved).then(|| "2026-05-09T08:00:00Z".parse().unwrap()),
        lifecycle_stage: Some("growth".into()),
        health_score: Some(40.0 + i as f64),
        metrics: BTreeMap::from([("active_users_change_7d".into(), -60.0), ("active_users_7d".into(), 4.0)]),
        csm_owner: Some(["dana@vendor.example", "sam@vendor.example"][i % 2].into()),
        reason: format!("Weekly active users fell 60 % (10 → 4) vs the previous 7 days (acct-{i})."),
        action: None,
        console_url: None,
    }
}

fn hook(name: &str, url: String, format: WebhookFormat) -> WebhookConfig {
    toml::from_str::<WebhookConfig>(&format!("name = {name:?}\nurl = {url:?}\nformat = \"json\""))
        .map(|mut w| {
            w.format = format;
            w
        })
        .unwrap()
}

/// A config on fresh topics and a fresh database; the alerts topic has two partitions.
async fn setup(stack: &Stack, webhooks: Vec<WebhookConfig>) -> (AggregatorConfig, Warehouse, FutureProducer) {
    let (alerts, dlq) = (stack.topic("usage-alerts"), stack.topic("usage-alerts-dlq"));
    stack.create_topics(&[&alerts, &dlq], 2).await;
    let mut cfg = testkit::aggregator::config_for(stack, "aggregator");
    cfg.kafka.alerts_topic = alerts;
    cfg.kafka.librdkafka.insert("session.timeout.ms".into(), "6000".into());
    cfg.notifier.group_id = format!("notifier-{}", stack.suffix);
    cfg.notifier.dlq_topic = dlq;
    cfg.notifier.webhooks = webhooks;
    let cfg = cfg.build_and_validate().unwrap();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    (cfg, store, producer)
}

async fn publish(producer: &FutureProducer, topic: &str, alerts: &[Alert]) {
    for a in alerts {
        let payload = serde_json::to_string(a).unwrap();
        let record = FutureRecord::to(topic).key(&a.account_id).payload(&payload);
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn each_alert_reaches_each_routed_webhook_once_across_a_crash() {
    let stack = Stack::from_env("notifier_once");
    let rx = Receiver { hold_nth: Some(4), ..Receiver::default() };
    let url = rx.clone().start().await;
    let mut dana = hook("dana", format!("{url}/ok/dana"), WebhookFormat::Slack);
    dana.owners = vec!["DANA@vendor.example".into()];
    dana.min_severity = Severity::Warning;
    dana.statuses = vec![AlertStatus::Firing];
    let (cfg, store, producer) =
        setup(&stack, vec![hook("all", format!("{url}/ok/all"), WebhookFormat::Json), dana]).await;

    // Ten episodes, three of them resolved, and alert 0's firing record published twice (as the
    // aggregator does after a crash between publishing and recording).
    let mut records: Vec<Alert> = (0..10).map(|i| alert(i, AlertStatus::Firing)).collect();
    records.extend((0..3).map(|i| alert(i, AlertStatus::Resolved)));
    records.push(alert(0, AlertStatus::Firing));
    publish(&producer, &cfg.kafka.alerts_topic, &records).await;

    let expected_all: Vec<&Alert> = records[..13].iter().collect();
    let expected_dana: Vec<&Alert> = records[..13]
        .iter()
        .filter(|a| {
            a.csm_owner.as_deref() == Some("dana@vendor.example")
                && a.severity >= Severity::Warning
                && a.status == AlertStatus::Firing
        })
        .collect();
    assert_eq!(expected_dana.len(), 3, "acct-2, acct-4 (critical, warning), acct-8 (critical)");

    // Crash (abort, no graceful stop) while the 4th delivery to `all` is in flight.
    let (_stop1, first) = testkit::aggregator::start_notifier(&cfg, &store, &producer, Arc::new(Telemetry::new()));
    tokio::time::timeout(Duration::from_secs(60), rx.held.notified()).await.expect("the 4th delivery arrives");
    // Let the same record's delivery to `dana` (if routed) finish and be recorded, so what the
    // crash cuts short is exactly the held request.
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.abort();
    let _ = first.await;
    let before_restart = rx.log().len();

    let metrics = Arc::new(Telemetry::new());
    let (stop2, second) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics.clone());
    let want = expected_all.len() + expected_dana.len();
    wait_until("every routed delivery to be answered", Duration::from_secs(90), || rx.answered().len() == want).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // room for any wrong extra delivery
    stop2.send(true).unwrap();
    second.await.unwrap();

    let mut want_keys: Vec<(String, String)> =
        expected_all.iter().map(|a| ("all".to_owned(), format!("{}:{}", a.alert_id, a.status.as_str()))).collect();
    want_keys.extend(expected_dana.iter().map(|a| ("dana".to_owned(), format!("{}:firing", a.alert_id))));
    want_keys.sort();
    let answered = rx.answered();
    assert_eq!(answered.keys().cloned().collect::<Vec<_>>(), want_keys, "exactly the routed deliveries");
    assert!(answered.values().all(|n| *n == 1), "each answered once: {answered:?}");

    // The crash really cut a delivery short: that request came again after the restart.
    let log = rx.log();
    let held = &log.iter().filter(|r| r.hook == "all").nth(3).unwrap().idempotency_key;
    assert_eq!(
        log.iter().filter(|r| &r.idempotency_key == held && r.hook == "all").count(),
        2,
        "held request redelivered"
    );
    assert!(log.len() > before_restart, "the second notifier delivered the rest");
    assert!(
        metrics.notifications.with_label_values(&["all", "already_delivered"]).get() >= 1,
        "the duplicate record was skipped by the ledger"
    );

    // The payloads: the generic envelope carries the alert verbatim; Slack gets a message.
    let json = log.iter().find(|r| r.hook == "all" && r.answered).unwrap();
    let sent: Alert = serde_json::from_value(json.body["alert"].clone()).unwrap();
    assert!(records.contains(&sent));
    assert_eq!(json.body["delivery_id"].as_str(), Some(json.idempotency_key.as_str()));
    let slack = log.iter().find(|r| r.hook == "dana").unwrap();
    let text = slack.body["text"].as_str().unwrap();
    assert!(text.contains("churn risk for *acct-") && text.contains("Weekly active users fell 60 %"), "{text}");

    // The ledger in ClickHouse holds one delivered row per answered delivery.
    let rows = stack
        .query(&format!(
            "SELECT webhook, delivery_id, outcome FROM {}.notifications FINAL ORDER BY webhook, delivery_id",
            stack.database()
        ))
        .await;
    let ledger: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["webhook"].as_str().unwrap().to_owned(), r["delivery_id"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(ledger, want_keys);
    assert!(rows.iter().all(|r| r["outcome"] == "delivered"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_failing_receiver_gets_retries_then_the_alert_is_parked_and_counted() {
    let stack = Stack::from_env("notifier_dlq");
    let rx = Receiver::default();
    let url = rx.clone().start().await;
    let hooks = vec![
        hook("flaky", format!("{url}/fail/flaky"), WebhookFormat::Json),
        hook("gone", format!("{url}/reject/gone"), WebhookFormat::Slack),
    ];
    let (cfg, store, producer) = setup(&stack, hooks).await;
    let mut cfg = cfg.to_raw();
    (cfg.notifier.max_attempts, cfg.notifier.initial_backoff_ms, cfg.notifier.max_backoff_ms) = (3, 50, 200);
    let cfg = cfg.build_and_validate().unwrap();
    let records = [alert(1, AlertStatus::Firing), alert(2, AlertStatus::Firing)];
    publish(&producer, &cfg.kafka.alerts_topic, &records).await;

    let metrics = Arc::new(Telemetry::new());
    let (stop, task) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics.clone());
    let parked = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {}.notifications", stack.database()),
            4,
            Duration::from_secs(60),
        )
        .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(parked, 4, "two alerts × two webhooks recorded as parked");

    // 500 is retried up to max_attempts; 400 is final at once.
    let log = rx.log();
    for a in &records {
        let key = format!("{}:firing", a.alert_id);
        let tries = |hook: &str| log.iter().filter(|r| r.hook == hook && r.idempotency_key == key).count();
        assert_eq!((tries("flaky"), tries("gone")), (3, 1), "{key}");
    }

    let dead = stack.read_records(&cfg.notifier.dlq_topic, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 4);
    for d in &dead {
        let header = |name: &str| d.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
        let parked: Alert = serde_json::from_value(d.value.clone()).unwrap();
        assert!(records.contains(&parked), "the alert record verbatim");
        assert_eq!(d.key, parked.account_id);
        match header("webhook").as_str() {
            "flaky" => assert_eq!((header("attempts").as_str(), header("error").starts_with("HTTP 500")), ("3", true)),
            "gone" => assert_eq!((header("attempts").as_str(), header("error").starts_with("HTTP 400")), ("1", true)),
            other => panic!("unexpected webhook header {other}"),
        }
    }
    assert_eq!(metrics.notify_dead_letters.with_label_values(&["flaky"]).get(), 2);
    assert_eq!(metrics.notify_dead_letters.with_label_values(&["gone"]).get(), 2);
    assert_eq!(metrics.notify_retries.with_label_values(&["flaky"]).get(), 4, "two retries per alert");

    // A restart does not start over on parked alerts: once a new alert has been handled, the
    // old ones have had no further attempts.
    let (stop, task) = testkit::aggregator::start_notifier(&cfg, &store, &producer, Arc::new(Telemetry::new()));
    publish(&producer, &cfg.kafka.alerts_topic, &[alert(3, AlertStatus::Firing)]).await;
    let parked = stack
        .wait_for_count(
            &format!("SELECT count() AS n FROM {}.notifications", stack.database()),
            6,
            Duration::from_secs(60),
        )
        .await;
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(parked, 6, "the new alert was handled after the restart");
    assert_eq!(rx.log().len(), log.len() + 4, "only the new alert's 3 + 1 attempts after the restart");
}

/// A lifecycle record of `episode`: `status` by dana at `at`.
fn acted(episode: &Alert, status: AlertStatus, id: &str, at: &str, tweak: impl FnOnce(&mut AlertAction)) -> Alert {
    let mut action = AlertAction {
        action_id: id.into(),
        by: "dana@vendor.example".into(),
        at: at.parse().unwrap(),
        note: None,
        snoozed_until: None,
        assignee: None,
        close_reason: None,
    };
    tweak(&mut action);
    Alert { status, action: Some(action), ..episode.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_snoozed_episode_notifies_nothing_until_the_snooze_ends_and_deliveries_link_to_the_console() {
    let stack = Stack::from_env("notifier_snooze");
    let rx = Receiver::default();
    let url = rx.clone().start().await;
    let hooks = vec![
        hook("all", format!("{url}/ok/all"), WebhookFormat::Json),
        hook("chat", format!("{url}/ok/chat"), WebhookFormat::Slack),
    ];
    let (cfg, store, producer) = setup(&stack, hooks).await;
    let mut cfg = cfg.to_raw();
    cfg.notifier.console_base_url = Some("https://uptake.example.com/".into());
    let cfg = cfg.build_and_validate().unwrap();

    // Fired at 08:00, snoozed at 09:00 until 05-06 00:00 (the console stores the action, then
    // publishes it); acknowledged and resolved inside the snooze; assigned after it.
    let fired = alert(5, AlertStatus::Firing);
    let snoozed = acted(&fired, AlertStatus::Snoozed, "s1", "2026-05-04T09:00:00Z", |a| {
        a.snoozed_until = Some("2026-05-06T00:00:00Z".parse().unwrap());
        a.note = Some("customer on holiday".into());
    });
    let acknowledged = acted(&fired, AlertStatus::Acknowledged, "k1", "2026-05-05T10:00:00Z", |_| {});
    let mut resolved = alert(5, AlertStatus::Resolved);
    resolved.resolved_at = Some("2026-05-05T12:00:00Z".parse().unwrap());
    let assigned =
        acted(&fired, AlertStatus::Assigned, "g1", "2026-05-06T00:00:01Z", |a| a.assignee = Some("sam".into()));
    let row = ActionRow::of(&snoozed, chrono::Utc::now()).unwrap();
    store.insert_rows(&[row]).await.unwrap();
    let records = [fired.clone(), snoozed.clone(), acknowledged.clone(), resolved.clone(), assigned.clone()];
    publish(&producer, &cfg.kafka.alerts_topic, &records).await;

    let metrics = Arc::new(Telemetry::new());
    let (stop, task) = testkit::aggregator::start_notifier(&cfg, &store, &producer, metrics.clone());
    let ledger_sql = format!("SELECT count() AS n FROM {}.notifications", stack.database());
    let rows = stack.wait_for_count(&ledger_sql, 10, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // room for any wrong extra delivery
    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(rows, 10, "five records × two webhooks");

    // Delivered: the firing (before the snooze), the snooze itself, the assignment after it.
    let sent = [&fired, &snoozed, &assigned].map(|a| a.record_id());
    let mut want: Vec<(String, String)> =
        ["all", "chat"].iter().flat_map(|h| sent.iter().map(move |id| (h.to_string(), id.clone()))).collect();
    want.sort();
    let answered = rx.answered();
    assert_eq!(answered.keys().cloned().collect::<Vec<_>>(), want, "nothing inside the snooze");
    assert!(answered.values().all(|n| *n == 1));
    assert_eq!(sent[2], format!("{}:assigned:g1", fired.alert_id), "lifecycle ids carry the action id");

    // Held back: in the ledger as `snoozed`, and counted.
    let held = stack
        .query(&format!(
            "SELECT webhook, status, outcome FROM {}.notifications WHERE outcome != 'delivered' ORDER BY status, webhook",
            stack.database()
        ))
        .await;
    let held: Vec<(String, String, String)> = held
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap().to_owned();
            (f("webhook"), f("status"), f("outcome"))
        })
        .collect();
    let snz = |h: &str, s: &str| (h.to_owned(), s.to_owned(), "snoozed".to_owned());
    assert_eq!(
        held,
        [snz("all", "acknowledged"), snz("chat", "acknowledged"), snz("all", "resolved"), snz("chat", "resolved")]
    );
    assert_eq!(metrics.notifications.with_label_values(&["all", "snoozed"]).get(), 2);
    assert_eq!(metrics.notifications.with_label_values(&["chat", "delivered"]).get(), 3);

    // Every delivery links to the account page; Slack says who did what.
    let log = rx.log();
    let page = "https://uptake.example.com/accounts/acct-5";
    for r in log.iter().filter(|r| r.hook == "all") {
        assert_eq!(r.body["alert"]["console_url"], page, "{:?}", r.body);
    }
    let slack_of = |id: &str| log.iter().find(|r| r.hook == "chat" && r.idempotency_key == id).unwrap().body.clone();
    let body = slack_of(&sent[2]);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(":bust_in_silhouette: *dana@vendor.example* assigned the alert for *acct-5* to *sam*"),
        "{text}"
    );
    let button = body["blocks"].as_array().unwrap().last().unwrap()["elements"][0].clone();
    assert_eq!((button["text"]["text"].as_str(), button["url"].as_str()), (Some("Open in uptake"), Some(page)));
    let body = slack_of(&sent[1]);
    assert!(body["text"].as_str().unwrap().contains("snoozed the alert for *acct-5* until 2026-05-06 00:00 UTC"));
    assert_eq!(body["blocks"][1]["text"]["text"], "> customer on holiday");
}
