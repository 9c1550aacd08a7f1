//! On a sharded, replicated cluster (deploy/local/cluster_test.sh: UPTAKE_TEST_CH_CLUSTER lists
//! every node's URL, shard by shard, replicas in order): an INSERT retried on another node —
//! after a failure whose answer was lost, say — is stored once. The same rows make the same
//! blocks per shard, which each shard's replicas recognise (their block hashes are shared in
//! ZooKeeper). Counted on every replica of every shard. Ignored by a bare `cargo test`.

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
