//! The whole pipeline against the real broker and ClickHouse: HTTP → ingest → Kafka →
//! aggregator → ClickHouse rows and rollups → rule → exactly one alert on the alert topic.
//!
//! Run by `deploy/local/test.sh` (it starts the stack and sets UPTAKE_TEST_KAFKA and
//! UPTAKE_TEST_CLICKHOUSE); ignored by a bare `cargo test`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, Utc};
use serde_json::{json, Value};
use testkit::Stack;

const KEY: &str = "e2e-write-key-0123456789abcdef01234";

/// Noon UTC `days` days before today: safely inside that day's rollup whatever the hour now.
fn days_ago(days: u64) -> DateTime<Utc> {
    (Utc::now().date_naive() - Days::new(days)).and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()).and_utc()
}

struct Sent {
    message_id: String,
    account_id: String,
    user_id: String,
    kind: &'static str,
    feature: String,
    uses: u64,
    records: u64,
    timestamp: DateTime<Utc>,
}

fn login(n: usize, account: &str, user: &str, days: u64) -> Sent {
    Sent {
        message_id: format!("{account}-{n:03}"),
        account_id: account.into(),
        user_id: user.into(),
        kind: "login",
        feature: String::new(),
        uses: 0,
        records: 0,
        timestamp: days_ago(days),
    }
}

fn to_json(s: &Sent) -> Value {
    let mut v = json!({"kind": s.kind, "account_id": s.account_id, "user_id": s.user_id,
                       "message_id": s.message_id, "timestamp": s.timestamp.to_rfc3339()});
    match s.kind {
        "feature_used" => {
            v["feature"] = json!(s.feature);
            v["count"] = json!(s.uses);
        }
        "data_volume" => v["records"] = json!(s.records),
        _ => {}
    }
    v
}

/// acme: 6 users active 8–12 days ago, only 2 in the last week (−67 %) → must alert.
/// globex: the same 4 users both weeks → must not.
fn book() -> Vec<Sent> {
    let mut sent = Vec::new();
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    for (i, user) in ["u1", "u2", "u3", "u4", "u5", "u6"].iter().enumerate() {
        sent.push(login(next(), "acme", user, 8 + i as u64 % 5));
    }
    for (user, days) in [("u1", 2), ("u2", 3), ("u1", 5)] {
        sent.push(login(next(), "acme", user, days));
    }
    let mut feature = login(next(), "acme", "u1", 2);
    feature.kind = "feature_used";
    feature.feature = "reports".into();
    feature.uses = 4;
    sent.push(feature);
    let mut data = login(next(), "acme", "u2", 3);
    data.kind = "data_volume";
    data.records = 250;
    sent.push(data);
    for (user, days) in [("g1", 9), ("g2", 10), ("g3", 11), ("g4", 9), ("g1", 1), ("g2", 2), ("g3", 3), ("g4", 4)] {
        sent.push(login(next(), "globex", user, days));
    }
    sent
}

