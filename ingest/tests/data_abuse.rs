//! What a client may put in an event, tried as an attacker and as an unlucky customer would,
//! against the real broker: long ids and a flood of fresh users cannot exhaust ingest's memory
//! or take a real user's attribution away; an oversize event gets its 400 (not a 503 retried
//! forever) and is dead-lettered truncated and without its write key; counts and ages are capped.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use testkit::ingest::RunningIngest;
use testkit::Stack;

/// Production-length keys (at least 32 characters), so the test holds whatever key rules apply.
const KEY: &str = "data-abuse-app-key-0123456789abcdef";
const FLOOD_KEY: &str = "data-abuse-flood-key-0123456789abcdef";

/// ingest in-process on port 0 against fresh topics; stops when dropped.
async fn start(stack: &Stack) -> RunningIngest {
    testkit::ingest::start(stack, KEY, "data-abuse", |_| {}).await
}

fn post(url: &str, path: &str, key: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new().post(format!("{url}{path}")).basic_auth(key, Some(""))
}

/// The `ingest` binary as a child process, killed (by its pid) when dropped, even on failure.
struct ChildIngest {
    child: Child,
    url: String,
}

impl Drop for ChildIngest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildIngest {
    /// Peak resident memory so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
        let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb * 1024
    }
}

