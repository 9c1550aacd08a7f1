//! The deletion worker on the real ClickHouse 18.16 (docs/privacy.md#deletion): a hundred
//! requests filed together are carried out by one batch of mutations — at most two per table,
//! not two hundred per table — and every one of them finishes verified, while the people nobody
//! asked about keep every row. Requests still inside their grace period are taken (`running`)
//! but not carried out.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::Arc;

use aggregator::privacy::DeletionWorker;
use aggregator::{Clock, Ownership, Telemetry};
use chrono::{DateTime, Utc};
use testkit::Stack;
use warehouse::columns::to_datetime;
use warehouse::rows::RegulationRow;
use warehouse::Warehouse;

fn now() -> DateTime<Utc> {
    "2026-12-04T12:00:00Z".parse().unwrap()
}

fn request(i: usize, user: String, filed: DateTime<Utc>) -> RegulationRow {
    RegulationRow {
        regulation_id: format!("r-{i:03}"),
        kind: "delete".into(),
        subject_kind: "user".into(),
        subject_ids: vec![user],
        requested_by: "dpo".into(),
        requested_at: to_datetime(filed),
        status: "received".into(),
        detail: String::new(),
        updated_at: to_datetime(filed),
        version: 1,
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_hundred_requests_are_one_batch_of_mutations_and_each_is_verified() {
    let stack = Stack::from_env("deletion_batch");
    let mut raw = testkit::aggregator::config(&stack, "deletion", 1).await;
    raw.privacy.grace_ms = 60_000;
    let cfg = raw.build_and_validate().unwrap();
    let wh = Warehouse::new(&cfg.clickhouse);
    wh.migrate().await.unwrap();
    let db = stack.database();
    // 120 people of 12 accounts, 5 logins each; the first 100 ask to be deleted.
    let values: Vec<String> = (0..600)
        .map(|i| {
            let (user, account) = (i % 120, i % 12);
            format!(
                "('m{i}', 'acct-{account}', 'user-{user:03}', 'login', toDateTime('2026-11-{:02} 10:00:00', 'UTC'), now(), 't', 0, {i})",
                1 + i % 28
            )
        })
        .collect();
    stack
        .execute(&format!(
            "INSERT INTO {db}.events (message_id, account_id, user_id, kind, timestamp, received_at, kafka_topic, kafka_partition, kafka_offset) VALUES {}",
            values.join(", ")
        ))
        .await;
    let mut rows: Vec<RegulationRow> =
        (0..100).map(|i| request(i, format!("user-{i:03}"), now() - chrono::Duration::minutes(5))).collect();
    // One filed a second ago: inside its grace period.
    rows.push(request(100, "user-100".into(), now() - chrono::Duration::seconds(1)));
    wh.insert_rows(&rows).await.unwrap();

    let mut pcfg = cfg.privacy.clone();
    pcfg.batch_requests = 200;
    let worker = DeletionWorker::new(
        wh.clone(),
        pcfg,
        Arc::new(Ownership::fixed([0])),
        Arc::new(Telemetry::new()),
        Clock::fixed(now()),
    );
    assert_eq!(worker.batch().await.unwrap(), 100, "the hundred past their grace");

    let tables = wh.privacy_tables().await.unwrap();
    let mutations = stack.query(&format!("SELECT count() AS n FROM system.mutations WHERE database = '{db}'")).await;
    let n: usize = mutations[0]["n"].as_str().unwrap().parse().unwrap();
    assert!(n <= 2 * tables.len(), "{n} mutations for {} tables", tables.len());
    let statuses = stack
        .query(&format!("SELECT status, count() AS n FROM {db}.regulations FINAL GROUP BY status ORDER BY status"))
        .await;
    let by: Vec<(String, String)> = statuses
        .iter()
        .map(|r| (r["status"].as_str().unwrap().to_owned(), r["n"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(by, [("finished".to_owned(), "100".to_owned()), ("running".to_owned(), "1".to_owned())]);
    let left = stack
        .query(&format!(
            "SELECT countIf(user_id < 'user-100') AS asked, countIf(user_id >= 'user-100') AS others FROM {db}.events"
        ))
        .await;
    assert_eq!((left[0]["asked"].as_str(), left[0]["others"].as_str()), (Some("0"), Some("100")), "{left:?}");
    let members = stack
        .query(&format!("SELECT uniqExact(member) AS n FROM {db}.account_members WHERE member_kind = 'user'"))
        .await;
    assert_eq!(members[0]["n"], "20", "the 20 others' activity kept");
}
