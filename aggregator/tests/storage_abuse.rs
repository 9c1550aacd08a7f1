//! The storage path under abuse, against the real broker and ClickHouse: a history import that
//! spans 150 months, a crash between the INSERTs of one batch, a row ClickHouse refuses for good,
//! and a server that does not run in UTC. ClickHouse's refusals are injected by testkit's
//! [`FaultProxy`] exactly as a current server words them (the local 18.16 has no partition limit).
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aggregator::RawAggregatorConfig;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::event::Event;
use testkit::{events, Fault, FaultProxy, Insert, OwnClickHouse, Stack};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

fn login(id: &str, account: &str, at: DateTime<Utc>, received: DateTime<Utc>) -> Event {
    events::received_at(events::login(id, account, &format!("u-{id}"), at, "abuse"), received)
}

async fn produce(stack: &Stack, topic: &str, events: &[Event]) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    for e in events {
        let payload = serde_json::to_vec(e).unwrap();
        producer
            .send(FutureRecord::to(topic).key(&e.account_id).payload(&payload), Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// Topics and a config whose ClickHouse is `clickhouse_url` (the proxy).
async fn setup(stack: &Stack, clickhouse_url: String) -> RawAggregatorConfig {
    let mut cfg = testkit::aggregator::config(stack, "abuse", 2).await;
    cfg.clickhouse.url = clickhouse_url;
    cfg.evaluation.interval_ms = 60_000;
    cfg
}

/// The aggregator, in process; `.0.send(())` stops it.
async fn start(
    cfg: &RawAggregatorConfig,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), aggregator::AggregatorError>>) {
    let running = testkit::aggregator::start(cfg.clone().build_and_validate().unwrap()).await;
    (running.stop, running.task)
}

/// `(rows, distinct message ids)` in the test's `events`.
async fn totals(stack: &Stack) -> (u64, u64) {
    let r = stack
        .query(&format!("SELECT count() AS n, uniqExact(message_id) AS ids FROM {}.events", stack.database()))
        .await;
    let n = |v: &serde_json::Value| v.as_str().unwrap().parse().unwrap();
    (n(&r[0]["n"]), n(&r[0]["ids"]))
}

/// The `toYYYYMM(timestamp)` months of the `events` rows in a RowBinary INSERT body, read in
/// `EventRow`'s column order — what a current ClickHouse counts against its partition limit.
fn months_in(body: &[u8]) -> BTreeSet<u32> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
        let (head, rest) = b.split_at(n);
        *b = rest;
        head
    }
    fn string(b: &mut &[u8]) {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let byte = take(b, 1)[0];
            len |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
        }
        take(b, len);
    }
    let mut b = body;
    let mut months = BTreeSet::new();
    while !b.is_empty() {
        (0..7).for_each(|_| string(&mut b)); // message_id … module
        take(&mut b, 24); // uses, records, bytes
        string(&mut b); // object
        for _ in 0..2 {
            if take(&mut b, 1)[0] == 0 {
                take(&mut b, 1); // nps, csat: Nullable(UInt8)
            }
        }
        (0..4).for_each(|_| string(&mut b)); // ticket_id, ticket_status, priority, outcome
        let timestamp = u32::from_le_bytes(take(&mut b, 4).try_into().unwrap());
        take(&mut b, 4); // received_at
        (0..4).for_each(|_| string(&mut b)); // source, traits, properties, kafka_topic
        take(&mut b, 12); // kafka_partition, kafka_offset
        let t = Utc.timestamp_opt(i64::from(timestamp), 0).unwrap();
        months.insert(t.year() as u32 * 100 + t.month());
    }
    months
}

