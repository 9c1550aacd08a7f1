//! Exactly-once storage against the real broker and ClickHouse: the real `aggregator` binary is
//! SIGKILLed at several points while it consumes; client retries re-send message ids; a poison
//! record sits in the middle. ClickHouse must end up with every event exactly once.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use schemas::event::{Event, EventKind};
use testkit::Stack;

const EVENTS: usize = 30_000;
const RETRIES: usize = 2_000;

fn event(i: usize) -> Event {
    let now = Utc::now();
    let mut e = Event::new(
        EventKind::FeatureUsed,
        format!("msg-{i:06}"),
        format!("acct-{}", i % 40),
        format!("user-{}", i % 300),
        now - chrono::Duration::minutes((i % 600) as i64),
        now,
        "exactly-once".into(),
    );
    e.feature = Some(format!("f{}", i % 7));
    e.count = Some(1);
    e
}

/// The aggregator child process; killed when dropped, so a failing test leaves nothing running.
struct Aggregator(Child);

impl Aggregator {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Aggregator {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_aggregator"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("UPTAKE_LOG_FORMAT", "text")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Aggregator)
        .expect("aggregator binary")
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn sigkill_at_any_moment_and_client_retries_still_store_every_event_once() {
    let stack = Stack::from_env("exactly_once");
    let (events_topic, alerts_topic, dlq_topic) =
        (stack.topic("usage-events"), stack.topic("usage-alerts"), stack.topic("usage-events-dlq"));
    stack.create_topics(&[&events_topic, &alerts_topic, &dlq_topic], 3).await;

    // The events, then client retries of 2,000 of them (same message ids), with a poison record
    // in the middle of the partition of acct-0.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for i in (0..EVENTS).chain(0..RETRIES) {
        let e = event(i);
        let payload = serde_json::to_vec(&e).unwrap();
        let record = FutureRecord::to(&events_topic).key(&e.account_id).payload(&payload);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        if i == EVENTS / 2 {
            let poison = FutureRecord::to(&events_topic).key("acct-0").payload("{not an event");
            deliveries.push(producer.send_result(poison).map_err(|(e, _)| e).unwrap());
        }
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();

    let config = stack.temp_path("aggregator.toml");
    std::fs::write(
        &config,
        format!(
            r#"admin_listen = "127.0.0.1:0"
[kafka]
brokers = "{kafka}"
group_id = "exactly-once-{suffix}"
events_topic = "{events_topic}"
alerts_topic = "{alerts_topic}"
dlq_topic = "{dlq_topic}"
# A killed member's partitions move after the session timeout: keep it short for the test.
librdkafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }}
[clickhouse]
url = "{clickhouse}"
database = "{db}"
[batch]
max_rows = 700
max_wait_ms = 50
"#,
            kafka = stack.kafka,
            suffix = stack.suffix,
            clickhouse = stack.clickhouse,
            db = stack.database(),
        ),
    )
    .unwrap();
    let log = stack.temp_path("aggregator.log");

    // Kill it whenever it has made progress since the last start: mid-batch, between insert and
    // commit, during a rebalance — wherever the moment falls.
    let db = stack.database();
    let count_sql = format!("SELECT count() AS n FROM {db}.events");
    // The schema first (as `aggregator migrate` would), so the progress polls below never race
    // the aggregator's own start-up migration.
    let ch = warehouse::ClickHouseConfig { url: stack.clickhouse.clone(), database: db.clone(), ..Default::default() };
    warehouse::Warehouse::new(&ch).migrate().await.unwrap();
    let mut child = spawn(&config, &log);
    let mut kills = 0;
    let mut last = 0;
    let deadline = Instant::now() + Duration::from_secs(240);
    while kills < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let stored = stack.wait_for_count(&count_sql, 0, Duration::ZERO).await;
        if stored > last && stored < EVENTS as u64 {
            child.kill();
            kills += 1;
            eprintln!("kill {kills} with {stored} events stored");
            last = stored;
            child = spawn(&config, &log);
        }
    }
    assert!(kills >= 2, "the aggregator was killed only {kills} times mid-stream; see {}", log.display());

    let stored = stack.wait_for_count(&count_sql, EVENTS as u64, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // a late duplicate would land now
    let totals = stack
        .query(&format!(
            "SELECT count() AS n, uniqExact(message_id) AS ids, min(message_id) AS lo, max(message_id) AS hi FROM {db}.events"
        ))
        .await;
    let daily = stack.query(&format!("SELECT sumMerge(events) AS n FROM {db}.account_daily")).await;
    let dead = stack.read_records(&dlq_topic, Duration::from_secs(3)).await;
    child.kill();

    eprintln!("stored {stored} after {kills} kills: {totals:?}");
    let n = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    assert_eq!(n(&totals[0]["n"]), EVENTS.to_string(), "rows in events");
    assert_eq!(n(&totals[0]["ids"]), EVENTS.to_string(), "distinct message ids");
    assert_eq!((n(&totals[0]["lo"]), n(&totals[0]["hi"])), ("msg-000000".into(), format!("msg-{:06}", EVENTS - 1)));
    assert_eq!(n(&daily[0]["n"]), EVENTS.to_string(), "the daily rollup counted each event once");
    assert_eq!(dead.len(), 1, "the poison record, dead-lettered once");
    assert_eq!(dead[0].value, "{not an event");
    assert!(dead[0].headers.iter().any(|(k, v)| k == "error" && v.contains("not a canonical event")));
}
