//! Retention on the real ClickHouse 18.16 (docs/privacy.md#retention): the pass drops every
//! partition whose days are all past its class's limit and keeps the rest, row for row; and at
//! the minimum limits the config allows, the metrics an evaluation computes are the same as
//! with the whole history. (Current ClickHouse takes the limits as `TTL`:
//! deploy/local/chdb_privacy.py runs those statements in chDB.)
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::Arc;

use aggregator::config::RetentionMode;
use aggregator::privacy::retention::Retention;
use aggregator::{Clock, Ownership, Telemetry};
use chrono::{DateTime, Duration, Utc};
use testkit::Stack;
use warehouse::Warehouse;

fn now() -> DateTime<Utc> {
    "2026-12-04T12:00:00Z".parse().unwrap()
}

/// Inserts one login per (account, user, instant) straight into `events` (the rollups follow by
/// their views), on `topic`'s partition 0.
async fn logins(stack: &Stack, topic: &str, rows: &[(&str, &str, DateTime<Utc>)]) {
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, (account, user, at))| {
            let at = at.format("%Y-%m-%d %H:%M:%S");
            format!("('m{i}-{account}-{user}', '{account}', '{user}', 'login', 'login', toDateTime('{at}', 'UTC'), toDateTime('{at}', 'UTC'), '{topic}', 0, {i})")
        })
        .collect();
    stack
        .execute(&format!(
            "INSERT INTO {}.events (message_id, account_id, user_id, kind, event, timestamp, received_at, kafka_topic, kafka_partition, kafka_offset) VALUES {}",
            stack.database(),
            values.join(", ")
        ))
        .await;
}

async fn partitions(stack: &Stack, table: &str) -> Vec<String> {
    let rows = stack
        .query(&format!(
            "SELECT DISTINCT partition FROM system.parts WHERE database = '{}' AND table = '{table}' AND active ORDER BY partition",
            stack.database()
        ))
        .await;
    rows.iter().map(|r| r["partition"].as_str().unwrap().to_owned()).collect()
}

