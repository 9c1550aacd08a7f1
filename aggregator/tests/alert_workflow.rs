//! The CSM workflow against the real ClickHouse and broker, at injected times: a closed episode
//! ends without a `resolved` record — also for an evaluator started after the closure — and
//! its pair cools down from the close; a snoozed episode neither resolves nor re-fires before the
//! snooze ends and resolves on the first pass after; one still open then gets one `snooze_ended`
//! record (and its `alert_actions` row), also across a restart — and on a restart's first pass,
//! beside a new alert of the same account. The actions are `alert_actions` rows, as the console
//! writes them; what is checked is what arrived on the alerts topic and in `alerts`.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::Arc;
use std::time::Duration;

use aggregator::AggregatorConfig;
use aggregator::{Evaluator, Ownership, PassReport, RuleSet};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use schemas::alert::{Alert, AlertAction, AlertStatus, CloseReason};
use testkit::events::{self, at as t};
use testkit::Stack;
use warehouse::rows::{ActionRow, EventRow};
use warehouse::Warehouse;

const TOPIC: &str = "workflow-events";
const RULES: &str = r#"
[[rule]]
id = "quiet"
description = "No login for a week"
severity = "critical"
cooldown = "3d"
when = { kind = "inactivity", since = "login", days = 7 }
"#;

/// Login `n` of `u1` of `account` at `at`, as stored from partition 0 at offset `n`.
fn login(n: usize, account: &str, at: &str) -> EventRow {
    events::stored(events::login(format!("wf-{n}"), account, "u1", t(at), "workflow"), TOPIC, n as i64)
}

async fn setup(stack: &Stack, rules: &str) -> (AggregatorConfig, Warehouse, String) {
    let alerts_topic = stack.topic("usage-alerts");
    stack.create_topics(&[&alerts_topic], 1).await;
    let mut cfg = testkit::aggregator::config_for(stack, "workflow");
    cfg.kafka.events_topic = TOPIC.into();
    cfg.kafka.alerts_topic = alerts_topic.clone();
    cfg.rules_file = Some(testkit::aggregator::rules_file(stack, rules));
    // Judged at once: each test's events are the accounts' whole history, stored before a pass.
    cfg.evaluation.settle_ms = 0;
    let cfg = cfg.build_and_validate().unwrap();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    (cfg, store, alerts_topic)
}

/// A live evaluator of partition 0: a fresh one is a restart.
fn live(cfg: &AggregatorConfig, store: &Warehouse, producer: &FutureProducer) -> Evaluator {
    let metrics = Arc::new(aggregator::Telemetry::new());
    let rules = RuleSet::load(cfg.rules_file.as_deref()).unwrap();
    Evaluator::live(cfg, rules, store.clone(), producer.clone(), metrics, Arc::new(Ownership::fixed([0])))
}

