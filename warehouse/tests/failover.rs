//! Failover against the real ClickHouse: with the configured `url` dead (nothing listens) and
//! the real server as a failover endpoint, the migrations run, rows are inserted and read back.
//!
//! Run by `deploy/local/test.sh` (UPTAKE_TEST_CLICKHOUSE); ignored by a bare `cargo test`.

use warehouse::{ClickHouseConfig, Warehouse};

#[tokio::test]
#[ignore = "needs the local ClickHouse: run deploy/local/test.sh"]
async fn a_dead_first_endpoint_fails_over_to_the_live_replica() {
    let live = std::env::var("UPTAKE_TEST_CLICKHOUSE").expect("UPTAKE_TEST_CLICKHOUSE");
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let database = format!("uptake_failover_{}", std::process::id());
    let cfg = ClickHouseConfig {
        url: format!("http://{dead}"),
        failover_urls: vec![live.clone()],
        database: database.clone(),
        ..Default::default()
    };
    cfg.validate().unwrap();
    let wh = Warehouse::new(&cfg);
    let applied = wh.migrate().await.unwrap_or_else(|e| panic!("migrations through the failover: {e}"));
    assert!(!applied.is_empty(), "the schema was created on the live endpoint");
    wh.query(
        "INSERT INTO {db}.backtest_scores (scored_at, from_day, to_day, horizon_days, rules_digest, score) \
              VALUES (now(), today(), today(), 30, 'failover', '{}')",
    )
    .execute()
    .await
    .unwrap();
    let n: u64 =
        wh.query("SELECT count() FROM {db}.backtest_scores WHERE rules_digest = 'failover'").fetch_one().await.unwrap();
    assert_eq!(n, 1);

    // Read straight from the live server: the rows are there, not anywhere else.
    let direct = Warehouse::new(&ClickHouseConfig { url: live, database, ..Default::default() });
    let n: u64 = direct.query("SELECT count() FROM {db}.backtest_scores").fetch_one().await.unwrap();
    assert_eq!(n, 1);
    direct.query("DROP DATABASE {db}").execute().await.unwrap();
}
