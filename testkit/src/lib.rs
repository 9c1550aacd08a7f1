//! Helpers for tests against the real local stack started by `deploy/local/test.sh`:
//! throwaway topics and databases, so tests never see each other's data, and readers that
//! check what really arrived (records on a topic, rows in ClickHouse). [`ingest`] and
//! [`aggregator`] start a service against the stack in one call (`docs/architecture.md#testing`).

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

pub mod aggregator;
pub mod browser;
pub mod console;
pub mod events;
mod fault;
pub mod ingest;
pub use fault::{Fault, FaultProxy, Insert, OwnClickHouse};

/// The real broker and ClickHouse, from the environment `deploy/local/test.sh` sets.
pub struct Stack {
    pub kafka: String,
    pub clickhouse: String,
    /// Unique per test: names its topics and database.
    pub suffix: String,
}

/// Removes the test's scratch directory ([`Stack::temp_path`]) when the test is over, so a run
/// of the suite leaves nothing in the system's temp directory; kept when the test failed, to be
/// read.
impl Drop for Stack {
    fn drop(&mut self) {
        let dir = self.scratch();
        if !dir.exists() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("test files kept in {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

impl Stack {
    pub fn from_env(test: &str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
            .with_test_writer()
            .try_init();
        let var = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set: run this test through deploy/local/test.sh"))
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Self {
            kafka: var("UPTAKE_TEST_KAFKA"),
            clickhouse: var("UPTAKE_TEST_CLICKHOUSE"),
            suffix: format!("{test}_{}_{}", std::process::id(), nanos % 1_000_000_000),
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// A path named `name` in this test's own scratch directory (created here, removed when the
    /// `Stack` is dropped): for rule files, configs and the like a test writes.
    pub fn temp_path(&self, name: &str) -> std::path::PathBuf {
        let dir = self.scratch();
        std::fs::create_dir_all(&dir).expect("creating the test's scratch directory");
        dir.join(name)
    }

    fn scratch(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("uptake-test-{}", self.suffix))
    }

    pub fn database(&self) -> String {
        format!("uptake_{}", self.suffix)
    }

    /// Creates the topics (fresh names, so never pre-existing).
    pub async fn create_topics(&self, names: &[&str], partitions: i32) {
        create_topics(&self.kafka, names, partitions).await
    }

    /// Runs SQL on ClickHouse over plain HTTP (not through the code under test) and returns
    /// the rows as JSON objects.
    pub async fn query(&self, sql: &str) -> Vec<Value> {
        self.try_query(sql).await.unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
    }

    /// Like [`Stack::query`], with a failure (e.g. the table does not exist yet) as an error.
    pub async fn try_query(&self, sql: &str) -> Result<Vec<Value>, String> {
        let resp = reqwest::Client::new()
            .post(&self.clickhouse)
            .body(format!("{sql} FORMAT JSONEachRow"))
            .send()
            .await
            .map_err(|e| format!("clickhouse unreachable: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {body}"));
        }
        body.lines().map(|l| serde_json::from_str(l).map_err(|e| format!("not a JSON row: {e}"))).collect()
    }

    /// Runs SQL that returns nothing (DDL, e.g. renaming a table away to make one step fail) on
    /// ClickHouse directly, not through the code under test.
    pub async fn execute(&self, sql: &str) {
        let resp = reqwest::Client::new().post(&self.clickhouse).body(sql.to_owned()).send().await.unwrap();
        assert!(resp.status().is_success(), "{sql}: {}", resp.text().await.unwrap());
    }

    /// Polls `sql` until it returns `want` rows' worth of `count()` or `timeout` passes. A failing
    /// query counts as 0: the service under test may not have created its tables yet.
    pub async fn wait_for_count(&self, sql: &str, want: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self
                .try_query(sql)
                .await
                .unwrap_or_default()
                .first()
                .and_then(|r| r["n"].as_str().and_then(|s| s.parse().ok()).or_else(|| r["n"].as_u64()))
                .unwrap_or(0);
            if got >= want || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every record on `topic` (from the beginning) that arrives within `window`, as
    /// (key, JSON value). Reads with a fresh consumer group.
    pub async fn read_topic(&self, topic: &str, window: Duration) -> Vec<(String, Value)> {
        self.read_records(topic, window).await.into_iter().map(|r| (r.key, r.value)).collect()
    }

    /// Like [`Stack::read_topic`], with headers.
    pub async fn read_records(&self, topic: &str, window: Duration) -> Vec<Record> {
        read_records(&self.kafka, topic, &format!("reader-{}-{topic}", self.suffix), window).await
    }
}

/// A record value as JSON, or as a JSON string when it is not JSON (a poison record).
fn json_or_text(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// One record read back from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: Value,
    pub headers: Vec<(String, String)>,
}

/// Every record on `topic` (from the beginning) that arrives within `window`. `group` only
/// names the client; no offsets are committed.
pub async fn read_records(brokers: &str, topic: &str, group: &str, window: Duration) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // Assign every partition from the beginning rather than joining a group: no rebalance to
    // wait for, and the read does not depend on the broker's group coordinator.
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment.add_partition_offset(topic, p.id(), Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Ok(msg)) = tokio::time::timeout_at(deadline.into(), consumer.recv()).await {
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            key: String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned(),
            value: json_or_text(msg.payload().unwrap_or_default()),
            headers,
        });
    }
    out
}

/// A Tansu broker owned by one test (SQLite storage in a temp directory), so the test can
/// kill it and restart it on the same port and data. Killed when dropped.
pub struct OwnBroker {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    pub async fn start(name: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("uptake-broker-{name}-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Self { port, dir, child: None };
        broker.restart().await;
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker process (again) and waits until it accepts connections.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("broker.log")).unwrap();
        let child = std::process::Command::new("tansu")
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu on PATH (deploy/local/test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "broker did not start; see {}", self.dir.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("broker data and log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Creates topics on any broker (panics on failure: a test cannot go on without them).
pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) {
    schemas::runtime::kafka::create_topics(brokers, names, partitions).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Low and high watermark of every partition of `topic`: how many records the broker holds.
pub fn watermarks(brokers: &str, topic: &str) -> Vec<(i64, i64)> {
    let consumer: rdkafka::consumer::BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("topic metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10)).expect("watermarks"))
        .collect()
}

/// A port nobody listens on now (the kernel's pick, released at once): for a child process
/// (chromedriver, a broker, ClickHouse, Prometheus) that must be told its port up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A TCP proxy in front of a server, which a test can cut and restore: the server looks down
/// (connections refused, open ones dropped) without touching the shared server itself.
pub struct Proxy {
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<port> to `target` (`host:port`).
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = std::sync::Arc::new(AtomicBool::new(true));
        let generation = std::sync::Arc::new(AtomicU64::new(0));
        let (target, up2, gen2) = (target.to_owned(), up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let (target, up, gen) = (target.clone(), up2.clone(), gen2.clone());
                let born = gen.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    // Cutting the proxy also breaks connections already open.
                    let cut = async {
                        while up.load(Ordering::SeqCst) && gen.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Self { port, up, generation }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `data` gzip-compressed, as an SDK sends a compressed body.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

#[cfg(test)]
mod tests {
    use super::Stack;

    #[test]
    fn a_tests_scratch_files_go_with_its_stack() {
        let stack = Stack {
            kafka: String::new(),
            clickhouse: String::new(),
            suffix: format!("scratch_{}", std::process::id()),
        };
        let rules = stack.temp_path("rules.toml");
        std::fs::write(&rules, "[[rule]]").unwrap();
        let nested = stack.temp_path("monitoring");
        std::fs::create_dir_all(nested.join("tsdb")).unwrap();
        assert!(rules.exists() && nested.exists());
        let dir = rules.parent().unwrap().to_owned();
        drop(stack);
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
