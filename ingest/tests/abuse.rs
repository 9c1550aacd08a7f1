//! The front door under abuse: stalled and key-less clients, decompression bombs, slow headers
//! and bodies, and what the public port exposes. Each test fails without its fix (issue 10).
//!
//! Tests marked `ignore` need the real broker (run by `deploy/local/test.sh`, or with
//! `UPTAKE_TEST_KAFKA=… cargo test -p ingest --test abuse -- --include-ignored`); the others run
//! everywhere: what they check happens before any Kafka I/O.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use ingest::RawIngestConfig;
use serde_json::{json, Value};
use testkit::ingest::RunningIngest;
use testkit::Stack;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "abuse-test-key-0123456789abcdef0123";

/// ingest (API and admin listeners on port 0) on `brokers`, serving until the test ends.
async fn start(brokers: &str, tweak: impl FnOnce(&mut RawIngestConfig)) -> RunningIngest {
    let mut cfg = testkit::ingest::config_for(brokers, KEY, "abuse");
    tweak(&mut cfg);
    testkit::ingest::serve(cfg).await
}

/// ingest against fresh topics on the real broker; returns it and its events topic.
async fn start_on_stack(stack: &Stack) -> (RunningIngest, String) {
    let ingest = testkit::ingest::start(stack, KEY, "abuse", |_| {}).await;
    let events = ingest.events_topic.clone();
    (ingest, events)
}

/// How a raw connection ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    /// The server answered with this status (and, after it, closed or not).
    Status(u16),
    /// The server closed the connection without an answer.
    Closed,
    /// Still open, no answer, when we stopped waiting.
    Open,
}

/// Reads what the server sends on `stream` until it closes, or `wait` passes.
async fn ending(mut stream: TcpStream, wait: Duration) -> (Ending, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) if got.is_empty() => return (Ending::Open, String::new()),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    match text.split(' ').nth(1).and_then(|s| s.parse().ok()) {
        Some(status) => (Ending::Status(status), text),
        None => (Ending::Closed, text),
    }
}

/// Raises this process's open-files soft limit to at least `want` (within the hard limit): the
/// stalled-connections test holds both ends of 600 connections, over a common default of 1024.
fn raise_fd_limit(want: libc::rlim_t) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain system calls on a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn stalled_keyless_connections_do_not_block_keyed_writers() {
    const STALLED: usize = 600;
    const WRITER_SECS: u64 = 10;
    raise_fd_limit(4 * STALLED as libc::rlim_t);
    let stack = Stack::from_env("abuse_stalled");
    let (ingest, events_topic) = start_on_stack(&stack).await;
    let limits = ingest.app.config.limits.clone();
    assert!(STALLED > limits.max_in_flight_requests, "enough to hold every permit of the old design");

    // The broker is shared and may be slow to a new topic's first write: warm the producer up
    // first, so that the measurement below is of the front door, not of a cold start.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let url = format!("http://{}/v1/track", ingest.api);
    let warm = json!({"userId": "u1", "event": "Warm Up", "messageId": "warm-up", "context": {"groupId": "acme"}});
    let r = http.post(&url).basic_auth(KEY, Some("")).json(&warm).timeout(Duration::from_secs(30)).send().await;
    assert_eq!(r.unwrap().status(), 200, "warm-up request");

    // Each stalled client sends the headers of a key-less request announcing 100 kB, a few body
    // bytes, then nothing: before the fix each held a load-shedding permit for ever.
    let head = "POST /v1/track HTTP/1.1\r\nHost: ingest\r\nContent-Type: application/json\r\n\
                Content-Length: 100000\r\n\r\n{\"writeKey\":\"";
    let mut stalled = Vec::with_capacity(STALLED);
    for i in 0..STALLED {
        let mut s = TcpStream::connect(ingest.api).await.unwrap_or_else(|e| panic!("connection {i}: {e}"));
        s.write_all(head.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    // They may end (408, 503 or closed) only after the body deadline; give them that plus slack.
    let wait = limits.body_timeout() + Duration::from_secs(WRITER_SECS + 10);
    let watchers: Vec<_> = stalled.into_iter().map(|s| tokio::spawn(ending(s, wait))).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile a keyed writer sends one event per request, each with a 2 s deadline.
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(WRITER_SECS) {
        let n = latencies.len();
        let msg = json!({"userId": "u1", "event": "Report Exported", "messageId": format!("keyed-{n}"),
                         "context": {"groupId": "acme"}});
        let sent = Instant::now();
        let resp = http.post(&url).basic_auth(KEY, Some("")).json(&msg).send().await;
        let resp = resp.unwrap_or_else(|e| panic!("keyed request {n} failed after {:?}: {e}", sent.elapsed()));
        let status = resp.status();
        assert_eq!(status, 200, "keyed request {n}: {}", resp.text().await.unwrap_or_default());
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let (p50, p99, max) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99), latencies[latencies.len() - 1]);
    println!(
        "keyed writer during {STALLED} stalled key-less connections: {} requests, all 200; \
         p50 {p50:?}, p99 {p99:?}, max {max:?}",
        latencies.len()
    );

    // Every stalled connection ends: 503 at once beyond the key-less budget, 408 at the body
    // deadline within it, or closed; none is left hanging.
    let mut endings = std::collections::BTreeMap::new();
    for w in watchers {
        let (end, text) = w.await.unwrap();
        let ok = matches!(end, Ending::Status(408 | 503) | Ending::Closed);
        assert!(ok, "a stalled connection ended {end:?}: {text}");
        *endings.entry(end).or_insert(0) += 1;
    }
    println!("stalled connections ended: {endings:?}");
    assert!(endings.get(&Ending::Status(408)).is_some_and(|&n| n <= limits.max_keyless_in_flight), "{endings:?}");

    // And every keyed event is on the topic.
    let records = stack.read_topic(&events_topic, Duration::from_secs(8)).await;
    assert_eq!(records.len(), latencies.len() + 1, "every acknowledged keyed event and the warm-up");
}

#[tokio::test]
async fn keyless_gzip_bomb_is_refused_cheaply() {
    let ingest = start("127.0.0.1:1", |_| {}).await;
    let limits = ingest.app.config.limits.clone();
    // 10 MB of zeros compresses to ~10 kB: well under max_body_bytes as sent.
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'0'; 10 * 1024 * 1024]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < limits.max_body_bytes);

    let http = reqwest::Client::new();
    let started = Instant::now();
    let resp = http
        .post(format!("http://{}/v1/batch", ingest.api))
        .header("Content-Encoding", "gzip")
        .header("Content-Type", "application/json")
        .body(bomb.clone())
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert!(elapsed < Duration::from_secs(1), "refused quickly, took {elapsed:?}");

    // The proof that the bomb was not inflated beyond the key-less bound: ingest's own count of
    // the bytes it decoded for key-less requests (before the fix, the bound was the 4 MiB
    // max_decompressed_bytes of authenticated senders).
    let metrics = http.get(format!("http://{}/metrics", ingest.admin)).send().await.unwrap().text().await.unwrap();
    let decoded = metric(&metrics, r#"uptake_ingest_decoded_bytes_total{key="body"}"#);
    println!("key-less gzip bomb: {} bytes sent, {decoded} bytes inflated, 413 in {elapsed:?}", bomb.len());
    assert!(decoded <= limits.max_keyless_body_bytes as u64 + 1, "inflated {decoded} bytes before knowing the sender");
    assert_eq!(body["error"], format!("request body larger than {} bytes", limits.max_keyless_body_bytes));
    assert!(limits.max_keyless_body_bytes < limits.max_decompressed_bytes);
}

