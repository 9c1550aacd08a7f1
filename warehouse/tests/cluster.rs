//! On a sharded, replicated cluster (deploy/local/cluster_test.sh: UPTAKE_TEST_CH_CLUSTER lists
//! every node's URL, shard by shard, replicas in order): an INSERT retried on another node —
//! after a failure whose answer was lost, say — is stored once. The same rows make the same
//! blocks per shard, which each shard's replicas recognise (their block hashes are shared in
//! ZooKeeper). Counted on every replica of every shard. And privacy on the cluster: a person's
//! deletion (mutations ON CLUSTER) and a retention pass reach every replica. Ignored by a bare
//! `cargo test`.

use std::time::Duration;

use warehouse::rows::EventRow;
use warehouse::{ClickHouseConfig, Warehouse};

const REPLICAS: usize = 2;

fn event(i: usize, batch: &str) -> EventRow {
    EventRow {
        message_id: format!("{batch}-{i:04}"),
        account_id: format!("acct-{:02}", i % 20),
        user_id: format!("u{}", i % 7),
        kind: "login".into(),
        event: String::new(),
        feature: String::new(),
        module: String::new(),
        uses: 0,
        records: 0,
        bytes: 0,
        object: String::new(),
        nps: None,
        csat: None,
        ticket_id: String::new(),
        ticket_status: String::new(),
        priority: String::new(),
        outcome: String::new(),
        timestamp: 1_780_000_000 + i as u32,
        received_at: 1_780_000_000 + i as u32,
        source: "test".into(),
        traits: String::new(),
        properties: String::new(),
        kafka_topic: "t".into(),
        kafka_partition: (i % 4) as i32,
        kafka_offset: i as i64,
    }
}

