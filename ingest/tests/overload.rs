//! Load shedding: with `limits.max_in_flight_requests` write requests in flight, the next one
//! is refused at once — 503 with `Retry-After: 1` and a clear error, never queued — while
//! `/healthz` (both listeners) and `/metrics` (admin listener) still answer, and the refusal is
//! counted. Needs no broker: the refusal comes before the body is read.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

const KEY: &str = "overload-key-0123456789abcdef012345";

#[tokio::test]
async fn a_write_request_over_the_in_flight_limit_is_refused_at_once() {
    let mut cfg = testkit::ingest::config_for("127.0.0.1:1", KEY, "test"); // the broker is never reached in this test
    cfg.limits.max_in_flight_requests = 1;
    let ingest = testkit::ingest::serve(cfg).await;
    let (addr, admin) = (ingest.api, ingest.admin);

    // A client that sends its headers and half its body, then stalls: it holds the one permit.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let client = reqwest::Client::new();
    let started = Instant::now();
    let resp = client
        .post(format!("http://{addr}/v1/events"))
        .bearer_auth(KEY)
        .body(r#"{"kind":"login","account_id":"a","user_id":"u"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(1), "refused at once, not queued");
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "overloaded: 1 requests already in flight; retry in 1 s");

    assert_eq!(client.get(format!("http://{addr}/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("http://{admin}/healthz")).send().await.unwrap().status(), 200);
    let metrics = client.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == r#"uptake_ingest_requests_refused_total{reason="overloaded"} 1"#),
        "{metrics}"
    );
    drop(slow);
}