/// ClickHouse 18.16 quotes 64-bit integers in JSON: compare rows with every value as a string.
fn as_strings(row: &Value) -> BTreeMap<String, String> {
    row.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect()
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn events_flow_to_clickhouse_and_one_alert_fires_for_the_declining_account() {
    let stack = Stack::from_env("e2e");
    let mut agg_cfg = testkit::aggregator::config(&stack, "aggregator", 2).await;
    let (events_topic, alerts_topic) = (agg_cfg.kafka.events_topic.clone(), agg_cfg.kafka.alerts_topic.clone());

    // ingest, on port 0; its /readyz is on its admin listener.
    let mut ingest_cfg = testkit::ingest::config_for(&stack.kafka, KEY, "e2e");
    ingest_cfg.kafka.topic = events_topic.clone();
    let ingest = testkit::ingest::serve(ingest_cfg).await;
    let (ingest_url, ingest_admin_url) = (ingest.url.clone(), ingest.admin_url.clone());

    // aggregator, admin on port 0, evaluating every half second, with a week-over-week rule a
    // customer could write (the shipped rules compare with a four-week baseline this
    // twelve-day book does not have; docs/SIGNAL.md tests those).
    agg_cfg.rules_file = Some(testkit::aggregator::week_over_week_rules(&stack));
    agg_cfg.batch.max_wait_ms = 200;
    agg_cfg.evaluation.interval_ms = 500;
    // The history arrives all at once and old: judged 1 s after it stopped arriving, not after the
    // default 5 minutes (the settling itself is tests/timeline.rs's).
    agg_cfg.evaluation.settle_ms = 1_000;
    // Consumer-lag statistics every half second instead of every 15 s.
    agg_cfg.kafka.client.librdkafka.insert("statistics.interval.ms".into(), "500".into());
    let aggregator = testkit::aggregator::start(agg_cfg.build_and_validate().unwrap()).await;
    let admin_url = aggregator.admin_url.clone();

    // Send the book over HTTP: acme as one batch with Basic auth, globex one event at a time
    // with Bearer auth. Every request must be acknowledged.
    let sent = book();
    let http = reqwest::Client::new();
    let (acme, globex): (Vec<&Sent>, Vec<&Sent>) = sent.iter().partition(|s| s.account_id == "acme");
    let batch = json!({ "batch": acme.iter().map(|s| to_json(s)).collect::<Vec<_>>() });
    let r = http.post(format!("{ingest_url}/v1/events")).basic_auth(KEY, Some("")).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], acme.len());
    for s in &globex {
        let r = http.post(format!("{ingest_url}/v1/events")).bearer_auth(KEY).json(&to_json(s)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    // A request with a wrong key writes nothing.
    let r = http
        .post(format!("{ingest_url}/v1/events"))
        .bearer_auth("not-a-key-at-all")
        .json(&to_json(&login(999, "acme", "intruder", 1)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Exactly the sent events arrive in ClickHouse, column for column.
    let db = stack.database();
    let count_sql = format!("SELECT count() AS n FROM {db}.events");
    let stored = stack.wait_for_count(&count_sql, sent.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(stored, sent.len() as u64, "events stored in ClickHouse");
    let rows = stack
        .query(&format!(
            "SELECT message_id, account_id, user_id, kind, feature, uses, records, toUnixTimestamp(timestamp) AS ts, source
             FROM {db}.events ORDER BY message_id"
        ))
        .await;
    let mut expected: Vec<&Sent> = sent.iter().collect();
    expected.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(rows.len(), expected.len());
    for (row, s) in rows.iter().zip(&expected) {
        let want = json!({
            "message_id": s.message_id, "account_id": s.account_id, "user_id": s.user_id, "kind": s.kind,
            "feature": s.feature, "uses": s.uses.to_string(), "records": s.records.to_string(),
            "ts": s.timestamp.timestamp().to_string(), "source": "e2e",
        });
        assert_eq!(as_strings(row), as_strings(&want));
    }

    // The daily rollup merges distinct users per day. An INSERT's rows reach `events` a moment
    // before its materialized views' tables: read until the rollup shows them (or 10 s pass).
    let day = |d: u64| days_ago(d).date_naive().to_string();
    let want_daily = [(12, 1, 1), (11, 1, 1), (10, 1, 1), (9, 1, 1), (8, 2, 2), (5, 1, 1), (3, 1, 1), (2, 1, 1)];
    let want_daily: Vec<(String, String, String)> =
        want_daily.iter().map(|(d, u, l)| (day(*d), u.to_string(), l.to_string())).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got_daily = loop {
        let daily = stack
            .query(&format!(
                "SELECT toString(day) AS day, uniqExactMerge(active_users) AS users, sumMerge(logins) AS logins
                 FROM {db}.account_daily WHERE account_id = 'acme' GROUP BY day ORDER BY day"
            ))
            .await;
        let got: Vec<(String, String, String)> = daily
            .iter()
            .map(|r| {
                (
                    r["day"].as_str().unwrap().to_owned(),
                    r["users"].to_string().replace('"', ""),
                    r["logins"].to_string().replace('"', ""),
                )
            })
            .collect();
        if got == want_daily || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got_daily, want_daily, "acme daily rollup");

    // Rolling metrics: acme 6 → 2 weekly active users, globex 4 → 4.
    let metrics_sql = format!(
        "SELECT account_id, active_users_7d AS cur, active_users_prev_7d AS prev, logins_7d AS logins, records_30d AS records,
                features_used_30d AS features
         FROM {db}.account_metrics FINAL ORDER BY account_id"
    );
    // Evaluation passes run every half second; one may have run before the last globex event
    // was stored. Wait (up to 20 s) for a pass over the complete data, then compare exactly.
    let want = [
        "{account_id:acme,cur:2,features:1,logins:3,prev:6,records:250}",
        "{account_id:globex,cur:4,features:0,logins:4,prev:4,records:0}",
    ];
    let mut flat: Vec<String> = Vec::new();
    for _ in 0..100 {
        flat = stack.query(&metrics_sql).await.iter().map(|r| r.to_string().replace('"', "")).collect();
        if flat == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(flat, want);

    // Exactly one alert, for acme, even though the evaluator keeps running: wait for it, then
    // let several more evaluation passes go by and read the whole topic.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stack.wait_for_count(&format!("SELECT count() AS n FROM {db}.alerts"), 1, Duration::from_secs(1)).await == 0 {
        assert!(std::time::Instant::now() < deadline, "no alert recorded within 30 s");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = stack.read_topic(&alerts_topic, Duration::from_secs(8)).await;
    assert_eq!(alerts.len(), 1, "exactly one alert record: {alerts:?}");
    let (key, alert) = &alerts[0];
    assert_eq!(key, "acme");
    assert_eq!(alert["account_id"], "acme");
    assert_eq!(alert["rule_id"], "active_users_drop");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["reason"], "Weekly active users fell 67 % (6 → 2) vs the previous 7 days");
    assert_eq!(alert["metrics"]["active_users_7d"], 2.0);
    assert_eq!(alert["metrics"]["active_users_prev_7d"], 6.0);
    let table = stack.query(&format!("SELECT alert_id, account_id, status FROM {db}.alerts")).await;
    assert_eq!(table.len(), 1);
    assert_eq!(table[0]["alert_id"], alert["alert_id"], "topic and table carry the same alert");

    // The admin endpoint reports what happened.
    let metrics_text = http.get(format!("{admin_url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics_text.contains(&format!("uptake_aggregator_events_stored_total {}", sent.len())), "{metrics_text}");
    assert_eq!(http.get(format!("{admin_url}/readyz")).send().await.unwrap().status(), 200);
    // Consumer lag, per owned partition, from librdkafka's statistics: everything is stored and
    // committed, so both partitions report 0 once a report has come in after the last commit.
    let lag_zero = |text: &str| {
        (0..2).all(|p| text.contains(&format!("uptake_aggregator_consumer_lag_messages{{partition=\"{p}\"}} 0\n")))
    };
    let mut metrics_text = String::new();
    for _ in 0..40 {
        metrics_text = http.get(format!("{admin_url}/metrics")).send().await.unwrap().text().await.unwrap();
        if lag_zero(&metrics_text) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(lag_zero(&metrics_text), "{metrics_text}");
    assert_eq!(http.get(format!("{ingest_admin_url}/readyz")).send().await.unwrap().status(), 200);

    ingest.stop().await.unwrap();
    aggregator.stop().await.unwrap();
}