/// Refuses, as current ClickHouse does, an `events` INSERT over 100 partitions.
fn partition_limit(insert: &Insert<'_>) -> Option<Fault> {
    let months = months_in(insert.body).len();
    (insert.query.contains(".events") && months > 100).then(|| {
        Fault::new(500, &format!("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100): {months}. (TOO_MANY_PARTS)"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn backdated_150_month_batch_is_stored_exactly_once() {
    let stack = Stack::from_env("backdated");
    let proxy = FaultProxy::start(&stack.clickhouse).await;
    proxy.refuse_inserts(partition_limit);
    let mut cfg = setup(&stack, proxy.url()).await;
    cfg.batch.max_wait_ms = 3_000; // the whole import in one batch
                                   // A customer's history, imported: two events in each of 150 months, all sent before the
                                   // aggregator starts so that one batch holds them all.
    let now = Utc::now();
    let events: Vec<Event> = (0..150)
        .flat_map(|m| {
            let month = Utc.with_ymd_and_hms(2013 + m / 12, (m % 12) as u32 + 1, 1, 0, 0, 0).unwrap();
            let account = format!("hist-{}", m % 3);
            [
                login(&format!("h{m:03}a"), &account, month + chrono::Duration::hours(9 * 24 + 12), now),
                login(&format!("h{m:03}b"), &account, month + chrono::Duration::hours(19 * 24 + 8), now),
            ]
        })
        .collect();
    assert_eq!(months_in(&[]).len(), 0);
    produce(&stack, &cfg.kafka.events_topic, &events).await;
    let (stop, task) = start(&cfg).await;

    let count = format!("SELECT count() AS n FROM {}.events", stack.database());
    assert_eq!(stack.wait_for_count(&count, 300, Duration::from_secs(90)).await, 300, "the whole history stored");
    tokio::time::sleep(Duration::from_secs(2)).await; // a late duplicate would land now
    assert_eq!(totals(&stack).await, (300, 300), "each event once");
    assert_eq!(proxy.inserts_refused(), 0, "no INSERT spanned more than 100 partitions");
    assert!(proxy.inserts_stored() >= 2, "150 months took several INSERTs: {}", proxy.inserts_stored());
    let daily = stack
        .query(&format!("SELECT sumMerge(events) AS n, uniqExact(day) AS days FROM {}.account_daily", stack.database()))
        .await;
    assert_eq!(
        (daily[0]["n"].as_str(), daily[0]["days"].as_str()),
        (Some("300"), Some("300")),
        "the rollup has every day"
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_crash_between_the_inserts_of_a_batch_stores_the_rest_once() {
    let stack = Stack::from_env("chunk_crash");
    let proxy = FaultProxy::start(&stack.clickhouse).await;
    let mut cfg = setup(&stack, proxy.url()).await;
    cfg.clickhouse.max_partitions_per_insert = 10;
    cfg.batch.max_wait_ms = 3_000;
    // 30 months of history received three days ago: older than the one-day dedup window, so
    // only the offsets stored with the rows can tell the replay what is already there.
    let received = Utc::now() - chrono::Duration::days(3);
    let events: Vec<Event> = (0..120)
        .map(|i| {
            let at =
                Utc.with_ymd_and_hms(2022 + i / 48, (i / 4 % 12) as u32 + 1, 5 + (i % 4) as u32, 10, 0, 0).unwrap();
            login(&format!("c{i:03}"), &format!("acct-{}", i % 5), at, received)
        })
        .collect();
    produce(&stack, &cfg.kafka.events_topic, &events).await;

    // The first INSERT of the batch succeeds, every later one fails (overload): the first
    // instance stops between the INSERTs of its batch, nothing committed.
    let events_inserts = Arc::new(AtomicU64::new(0));
    let seen = events_inserts.clone();
    proxy.refuse_inserts(move |i| {
        let later = i.query.contains(".events") && seen.fetch_add(1, Ordering::SeqCst) >= 1;
        later.then(|| Fault::new(503, "Code: 202. DB::Exception: Too many simultaneous queries. Maximum: 100"))
    });
    let (stop, task) = start(&cfg).await;
    let count = format!("SELECT count() AS n FROM {}.events", stack.database());
    let first = stack.wait_for_count(&count, 1, Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proxy.inserts_refused() < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    let (stored, _) = totals(&stack).await;
    assert!(first > 0 && stored < 120, "stopped between chunks with {stored} of 120 stored");

    // A new instance of the group replays the batch: the rest once, the stored part not again.
    proxy.heal();
    let (stop, task) = start(&cfg).await;
    assert_eq!(stack.wait_for_count(&count, 120, Duration::from_secs(60)).await, 120);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(totals(&stack).await, (120, 120), "the replay stored the rest once and nothing twice");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn poison_row_is_dead_lettered_and_the_rest_stored() {
    let stack = Stack::from_env("poison_row");
    let proxy = FaultProxy::start(&stack.clickhouse).await;
    const MARKER: &str = "poison-7QZ-row";
    let error = "Code: 53. DB::Exception: Type mismatch in VALUES section: cannot insert the row. (TYPE_MISMATCH)";
    proxy.refuse_inserts_containing(MARKER, Fault::new(500, error));
    let cfg = setup(&stack, proxy.url()).await;
    let now = Utc::now();
    let events: Vec<Event> = (0..200)
        .map(|i| {
            let id = if i == 77 { MARKER.to_owned() } else { format!("p{i:04}") };
            login(&id, &format!("acct-{}", i % 7), now, now)
        })
        .collect();
    produce(&stack, &cfg.kafka.events_topic, &events).await;
    let (stop, task) = start(&cfg).await;

    let count = format!("SELECT count() AS n FROM {}.events", stack.database());
    assert_eq!(stack.wait_for_count(&count, 199, Duration::from_secs(60)).await, 199, "every other row stored");
    let dead = stack.read_records(&cfg.kafka.dlq_topic, Duration::from_secs(5)).await;
    assert_eq!(dead.len(), 1, "the refused row, dead-lettered once: {dead:?}");
    assert_eq!(dead[0].value["message_id"], MARKER, "the record as consumed");
    let header = dead[0].headers.iter().find(|(k, _)| k == "error").map(|(_, v)| v.as_str()).unwrap_or_default();
    assert!(header.contains("Code: 53") && header.contains("Type mismatch"), "the server's error: {header}");

    // The pipeline goes on.
    let later: Vec<Event> = (0..50).map(|i| login(&format!("q{i:04}"), "acct-1", now, now)).collect();
    produce(&stack, &cfg.kafka.events_topic, &later).await;
    assert_eq!(stack.wait_for_count(&count, 249, Duration::from_secs(60)).await, 249, "later events stored");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(totals(&stack).await, (249, 249));
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn metric_days_are_utc_on_a_server_that_is_not() {
    // A private ClickHouse 18.16 at UTC+14: a day there starts 14 hours before a UTC day.
    let server = OwnClickHouse::start("utc", "Pacific/Kiritimati").await;
    let mut cfg = RawAggregatorConfig::default();
    cfg.clickhouse.url = server.url();
    cfg.clickhouse.database = "uptake_tz".into();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    // u1 logs in late on 23 June (UTC), u2 at noon on 30 June (UTC).
    let rows = [
        login("tz1", "tz-co", at("2026-06-23T23:30:00Z"), at("2026-06-23T23:30:00Z")),
        login("tz2", "tz-co", at("2026-06-30T12:00:00Z"), at("2026-06-30T12:00:00Z")),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, e)| EventRow::new(e, "usage-events", 0, i as i64))
    .collect::<Vec<_>>();
    store.insert_rows(&rows).await.unwrap();

    let days: Vec<String> = store
        .client()
        .query("SELECT toString(day) FROM uptake_tz.account_daily ORDER BY day")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(days, ["2026-06-23", "2026-06-30"], "rollup days are UTC days");
    let (inputs, _) =
        aggregator::account_inputs(&store, at("2026-06-30T18:00:00Z"), "usage-events", &[0]).await.unwrap();
    let w = &inputs[0].window;
    // The 7-day window ending 30 June is 24–30 June: u2 in it (and today), u1 the week before.
    assert_eq!((w.active_users_1d, w.active_users_7d, w.active_users_prev_7d), (1, 1, 1), "{w:?}");
}
