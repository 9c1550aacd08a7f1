//! Outcomes sent through the Segment API appear in the scored backtest with the right lead
//! times (issue 12): Segment `/v1/batch` → ingest → Kafka → aggregator → ClickHouse, then
//! `replay` + `score` over the stored history, against the real broker and ClickHouse. Also the
//! `account_outcomes` and `open_alerts` views as the real server answers them.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::OnceLock;
use std::time::Duration;

use aggregator::backtest::{end_of_day, replay, score::score};
use aggregator::Clock;
use aggregator::RuleSet;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use schemas::outcome::Outcome;
use serde_json::{json, Value};
use testkit::Stack;
use warehouse::{OutcomeSource, RecordedOutcome, Warehouse};

const KEY: &str = "outcomes-write-key-0123456789abcdef0";
const RULES: &str = r#"
[[rule]]
id = "quiet_7d"
description = "No login for a week"
severity = "critical"
when = { kind = "inactivity", since = "login", days = 7 }
"#;

/// The live evaluator's fixed clock: the start of today (UTC) when the test began, so every
/// duration it reports is the same at any hour the test runs (a wall clock made `fading`'s
/// silence 39 or 40 days, depending on the hour).
fn evaluated_at() -> DateTime<Utc> {
    static AT: OnceLock<DateTime<Utc>> = OnceLock::new();
    *AT.get_or_init(|| Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc())
}

/// Day 0 of the book: 60 days before the evaluation day, so day 59 is its eve and nothing is in
/// the future.
fn day0() -> NaiveDate {
    evaluated_at().date_naive() - Days::new(60)
}

fn day(n: u64) -> NaiveDate {
    day0() + Days::new(n)
}

fn noon(n: u64) -> DateTime<Utc> {
    day(n).and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()).and_utc()
}

fn track(account: &str, user: &str, event: &str, n: u64) -> Value {
    json!({"type": "track", "userId": user, "event": event, "timestamp": noon(n).to_rfc3339(),
           "messageId": format!("{account}-{event}-{n}"), "context": {"groupId": account}})
}