fn retention(cfg: &aggregator::AggregatorConfig) -> Retention {
    Retention::new(
        Warehouse::new(&cfg.clickhouse),
        cfg.retention.clone(),
        Arc::new(Ownership::fixed([0])),
        Arc::new(Telemetry::new()),
        Clock::fixed(now()),
    )
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn partitions_past_their_class_limit_are_dropped_and_the_rest_kept() {
    let stack = Stack::from_env("retention_drop");
    let mut raw = testkit::aggregator::config(&stack, "retention", 1).await;
    raw.retention.mode = RetentionMode::Partitions;
    (raw.retention.raw_events_days, raw.retention.health_history_days, raw.retention.alerts_days) = (200, 400, 365);
    let cfg = raw.build_and_validate().unwrap();
    Warehouse::new(&cfg.clickhouse).migrate().await.unwrap();
    let db = stack.database();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let topic = cfg.kafka.events_topic.clone();
    logins(
        &stack,
        &topic,
        &[
            ("acme", "u1", at("2025-01-15T10:00:00Z")),
            ("acme", "u1", at("2026-05-10T10:00:00Z")),
            ("acme", "u2", at("2026-05-11T10:00:00Z")),
            ("acme", "u1", at("2026-11-20T10:00:00Z")),
        ],
    )
    .await;
    stack
        .execute(&format!(
            "INSERT INTO {db}.alerts (alert_id, account_id, rule_id, severity, status, fired_at, recorded_at) VALUES
             ('old', 'acme', 'r', 'warning', 'firing', toDateTime('2024-06-01 00:00:00', 'UTC'), toDateTime('2024-06-01 00:00:00', 'UTC')),
             ('new', 'acme', 'r', 'warning', 'firing', toDateTime('2026-11-01 00:00:00', 'UTC'), toDateTime('2026-11-01 00:00:00', 'UTC'))"
        ))
        .await;
    assert_eq!(partitions(&stack, "events").await, ["202501", "202605", "202611"]);
    assert_eq!(partitions(&stack, "account_daily").await, ["202501", "202605", "202611"]);

    let r = retention(&cfg);
    assert_eq!(r.mode().await.unwrap(), RetentionMode::Partitions);
    let dropped = r.pass().await.unwrap();
    let names: Vec<String> = dropped.iter().map(|d| format!("{}/{}", d.table, d.partition)).collect();
    // Events: January 2025 ended more than 200 days ago, May 2026 did not. Daily rollups: 400
    // days. Alerts: 365 days. The member blocks of January 2025 (and the block it carries into)
    // ended more than 400 days ago.
    for gone in ["events/202501", "account_daily/202501", "alerts/202406"] {
        assert!(names.contains(&gone.to_owned()), "{gone} dropped: {names:?}");
    }
    assert_eq!(partitions(&stack, "events").await, ["202605", "202611"]);
    assert_eq!(partitions(&stack, "account_daily").await, ["202605", "202611"]);
    assert_eq!(partitions(&stack, "alerts").await, ["202611"]);
    let members = partitions(&stack, "account_members").await;
    assert!(
        !members.is_empty() && members.iter().all(|e| e.parse::<u32>().unwrap() * 64 + 63 + 400 >= 20_791),
        "{members:?}"
    );
    let kept = stack.query(&format!("SELECT count() AS n FROM {db}.events")).await;
    assert_eq!(kept[0]["n"], "3", "the rows of kept partitions are all there");
    assert!(r.pass().await.unwrap().is_empty(), "a second pass has nothing left to drop");
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn at_the_minimum_limits_the_metrics_are_those_of_the_whole_history() {
    let stack = Stack::from_env("retention_min");
    let mut raw = testkit::aggregator::config(&stack, "retention-min", 1).await;
    raw.retention.mode = RetentionMode::Partitions;
    (raw.retention.raw_events_days, raw.retention.health_history_days, raw.retention.alerts_days) = (35, 120, 90);
    let cfg = raw.build_and_validate().unwrap();
    Warehouse::new(&cfg.clickhouse).migrate().await.unwrap();
    let db = stack.database();
    // 200 days of a steady team of three (one of them away on weekends), then a slower week.
    let mut rows = Vec::new();
    for day in 1..=200 {
        let at = now() - Duration::days(day) + Duration::hours(1);
        for user in ["ann", "bob", "cleo"] {
            let weekend = matches!(chrono::Datelike::weekday(&at), chrono::Weekday::Sat | chrono::Weekday::Sun);
            if user == "cleo" && (weekend || day <= 7) {
                continue;
            }
            rows.push(("steady", user, at));
        }
    }
    logins(&stack, &cfg.kafka.events_topic, &rows).await;
    let metrics = |label: &'static str| {
        let stack = &stack;
        let db = db.clone();
        async move {
            let q = format!(
                "SELECT active_users_7d, active_users_30d, active_users_baseline, logins_baseline, health_score, health_band
                 FROM {db}.account_metrics FINAL WHERE account_id = 'steady'"
            );
            let row = stack.query(&q).await.into_iter().next().unwrap_or_else(|| panic!("metrics {label}"));
            row.to_string()
        }
    };
    testkit::console::evaluate_live(&cfg, now()).await;
    let whole = metrics("with the whole history").await;
    assert!(whole.contains("\"active_users_baseline\":3"), "a baseline from weeks of history: {whole}");

    let dropped = retention(&cfg).pass().await.unwrap();
    assert!(dropped.iter().any(|d| d.table == "events"), "old raw events went: {dropped:?}");
    assert!(dropped.iter().any(|d| d.table == "account_daily"), "old daily rollups went: {dropped:?}");
    let left = stack.query(&format!("SELECT toDate(min(timestamp)) AS first FROM {db}.events")).await;
    assert!(left[0]["first"].as_str().unwrap() >= "2026-10-01", "{left:?}");

    testkit::console::evaluate_live(&cfg, now()).await;
    assert_eq!(metrics("at the minimum retention").await, whole);
}
