//! The health-history backfill (`aggregator history`) against the real broker and ClickHouse:
//! events of 40 days through ingest and the aggregator, then `backfill_health` over those days
//! writes one `account_health_daily` row per account and day, each with the score an as-of pass
//! (a one-day `replay`) computes for that day. Also `backtest --score --store`'s row.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeMap;
use std::time::Duration;

use aggregator::backtest::{backfill_health, end_of_day, replay, score};
use aggregator::RuleSet;
use chrono::{Days, NaiveDate, NaiveTime, Utc};
use serde_json::{json, Value};
use testkit::Stack;
use warehouse::rows::BacktestScoreRow;
use warehouse::Warehouse;

const KEY: &str = "history-write-key-0123456789abcdef0";
const DAYS: u64 = 40;

/// Day 0 of the book: `DAYS` days ago, so the last day is yesterday and nothing is in the future.
fn day(n: u64) -> NaiveDate {
    Utc::now().date_naive() - Days::new(DAYS) + Days::new(n)
}

fn login(account: &str, user: usize, n: u64) -> Value {
    let at = day(n).and_time(NaiveTime::from_hms_opt(10 + user as u32, 0, 0).unwrap()).and_utc();
    json!({"kind": "login", "account_id": account, "user_id": format!("{account}-u{user}"),
           "message_id": format!("{account}-{user}-{n}"), "timestamp": at.to_rfc3339()})
}

/// steady: 4 users every day. fading: 4 users until day 20, then one, then nobody from day 30:
/// its score must fall over the backfilled days. sporadic: one user every third day.
fn book() -> Vec<Value> {
    let mut events = Vec::new();
    for n in 0..DAYS {
        events.extend((0..4).map(|u| login("steady", u, n)));
        let fading_users = match n {
            0..20 => 4,
            20..30 => 1,
            _ => 0,
        };
        events.extend((0..fading_users).map(|u| login("fading", u, n)));
        if n % 3 == 0 {
            events.push(login("sporadic", 0, n));
        }
    }
    events
}

fn number(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(f64::NAN)
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn the_backfill_writes_each_days_health_as_an_as_of_pass_computes_it() {
    let stack = Stack::from_env("history");
    let mut cfg = testkit::aggregator::config(&stack, "history", 2).await;
    cfg.batch.max_wait_ms = 200;
    let cfg = cfg.build_and_validate().unwrap();
    let mut ingest_cfg = testkit::ingest::config_for(&stack.kafka, KEY, "history");
    ingest_cfg.kafka.topic = cfg.kafka.events_topic.clone();
    let ingest = testkit::ingest::serve(ingest_cfg).await;
    let aggregator = testkit::aggregator::start(cfg.clone()).await;
    let events = book();
    let r = reqwest::Client::new()
        .post(format!("{}/v1/events", ingest.url))
        .bearer_auth(KEY)
        .json(&json!({"batch": events}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let db = stack.database();
    let stored = stack
        .wait_for_count(&format!("SELECT count() AS n FROM {db}.events"), events.len() as u64, Duration::from_secs(60))
        .await;
    assert_eq!(stored, events.len() as u64);
    ingest.stop().await.unwrap();
    aggregator.stop().await.unwrap();

    let (from, to) = (day(0), day(DAYS - 1));
    let mut told = Vec::new();
    let written = backfill_health(&cfg, from, to, |d, n| told.push((d, n))).await.unwrap();
    assert_eq!((written.days, written.rows), (DAYS as usize, 3 * DAYS as usize));
    assert_eq!(told.first(), Some(&(from, 3)));

    // One row per account and day (the live evaluator may have added today's, outside the range).
    let per_day = stack
        .query(&format!(
            "SELECT account_id, count() AS days, uniqExact(day) AS distinct_days FROM {db}.account_health_daily FINAL
             WHERE day BETWEEN toDate('{from}') AND toDate('{to}') GROUP BY account_id ORDER BY account_id"
        ))
        .await;
    for (row, account) in per_day.iter().zip(["fading", "sporadic", "steady"]) {
        assert_eq!(row["account_id"], account);
        assert_eq!(number(&row["days"]), DAYS as f64, "{row}");
        assert_eq!(number(&row["distinct_days"]), DAYS as f64, "{row}");
    }
    assert_eq!(per_day.len(), 3, "{per_day:?}");

    // Each sampled day's stored score is what an as-of pass of that day computes.
    let stored: BTreeMap<(String, String), Option<f64>> = stack
        .query(&format!(
            "SELECT account_id, toString(day) AS d, health_score FROM {db}.account_health_daily FINAL
             WHERE day BETWEEN toDate('{from}') AND toDate('{to}')"
        ))
        .await
        .iter()
        .map(|r| {
            (
                (r["account_id"].as_str().unwrap().to_owned(), r["d"].as_str().unwrap().to_owned()),
                Some(number(&r["health_score"])).filter(|_| !r["health_score"].is_null()),
            )
        })
        .collect();
    for n in [5, 25, DAYS - 1] {
        let d = day(n);
        let pass = replay(&cfg, RuleSet::default(), d, d, end_of_day(d), |_, _| {}).await.unwrap();
        assert_eq!(pass.last_rows.len(), 3);
        for m in &pass.last_rows {
            let got = stored[&(m.account_id.clone(), d.to_string())];
            let want = m.health_score;
            let same = match (got, want) {
                (Some(g), Some(w)) => (g - w).abs() < 1e-9,
                (g, w) => g == w,
            };
            assert!(same, "{} on {d}: stored {got:?}, as-of pass {want:?}", m.account_id);
        }
    }
    let fading = |n: u64| stored[&("fading".to_owned(), day(n).to_string())].expect("a score");
    let steady = |n: u64| stored[&("steady".to_owned(), day(n).to_string())].expect("a score");
    assert!(fading(DAYS - 1) < fading(19), "fading falls: {} → {}", fading(19), fading(DAYS - 1));
    assert!(steady(DAYS - 1) > fading(DAYS - 1));

    // A stored scored backtest, as `backtest --score --store` writes it.
    let rules = RuleSet::default();
    let scored = score::score(&pass_of(&cfg, from, to).await, &[], &rules, from, to, 90);
    let digest = score::rules_digest(aggregator::DEFAULT_RULES);
    let row =
        BacktestScoreRow::new(Utc::now(), (from, to), 90, digest.clone(), serde_json::to_string(&scored).unwrap());
    Warehouse::new(&cfg.clickhouse).insert_rows(std::slice::from_ref(&row)).await.unwrap();
    let rows = stack
        .query(&format!(
            "SELECT toString(from_day) AS from_day, toString(to_day) AS to_day, horizon_days, rules_digest, score
             FROM {db}.backtest_scores"
        ))
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["from_day"].as_str(), rows[0]["to_day"].as_str()),
        (Some(&*from.to_string()), Some(&*to.to_string()))
    );
    assert_eq!(number(&rows[0]["horizon_days"]), 90.0);
    assert_eq!(rows[0]["rules_digest"].as_str().map(str::len), Some(64));
    assert_eq!(rows[0]["rules_digest"], digest);
    let back: Value = serde_json::from_str(rows[0]["score"].as_str().unwrap()).unwrap();
    assert_eq!(back["accounts"], 3);
}

async fn pass_of(cfg: &aggregator::AggregatorConfig, from: NaiveDate, to: NaiveDate) -> aggregator::backtest::Replay {
    replay(cfg, RuleSet::default(), from, to, end_of_day(to), |_, _| {}).await.unwrap()
}