/// The value of the sample `name` (with its labels) in a Prometheus exposition.
fn metric(text: &str, name: &str) -> u64 {
    let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line[name.len()..].trim().parse().unwrap()
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn metrics_and_readyz_are_not_on_the_public_port() {
    let stack = Stack::from_env("abuse_admin");
    let (ingest, _) = start_on_stack(&stack).await;
    let http = reqwest::Client::new();
    let get = |addr: SocketAddr, path: &str| {
        let req = http.get(format!("http://{addr}{path}"));
        async move { req.send().await.unwrap() }
    };
    for path in ["/metrics", "/readyz"] {
        assert_eq!(get(ingest.api, path).await.status(), 404, "{path} on the public port");
    }
    assert_eq!(get(ingest.api, "/healthz").await.status(), 200);
    assert_eq!(get(ingest.admin, "/healthz").await.status(), 200);
    let metrics = get(ingest.admin, "/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("uptake_ingest_open_connections"));
    // Ready once the background check has reached the broker.
    let started = Instant::now();
    loop {
        let r = get(ingest.admin, "/readyz").await;
        if r.status() == 200 {
            assert_eq!(r.json::<Value>().await.unwrap(), json!({"ready": true}));
            println!("admin /readyz ready after {:?}", started.elapsed());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "admin /readyz never became ready: {}", r.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_answers_from_the_cached_check_not_a_broker_call() {
    // No broker at all: a per-request check would take its 2 s timeout each time.
    let ingest = start("127.0.0.1:1", |_| {}).await;
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let started = Instant::now();
        let r = http.get(format!("http://{}/readyz", ingest.admin)).send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(started.elapsed() < Duration::from_millis(500), "readyz took {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let ingest = start("127.0.0.1:1", |c| c.limits.header_timeout_ms = 300).await;
    let mut s = TcpStream::connect(ingest.api).await.unwrap();
    s.write_all(b"POST /v1/events HTTP/1.1\r\nHost: ingest\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let (end, text) = ending(s, Duration::from_secs(5)).await;
    assert!(matches!(end, Ending::Closed | Ending::Status(408)), "{end:?}: {text}");
    assert!(started.elapsed() < Duration::from_secs(2), "closed after {:?}", started.elapsed());
    let metrics = reqwest::get(format!("http://{}/metrics", ingest.admin)).await.unwrap().text().await.unwrap();
    assert_eq!(metric(&metrics, "uptake_ingest_header_timeouts_total"), 1);
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let ingest = start("127.0.0.1:1", |c| c.limits.body_timeout_ms = 300).await;
    for auth in [format!("Authorization: Bearer {KEY}\r\n"), String::new()] {
        let mut s = TcpStream::connect(ingest.api).await.unwrap();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: ingest\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{{\"kind\":"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let (end, text) = ending(s, Duration::from_secs(5)).await;
        assert_eq!(end, Ending::Status(408), "{auth:?}: {text}");
        assert!(text.contains(r#""error":"request body not received within 300 ms""#), "{text}");
        assert!(started.elapsed() < Duration::from_secs(2), "answered after {:?}", started.elapsed());
    }
}