/// Rows of the local `events` table on every node, once each shard's replicas agree.
async fn per_node(nodes: &[String], local: &str) -> Vec<u64> {
    let wh: Vec<Warehouse> = nodes
        .iter()
        .map(|u| Warehouse::new(&ClickHouseConfig { url: u.clone(), database: local.into(), ..Default::default() }))
        .collect();
    for _ in 0..120 {
        let mut counts = Vec::new();
        for w in &wh {
            counts.push(w.query("SELECT count() FROM {db}.events").fetch_one::<u64>().await.unwrap());
        }
        if counts.chunks(REPLICAS).all(|s| s.iter().all(|c| *c == s[0])) {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the replicas of a shard never agreed");
}

#[tokio::test]
#[ignore = "needs the ClickHouse cluster: run deploy/local/cluster_test.sh"]
async fn an_insert_retried_on_another_replica_is_stored_once() {
    let nodes: Vec<String> = std::env::var("UPTAKE_TEST_CH_CLUSTER")
        .expect("UPTAKE_TEST_CH_CLUSTER")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(nodes.len(), 2 * REPLICAS, "2 shards × {REPLICAS} replicas");
    let cluster = std::env::var("UPTAKE_TEST_CH_CLUSTER_NAME").unwrap_or_else(|_| "uptake_cluster".into());
    let database = format!("uptake_retry_{}", std::process::id());
    let local = warehouse::cluster::local_database(&database);
    let via = |i: usize| {
        Warehouse::new(&ClickHouseConfig {
            url: nodes[i].clone(),
            database: database.clone(),
            cluster: cluster.clone(),
            ..Default::default()
        })
    };
    via(0).migrate().await.unwrap_or_else(|e| panic!("migrations ON CLUSTER: {e}"));

    let rows: Vec<EventRow> = (0..200).map(|i| event(i, "first")).collect();
    via(0).insert_rows(&rows).await.unwrap();
    // The retry: the same rows, through a replica of the other shard.
    via(3).insert_rows(&rows).await.unwrap();
    let counts = per_node(&nodes, &local).await;
    let stored: u64 = counts.chunks(REPLICAS).map(|s| s[0]).sum();
    assert_eq!(stored, 200, "stored once across the shards, per node {counts:?}");
    assert!(counts.iter().all(|c| *c > 0), "both shards hold some of the accounts: {counts:?}");
    let distinct: u64 = via(1).query("SELECT uniqExact(message_id) FROM {db}.events").fetch_one().await.unwrap();
    assert_eq!(distinct, 200);

    // Rows that differ are stored: the check above can fail.
    let other: Vec<EventRow> = (0..200).map(|i| event(i, "second")).collect();
    via(2).insert_rows(&other).await.unwrap();
    let counts = per_node(&nodes, &local).await;
    assert_eq!(counts.chunks(REPLICAS).map(|s| s[0]).sum::<u64>(), 400, "per node {counts:?}");

    for db in [&database, &local] {
        via(0).client().query(&format!("DROP DATABASE IF EXISTS {db} ON CLUSTER {cluster}")).execute().await.unwrap();
    }
}

/// A person deleted on the cluster: the mutations run ON CLUSTER on the local tables, and
/// afterwards no replica of any shard holds a row naming them, while everyone else's rows are all
/// there; then the retention pass drops the month past its limit on every replica.
#[tokio::test]
#[ignore = "needs the ClickHouse cluster: run deploy/local/cluster_test.sh"]
async fn a_person_deleted_and_a_month_expired_are_gone_from_every_replica() {
    let nodes: Vec<String> = std::env::var("UPTAKE_TEST_CH_CLUSTER")
        .expect("UPTAKE_TEST_CH_CLUSTER")
        .split(',')
        .map(str::to_owned)
        .collect();
    let cluster = std::env::var("UPTAKE_TEST_CH_CLUSTER_NAME").unwrap_or_else(|_| "uptake_cluster".into());
    let database = format!("uptake_privacy_{}", std::process::id());
    let local = warehouse::cluster::local_database(&database);
    let wh = Warehouse::new(&ClickHouseConfig {
        url: nodes[0].clone(),
        database: database.clone(),
        cluster: cluster.clone(),
        ..Default::default()
    });
    wh.migrate().await.unwrap();
    let rows: Vec<EventRow> = (0..210).map(|i| event(i, "p")).collect();
    wh.insert_rows(&rows).await.unwrap();
    let before = per_node(&nodes, &local).await;
    assert_eq!(before.chunks(REPLICAS).map(|s| s[0]).sum::<u64>(), 210);

    // u3 is one user in seven, spread over accounts on both shards.
    let s = wh.subjects(&[schemas::privacy::Subject::user("u3")]).await.unwrap();
    let tables = wh.privacy_tables().await.unwrap();
    assert!(tables.iter().any(|t| t.table == "events" && t.user_id), "{tables:?}");
    let found = wh.rows_naming(&tables, &s).await.unwrap();
    assert!(found.iter().any(|(t, n)| t == "events" && *n == 30), "{found:?}");
    wh.delete_subjects(&tables, &s).await.unwrap();
    let naming = |node: &String| {
        let w = Warehouse::new(&ClickHouseConfig { url: node.clone(), database: local.clone(), ..Default::default() });
        async move {
            let n: u64 = w.query("SELECT count() FROM {db}.events WHERE user_id = 'u3'").fetch_one().await.unwrap();
            let m: u64 = w
                .query("SELECT count() FROM {db}.account_members WHERE member_kind = 'user' AND member = 'u3'")
                .fetch_one()
                .await
                .unwrap();
            n + m
        }
    };
    let mut left = Vec::new();
    for _ in 0..120 {
        left.clear();
        for node in &nodes {
            left.push(naming(node).await);
        }
        if left.iter().all(|n| *n == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(left.iter().all(|n| *n == 0), "rows naming u3 per node: {left:?}");
    assert!(wh.rows_naming(&tables, &s).await.unwrap().is_empty());
    let after = per_node(&nodes, &local).await;
    assert_eq!(after.chunks(REPLICAS).map(|s| s[0]).sum::<u64>(), 180, "everyone else's rows: {after:?}");

    // The events are of May 2026: past 35 days on 4 December 2026, gone from every replica.
    let limits = warehouse::retention::Limits { raw_events_days: 35, health_history_days: 120, alerts_days: 90 };
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    // A month only the second shard holds (written to its local table): the pass, run through a
    // node of the first shard, must find it too.
    let shard2 = Warehouse::new(&ClickHouseConfig {
        url: nodes[REPLICAS].clone(),
        database: local.clone(),
        ..Default::default()
    });
    let april: Vec<EventRow> =
        (0..5).map(|i| EventRow { timestamp: 1_776_000_000 + i as u32, ..event(i, "april") }).collect();
    shard2.insert_rows(&april).await.unwrap();
    assert_eq!(per_node(&nodes, &local).await.chunks(REPLICAS).map(|s| s[0]).sum::<u64>(), 185);
    let dropped = wh.drop_expired_partitions(&limits, today).await.unwrap();
    for month in ["202604", "202605"] {
        assert!(dropped.iter().any(|d| d.table == "events" && d.partition == month), "{month}: {dropped:?}");
    }
    // A drop a replica had not finished within distributed_ddl_task_timeout goes on in the
    // background (`confirmed: false`): wait for it, as an operator would for the next pass.
    let mut left = per_node(&nodes, &local).await;
    for _ in 0..600 {
        if left.iter().all(|n| *n == 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = per_node(&nodes, &local).await;
    }
    assert!(left.iter().all(|n| *n == 0), "events per node after the drop: {left:?}; dropped {dropped:?}");
    let again = wh.drop_expired_partitions(&limits, today).await.unwrap();
    assert!(!again.iter().any(|d| d.table == "events"), "{again:?}");

    for db in [&database, &local] {
        wh.client().query(&format!("DROP DATABASE IF EXISTS {db} ON CLUSTER {cluster}")).execute().await.unwrap();
    }
}