/// The (account, status) of each record a pass published.
fn published(r: &PassReport) -> Vec<(String, AlertStatus)> {
    let mut out: Vec<_> =
        r.fired.iter().chain(&r.resolved).chain(&r.snooze_ended).map(|a| (a.account_id.clone(), a.status)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The lifecycle record a CSM's action on `episode` publishes, as the console builds it.
fn action(episode: &Alert, status: AlertStatus, at: &str, tweak: impl FnOnce(&mut AlertAction)) -> Alert {
    let mut a = AlertAction {
        action_id: format!("{}-{}", status.as_str(), episode.account_id),
        by: "dana@vendor.example".into(),
        at: t(at),
        note: None,
        snoozed_until: None,
        assignee: None,
        close_reason: None,
    };
    tweak(&mut a);
    Alert { status, action: Some(a), ..episode.clone() }
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn closures_end_episodes_and_snoozes_hold_them_until_they_end() {
    let stack = Stack::from_env("workflow");
    let (cfg, store, alerts_topic) = setup(&stack, RULES).await;
    store.insert_rows(&[login(1, "closy-co", "2026-03-01T09:00:00Z")]).await.unwrap();
    store.insert_rows(&[login(2, "snoozy-co", "2026-03-01T09:00:00Z")]).await.unwrap();
    store.insert_rows(&[login(4, "sleepy-co", "2026-03-01T09:00:00Z")]).await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    let mut ev = live(&cfg, &store, &producer);

    let r = ev.evaluate(t("2026-03-09T00:00:00Z")).await.unwrap();
    let mut fired = r.fired.clone();
    fired.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    assert_eq!(published(&r).len(), 3, "every account quiet for 8 days: {:?}", published(&r));
    let (closy, sleepy, snoozy) = (&fired[0], &fired[1], &fired[2]);
    assert_eq!((closy.account_id.as_str(), snoozy.account_id.as_str()), ("closy-co", "snoozy-co"));

    // The CSM closes one (the condition still holds) and snoozes the others until 03-12 00:00;
    // snoozy-co logs in again, so its condition clears; sleepy-co stays quiet.
    let closed =
        action(closy, AlertStatus::Closed, "2026-03-09T12:00:00Z", |a| a.close_reason = Some(CloseReason::Contacted));
    let snoozed = action(snoozy, AlertStatus::Snoozed, "2026-03-09T12:00:00Z", |a| {
        a.snoozed_until = Some(t("2026-03-12T00:00:00Z"));
        a.note = Some("on holiday".into());
    });
    let also = action(sleepy, AlertStatus::Snoozed, "2026-03-09T12:00:00Z", |a| {
        a.snoozed_until = Some(t("2026-03-12T00:00:00Z"))
    });
    let rows: Vec<ActionRow> =
        [&closed, &snoozed, &also].iter().map(|a| ActionRow::of(a, t("2026-03-09T12:00:00Z")).unwrap()).collect();
    store.insert_rows(&rows).await.unwrap();
    store.insert_rows(&[login(3, "snoozy-co", "2026-03-10T06:00:00Z")]).await.unwrap();

    let r = ev.evaluate(t("2026-03-10T12:00:00Z")).await.unwrap();
    assert_eq!(published(&r), [], "neither the closed nor the snoozed episode resolves");
    assert_eq!(r.closed, 1);

    // A restart: the closed episode, still `firing` in `alerts`, is dropped again at restore.
    let mut ev = live(&cfg, &store, &producer);
    let r = ev.evaluate(t("2026-03-11T23:59:59Z")).await.unwrap();
    assert_eq!(published(&r), [], "a second before the snooze ends; closy cooling down from its close (2 days)");
    assert_eq!(r.closed, 1, "the restored open episode was closed");

    // The first pass after the snoozes. And closy-co, closed on 03-09, still quiet: its 3-day
    // cooldown counts UTC days (03-09 → 03-12), so a new episode on the first pass of 03-12.
    let r = ev.evaluate(t("2026-03-12T00:00:00Z")).await.unwrap();
    let want = [
        ("closy-co".to_owned(), AlertStatus::Firing),
        ("sleepy-co".to_owned(), AlertStatus::SnoozeEnded),
        ("snoozy-co".to_owned(), AlertStatus::Resolved),
    ];
    assert_eq!(published(&r), want, "the first pass after the snoozes");
    assert_eq!(r.fired[0].alert_id, Alert::episode_id("closy-co", "quiet", Some(&closy.alert_id)));
    // Told once, also after a restart: the `snooze_ended` action row ended the snooze.
    let mut ev = live(&cfg, &store, &producer);
    let r = ev.evaluate(t("2026-03-12T12:00:00Z")).await.unwrap();
    assert_eq!(published(&r), [], "nothing told twice");

    // What arrived: on the topic and in `alerts`, no `resolved` for the closed episode.
    let records = stack.read_topic(&alerts_topic, Duration::from_secs(5)).await;
    let seq: Vec<(String, String)> = records
        .iter()
        .map(|(_, a)| (a["account_id"].as_str().unwrap().to_owned(), a["status"].as_str().unwrap().to_owned()))
        .collect();
    let mut seq_sorted = seq.clone();
    seq_sorted.sort();
    let want: Vec<(String, String)> = [
        ("closy-co", "firing"),
        ("closy-co", "firing"),
        ("sleepy-co", "firing"),
        ("sleepy-co", "snooze_ended"),
        ("snoozy-co", "firing"),
        ("snoozy-co", "resolved"),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect();
    assert_eq!(seq_sorted, want, "{seq:?}");
    let rows = stack
        .query(&format!(
            "SELECT alert_id, status FROM {}.alerts WHERE status = 'resolved' ORDER BY alert_id",
            stack.database()
        ))
        .await;
    let resolved: Vec<&str> = rows.iter().map(|r| r["alert_id"].as_str().unwrap()).collect();
    assert_eq!(resolved, [snoozy.alert_id.as_str()]);
    let rows = stack
        .query(&format!(
            "SELECT alert_id, actor, toUInt32(at) AS at FROM {}.alert_actions WHERE action = 'snooze_ended'",
            stack.database()
        ))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["alert_id"].as_str(), rows[0]["actor"].as_str()),
        (Some(sleepy.alert_id.as_str()), Some("uptake"))
    );
    assert_eq!(rows[0]["at"].as_i64(), Some(t("2026-03-12T00:00:00Z").timestamp()));
}

/// A second rule of the same account, for [`RULES`]' `quiet`.
const SILENT: &str = r#"
[[rule]]
id = "silent"
description = "No login for ten days"
severity = "critical"
when = { kind = "inactivity", since = "login", days = 10 }
"#;

/// Midnight (UTC) `days` after today's: live passes, whatever the hour the test runs at.
fn midnight(days: i64) -> chrono::DateTime<chrono::Utc> {
    let today = chrono::Utc::now().date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    today + chrono::Duration::days(days)
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_snooze_ending_on_a_restarts_first_pass_is_told_beside_the_accounts_new_alert() {
    let stack = Stack::from_env("workflow_restart");
    let (cfg, store, alerts_topic) = setup(&stack, &format!("{RULES}{SILENT}")).await;
    let login_at = (midnight(-9) + chrono::Duration::hours(9)).to_rfc3339();
    store.insert_rows(&[login(1, "sleepy-co", &login_at)]).await.unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();

    // Quiet for 8 days: `quiet` fires; the CSM snoozes it for two days.
    let r = live(&cfg, &store, &producer).evaluate(midnight(0)).await.unwrap();
    assert_eq!(r.fired.iter().map(|a| a.rule_id.as_str()).collect::<Vec<_>>(), ["quiet"]);
    let until = midnight(2);
    let snoozed =
        action(&r.fired[0], AlertStatus::Snoozed, &midnight(0).to_rfc3339(), |a| a.snoozed_until = Some(until));
    store.insert_rows(&[ActionRow::of(&snoozed, midnight(0)).unwrap()]).await.unwrap();

    // A restart, and its first pass is the first after the snooze, 10 days quiet: `silent` holds
    // too. A restart replays an account about to fire before it fires; the snooze's end is
    // told all the same.
    let r = live(&cfg, &store, &producer).evaluate(until).await.unwrap();
    let fired: Vec<&str> = r.fired.iter().map(|a| a.rule_id.as_str()).collect();
    let ended: Vec<&str> = r.snooze_ended.iter().map(|a| a.alert_id.as_str()).collect();
    assert_eq!(fired, ["silent"], "the account's new alert");
    assert_eq!(ended, [snoozed.alert_id.as_str()], "the snooze's end, told on the same pass");

    // What arrived on the topic: the snoozed episode's firing, then its snooze_ended.
    let records = stack.read_topic(&alerts_topic, Duration::from_secs(5)).await;
    let of_quiet: Vec<&str> =
        records.iter().filter(|(_, a)| a["rule_id"] == "quiet").map(|(_, a)| a["status"].as_str().unwrap()).collect();
    assert_eq!(of_quiet, ["firing", "snooze_ended"], "{records:?}");
}