async fn spawn_ingest(stack: &Stack, events_topic: &str, dlq_topic: &str, remembered_bytes: usize) -> ChildIngest {
    // A free port: bind port 0, note it, release it for the child.
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = stack.temp_path(&format!("ingest-{port}.toml"));
    let toml = format!(
        // The admin listener on a port of its own too: the default (8082) may be a running demo's.
        "listen = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\nlog_format = \"json\"\n\
         [kafka]\nbrokers = \"{}\"\ntopic = \"{events_topic}\"\ndlq_topic = \"{dlq_topic}\"\n\
         [[write_keys]]\nkey = \"{KEY}\"\nsource = \"app\"\n\
         [[write_keys]]\nkey = \"{FLOOD_KEY}\"\nsource = \"flood\"\n\
         [limits]\nrate_per_sec = 0\n\
         [segment]\nremembered_bytes = {remembered_bytes}\n",
        stack.kafka
    );
    std::fs::write(&path, toml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ingest"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the ingest binary");
    let ingest = ChildIngest { child, url: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", ingest.url)).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "ingest did not start within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ingest
}

/// Posts every body to `/v1/batch` with `key`, four at a time; returns the statuses.
async fn post_all(url: &str, key: &str, bodies: Vec<Value>) -> Vec<(u16, Value)> {
    futures::stream::iter(bodies)
        .map(|body| async move {
            let r = post(url, "/v1/batch", key).json(&body).send().await.expect("request");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        })
        .buffer_unordered(4)
        .collect()
        .await
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn group_id_flood_keeps_memory_bounded_and_real_attribution() {
    const LONG_IDS: usize = 4_000;
    const LONG_ID_BYTES: usize = 32_000; // the event stays under the 32 KiB per-event limit
    const FRESH_USERS: usize = 50_000;
    const BUDGET: usize = 4 * 1024 * 1024; // ~23,000 entries of this test's size
    const RSS_BOUND: u64 = 128 * 1024 * 1024;

    let stack = Stack::from_env("data_abuse_flood");
    let (events_topic, dlq_topic) = (stack.topic("usage-events"), stack.topic("usage-events-dlq"));
    stack.create_topics(&[&events_topic, &dlq_topic], 2).await;
    let ingest = spawn_ingest(&stack, &events_topic, &dlq_topic, BUDGET).await;
    let idle_rss = ingest.peak_rss();

    // A real user's group call, through the product's own key.
    let r = post(&ingest.url, "/v1/group", KEY)
        .json(&json!({"userId": "real-user", "groupId": "acme-real"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The attack, through another key: group calls with 32 KB group ids (each would cost
    // 32 KB of memory if remembered), then a flood of valid fresh users.
    let long_batches: Vec<Value> = (0..LONG_IDS)
        .collect::<Vec<_>>()
        .chunks(30)
        .map(|chunk| {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|i| {
                    let mut id = format!("g{i}-");
                    id.push_str(&"x".repeat(LONG_ID_BYTES - id.len()));
                    json!({"type": "group", "userId": format!("long-{i}"), "groupId": id})
                })
                .collect();
            json!({"batch": batch})
        })
        .collect();
    let started = Instant::now();
    for (status, body) in post_all(&ingest.url, FLOOD_KEY, long_batches).await {
        assert_eq!(status, 400, "a 32 KB group id is refused: {body:.300}");
        let first = &body["errors"][0];
        assert_eq!(first["field"], "groupId", "{body:.300}");
        assert_eq!(first["reason"], format!("is {LONG_ID_BYTES} bytes; ids are at most 256"));
    }
    let fresh_batches: Vec<Value> = (0..FRESH_USERS)
        .collect::<Vec<_>>()
        .chunks(2_500)
        .map(|chunk| {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"type": "group", "userId": format!("fresh-{i:06}"), "groupId": format!("acct-{}", i % 1000)}))
                .collect();
            json!({"batch": batch})
        })
        .collect();
    for (status, body) in post_all(&ingest.url, FLOOD_KEY, fresh_batches).await {
        assert_eq!(status, 200, "{body:.300}");
    }
    println!(
        "flood: {LONG_IDS} group calls with {LONG_ID_BYTES}-byte ids + {FRESH_USERS} fresh users in {:?}",
        started.elapsed()
    );

    // The real user's later track call still carries its account.
    let r = post(&ingest.url, "/v1/track", KEY)
        .json(&json!({"userId": "real-user", "event": "Report Exported", "messageId": "real-track"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let peak = ingest.peak_rss();
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "ingest peak RSS (VmHWM) after the flood: {:.1} MiB (at start {:.1} MiB; bound {} MiB; group memory budget {} MiB)",
        mib(peak),
        mib(idle_rss),
        RSS_BOUND >> 20,
        BUDGET >> 20
    );
    assert!(peak < RSS_BOUND, "ingest peak RSS {peak} bytes is over {RSS_BOUND}");

    // Counted by watermarks and read from the tail: the shared broker reads 50,000 records
    // back too slowly for a test.
    let stored: i64 = testkit::watermarks(&stack.kafka, &events_topic).iter().map(|(low, high)| high - low).sum();
    assert_eq!(stored, FRESH_USERS as i64 + 2, "every valid call is on the topic, none of the 32 KB ones");
    let records = read_tail(&stack.kafka, &events_topic, 3).await;
    let (key, real) = records
        .iter()
        .find(|(_, v)| v["message_id"] == "real-track")
        .expect("the real user's track call is on the topic");
    assert_eq!(real["account_id"], "acme-real", "the real user's attribution survived the flood");
    assert_eq!(key, "acme-real");
}

/// The last `n` records of each partition of `topic`, as (key, JSON value).
async fn read_tail(brokers: &str, topic: &str, n: i64) -> Vec<(String, Value)> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("tail-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    let mut want = 0;
    for (partition, (low, high)) in testkit::watermarks(brokers, topic).into_iter().enumerate() {
        assignment.add_partition_offset(topic, partition as i32, Offset::Offset((high - n).max(low))).unwrap();
        want += high - (high - n).max(low);
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    while out.len() < want as usize {
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(20), consumer.recv()).await else { break };
        let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
        out.push((key, serde_json::from_slice(msg.payload().unwrap_or_default()).unwrap_or(Value::Null)));
    }
    out
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn oversize_event_is_refused_with_reason_and_dead_lettered_truncated() {
    let stack = Stack::from_env("data_abuse_oversize");
    let ingest = start(&stack).await;
    // 1.5 MB: over the 32 KiB per-event limit and over the producer's 1,000,000-byte record
    // limit. Sent gzip'd (1 MiB body limit as sent), keyed in the header (a key-less body is
    // bounded far lower, see abuse.rs) and with the write key in the body too, to be stripped.
    let big = json!({"writeKey": KEY, "kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "big-1",
                     "properties": {"blob": "x".repeat(1_500_000)}});
    let raw = big.to_string();
    let send = || {
        reqwest::Client::new()
            .post(format!("{}/v1/events", ingest.url))
            .header("Content-Type", "application/json")
            .header("Content-Encoding", "gzip")
            .basic_auth(KEY, Some(""))
            .body(testkit::gzip(raw.as_bytes()))
            .send()
    };
    for attempt in 1..=2 {
        let r = send().await.unwrap();
        assert_eq!(r.status(), 400, "attempt {attempt}: an oversize event is the client's error, never a 503 to retry");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["errors"],
            json!([{"field": "event", "reason": format!("is {} bytes; at most 32768 per event", raw.len())}]),
            "{body}"
        );
    }
    // A Segment call of 40 KB, key in the body too.
    let track = json!({"writeKey": KEY, "userId": "u1", "event": "Report Exported", "properties": {"blob": "y".repeat(40_000)}});
    let r = reqwest::Client::new().post(format!("{}/v1/track", ingest.url)).json(&track).send().await.unwrap();
    assert_eq!(r.status(), 400);

    let dead = stack.read_records(&ingest.dlq_topic, Duration::from_secs(6)).await;
    assert_eq!(dead.len(), 3, "each refused event is dead-lettered once");
    for record in &dead {
        let text = record.value.to_string();
        assert!(text.len() <= 17 * 1024, "truncated payload: {} bytes", text.len());
        assert!(!text.contains(KEY), "the write key is stripped: {text:.200}");
        let header = |name: &str| record.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert!(header("error").unwrap().starts_with("event: is "), "{:?}", header("error"));
        assert_eq!(header("source").as_deref(), Some("data-abuse"));
        let original: usize = header("truncated").expect("truncation is marked").parse().unwrap();
        assert_eq!(record.value["uptake_truncated"]["original_bytes"], original);
        assert!(record.value["head"].as_str().unwrap().starts_with('{'));
    }
    assert!(
        stack.read_topic(&ingest.events_topic, Duration::from_secs(2)).await.is_empty(),
        "nothing reached the events topic"
    );
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn counts_and_ages_are_capped() {
    let stack = Stack::from_env("data_abuse_caps");
    let ingest = start(&stack).await;
    let three_years_ago = (chrono::Utc::now() - chrono::Duration::days(3 * 365)).to_rfc3339();

    let r = post(&ingest.url, "/v1/events", KEY)
        .json(&json!({"kind": "data_volume", "account_id": "acme", "message_id": "huge", "records": u64::MAX}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"], json!([{"field": "records", "reason": "must be an integer from 0 to 1000000000000"}]));

    let r = post(&ingest.url, "/v1/events", KEY)
        .json(&json!({"kind": "login", "account_id": "acme", "user_id": "u1", "message_id": "old", "timestamp": three_years_ago}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "timestamp", "{body}");
    assert!(body["errors"][0]["reason"].as_str().unwrap().contains("at most 730 days old"), "{body}");

    // Segment, in a batch beside a valid message: the valid one is written, the others listed.
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Data Imported", "messageId": "seg-huge", "properties": {"bytes": u64::MAX}},
        {"type": "track", "userId": "u1", "event": "Report Exported", "messageId": "seg-uses", "properties": {"count": 10_000_000}},
        {"type": "track", "userId": "u1", "event": "Report Exported", "messageId": "seg-old", "timestamp": three_years_ago},
        {"type": "track", "userId": "u1", "event": "Data Imported", "messageId": "seg-ok", "properties": {"records": 1_000_000_000_000u64}, "context": {"groupId": "acme"}}
    ]});
    let r = post(&ingest.url, "/v1/batch", KEY).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["index"].as_u64().unwrap(), e["field"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        rejected,
        [(0, "properties.bytes".into()), (1, "properties.count".into()), (2, "timestamp".into())],
        "{body}"
    );
    assert_eq!(body["accepted"], 1);

    let events = stack.read_topic(&ingest.events_topic, Duration::from_secs(5)).await;
    let ids: Vec<&str> = events.iter().map(|(_, e)| e["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["seg-ok"], "only the event within the caps was written");
    assert_eq!(events[0].1["records"], 1_000_000_000_000u64);
    assert_eq!(
        stack.read_records(&ingest.dlq_topic, Duration::from_secs(3)).await.len(),
        5,
        "every refused event is dead-lettered"
    );
}