/// - fading: logs in daily on days 0–20, then nobody does; "Account Churned" on day 35. The
///   7-day inactivity rule first holds at the end of day 27 (7.5 days): lead time 8 days.
/// - contracting: logs in on days 0–25 (fires day 32); its group traits say `contracted_at` day
///   45: lead time 13 days, from a trait rather than an event.
/// - noisy: a gap on days 11–24 (fires day 17, resolves day 25), no outcome: a false alarm on a
///   healthy account.
/// - renewing: logs in every day; "Subscription Renewed" on day 40: healthy and renewed.
fn book() -> Vec<Value> {
    let mut msgs = Vec::new();
    let logins = |account: &str, days: &mut dyn Iterator<Item = u64>| -> Vec<Value> {
        days.map(|n| track(account, &format!("{account}-u1"), "Signed In", n)).collect()
    };
    msgs.extend(logins("fading", &mut (0..=20)));
    msgs.push(track("fading", "fading-u1", "Account Churned", 35));
    msgs.extend(logins("contracting", &mut (0..=25)));
    msgs.push(json!({"type": "group", "userId": "contracting-u1", "groupId": "contracting",
                     "timestamp": noon(1).to_rfc3339(), "messageId": "contracting-group",
                     "traits": {"name": "Contracting Inc", "contracted_at": day(45).to_string()}}));
    msgs.extend(logins("noisy", &mut (0..=10).chain(25..=59)));
    msgs.extend(logins("renewing", &mut (0..=59)));
    msgs.push(track("renewing", "renewing-u1", "Subscription Renewed", 40));
    msgs
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn segment_outcomes_are_scored_with_their_lead_times() {
    let stack = Stack::from_env("outcomes");
    let mut cfg = testkit::aggregator::config(&stack, "outcomes", 2).await;
    cfg.rules_file = Some(testkit::aggregator::rules_file(&stack, RULES));
    cfg.batch.max_wait_ms = 200;
    cfg.evaluation.interval_ms = 500;
    // The history arrives all at once and old: judged 1 s after it stopped arriving, not after the
    // default 5 minutes (the settling itself is tests/timeline.rs's).
    cfg.evaluation.settle_ms = 1_000;
    let cfg = cfg.build_and_validate().unwrap();
    let mut ingest_cfg = testkit::ingest::config_for(&stack.kafka, KEY, "e2e-segment");
    ingest_cfg.kafka.topic = cfg.kafka.events_topic.clone();
    let ingest = testkit::ingest::serve(ingest_cfg).await;
    let aggregator = testkit::aggregator::start_at(cfg.clone(), Clock::fixed(evaluated_at())).await;

    let msgs = book();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/batch", ingest.url))
        .basic_auth(KEY, Some(""))
        .json(&json!({"batch": msgs}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!((body["accepted"].as_u64(), &body["rejected"]), (Some(msgs.len() as u64), &json!([])), "{body}");
    let db = stack.database();
    let stored = stack
        .wait_for_count(&format!("SELECT count() AS n FROM {db}.events"), msgs.len() as u64, Duration::from_secs(60))
        .await;
    assert_eq!(stored, msgs.len() as u64);

    // The outcome events, as analysts read them.
    let rows = stack
        .query(&format!(
            "SELECT account_id, outcome, toString(toDate(occurred_at, 'UTC')) AS day, source, message_id
             FROM {db}.account_outcomes ORDER BY account_id"
        ))
        .await;
    assert_eq!(
        rows,
        [
            json!({"account_id": "fading", "outcome": "churned", "day": day(35).to_string(), "source": "e2e-segment",
                   "message_id": "fading-Account Churned-35"}),
            json!({"account_id": "renewing", "outcome": "renewed", "day": day(40).to_string(), "source": "e2e-segment",
                   "message_id": "renewing-Subscription Renewed-40"}),
        ]
    );

    // The live evaluator (at the start of day 60) finds fading and contracting quiet: two open
    // episodes, silent since noon of days 20 and 25.
    let open_sql = format!("SELECT account_id, rule_id, severity, reason FROM {db}.open_alerts ORDER BY account_id");
    let open = wait_for(&stack, &open_sql, 2).await;
    assert_eq!(
        open,
        [
            json!({"account_id": "contracting", "rule_id": "quiet_7d", "severity": "critical",
                   "reason": "No login for 34 days"}),
            json!({"account_id": "fading", "rule_id": "quiet_7d", "severity": "critical",
                   "reason": "No login for 39 days"}),
        ]
    );
    // contracting logs in a second before the evaluator's now: its episode resolves and leaves
    // the view; the log keeps both rows.
    let late = (evaluated_at() - chrono::Duration::seconds(1)).to_rfc3339();
    let login_now = json!({"userId": "contracting-u1", "event": "Signed In", "messageId": "contracting-now",
                           "timestamp": late, "context": {"groupId": "contracting"}});
    let r = reqwest::Client::new()
        .post(format!("{}/v1/track", ingest.url))
        .basic_auth(KEY, Some(""))
        .json(&login_now)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let open = wait_for(&stack, &format!("SELECT account_id FROM {db}.open_alerts"), 1).await;
    assert_eq!(open, [json!({"account_id": "fading"})]);
    let log =
        stack.query(&format!("SELECT status FROM {db}.alerts WHERE account_id = 'contracting' ORDER BY status")).await;
    assert_eq!(log, [json!({"status": "firing"}), json!({"status": "resolved"})]);
    ingest.stop().await.unwrap();
    aggregator.stop().await.unwrap();

    // Every outcome, the trait one included.
    let outcomes = Warehouse::new(&cfg.clickhouse).outcomes().await.unwrap();
    let o = |a: &str, outcome, n, from| RecordedOutcome { account_id: a.into(), outcome, on: day(n), from };
    assert_eq!(
        outcomes,
        [
            o("contracting", Outcome::Contracted, 45, OutcomeSource::Trait),
            o("fading", Outcome::Churned, 35, OutcomeSource::Event),
            o("renewing", Outcome::Renewed, 40, OutcomeSource::Event),
        ]
    );

    // The scored backtest over days 1–50 (50 days), horizon 90 days.
    let rules = RuleSet::load(cfg.rules_file.as_deref()).unwrap();
    let (from, to) = (day(1), day(50));
    let replayed = replay(&cfg, rules.clone(), from, to, end_of_day(to), |_, _| {}).await.unwrap();
    assert_eq!(replayed.accounts, ["contracting", "fading", "noisy", "renewing"]);
    let last: Vec<(&str, Option<u32>)> =
        replayed.last_rows.iter().map(|r| (r.account_id.as_str(), r.days_since_last_login)).collect();
    assert_eq!(last, [("contracting", Some(25)), ("fading", Some(30)), ("noisy", Some(0)), ("renewing", Some(0))]);
    let fired: Vec<(String, NaiveDate)> = replayed
        .alerts
        .iter()
        .filter(|a| a.status == schemas::alert::AlertStatus::Firing)
        .map(|a| (a.account_id.clone(), a.fired_at.date_naive()))
        .collect();
    assert_eq!(
        fired,
        [("noisy".to_owned(), day(17)), ("fading".to_owned(), day(27)), ("contracting".to_owned(), day(32))]
    );

    let s = score(&replayed, &outcomes, &rules, from, to, 90);
    let all = &s.overall;
    assert_eq!((s.accounts, s.lost_outside), (4, 0));
    assert_eq!((all.positives, all.caught, all.missed), (2, 2, 0));
    assert_eq!(all.lead_days, [8, 13], "fading: day 35 − day 27; contracting: day 45 − day 32");
    assert_eq!((all.lead_days_median, all.lead_days_p90), (Some(10.5), Some(13.0)));
    assert_eq!(all.recall, Some(1.0));
    assert_eq!((all.alerted, all.true_alarms, all.false_alarms), (3, 2, 1));
    assert_eq!(all.precision, Some(2.0 / 3.0));
    assert_eq!((all.healthy, all.renewed, all.healthy_firings), (2, 1, 1), "renewing counts as healthy");
    assert_eq!(all.alerts_per_healthy_account_month, Some(1.0 / (2.0 * 50.0 / 30.0)));
    assert_eq!(s.rules.len(), 1);
    assert_eq!(s.rules[0].lead_days, all.lead_days);
    assert!(
        s.table().contains("4 accounts = 2 churned/contracted in the window + 2 healthy (1 renewed)"),
        "{}",
        s.table()
    );
}

/// Polls `sql` until it returns `n` rows (or 30 s pass), then returns the rows.
async fn wait_for(stack: &Stack, sql: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = stack.try_query(sql).await.unwrap_or_default();
        if rows.len() == n || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
