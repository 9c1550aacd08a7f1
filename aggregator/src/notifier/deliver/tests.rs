use super::*;

#[test]
fn server_errors_and_throttling_are_retried_other_refusals_are_not() {
    for code in [500, 502, 503, 429, 408] {
        assert!(retryable(StatusCode::from_u16(code).unwrap()), "{code}");
    }
    for code in [400, 401, 403, 404, 410, 422] {
        assert!(!retryable(StatusCode::from_u16(code).unwrap()), "{code}");
    }
}

#[test]
fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
    let cfg = NotifierConfig { initial_backoff_ms: 100, max_backoff_ms: 1_000, ..NotifierConfig::default() };
    let s = Sender::new(&cfg).unwrap();
    for (attempt, base) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_000), (30, 1_000)] {
        let got = s.backoff(attempt).as_millis() as u64;
        assert!((base..=base * 6 / 5).contains(&got), "attempt {attempt}: {got} ms");
    }
}

// Webhook tests against a local receiver (axum): what the client does with a redirect and with
// an endless error body.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use schemas::alert::Alert;

use crate::config::{WebhookConfig, WebhookFormat};
use crate::telemetry::Telemetry;

/// Serves `app` on a free local port; its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn webhook(url: String) -> WebhookConfig {
    WebhookConfig {
        name: "hook".into(),
        url,
        format: WebhookFormat::Json,
        min_severity: schemas::alert::Severity::Info,
        owners: Vec::new(),
        statuses: vec![schemas::alert::AlertStatus::Firing],
        headers: BTreeMap::from([("X-Api-Key".to_owned(), "s3cret".to_owned())]),
    }
}

fn an_alert() -> Alert {
    serde_json::from_value(serde_json::json!({
        "alert_id": "a1", "account_id": "acme", "rule_id": "r", "severity": "critical", "status": "firing",
        "fired_at": "2026-03-01T09:30:00Z", "metrics": {}, "reason": "No login for 14 days"
    }))
    .unwrap()
}

/// A sender with one attempt and a long request timeout: what ends a delivery is the client's
/// own handling, not the timeout.
fn sender() -> Sender {
    Sender::new(&NotifierConfig { max_attempts: 1, timeout_ms: 30_000, ..NotifierConfig::default() }).unwrap()
}

async fn deliver(hook: &WebhookConfig) -> Outcome {
    let (_stop, mut shutdown) = tokio::sync::watch::channel(false);
    let (sender, alert, metrics) = (sender(), an_alert(), Telemetry::new());
    let delivery = sender.deliver(hook, &alert, &metrics, &mut shutdown);
    tokio::time::timeout(Duration::from_secs(5), delivery)
        .await
        .expect("the delivery ends without waiting for the request timeout")
}

#[tokio::test]
async fn webhook_redirect_is_not_followed() {
    // The other host records every request it gets, with the API key header.
    let leaked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = leaked.clone();
    let elsewhere = serve(axum::Router::new().route(
        "/collect",
        axum::routing::post(move |headers: HeaderMap| async move {
            let key = headers.get("x-api-key").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            seen.lock().unwrap().push(key);
            StatusCode::OK
        }),
    ))
    .await;
    let target = format!("{elsewhere}/collect");
    let moved = serve(axum::Router::new().route(
        "/hook",
        axum::routing::post(move || async move {
            (StatusCode::TEMPORARY_REDIRECT, [(axum::http::header::LOCATION, target)]).into_response()
        }),
    ))
    .await;

    let outcome = deliver(&webhook(format!("{moved}/hook"))).await;
    let Outcome::Failed { attempts, error } = outcome else { panic!("a redirect must fail the delivery: {outcome:?}") };
    assert_eq!(attempts, 1, "final at once: following it later would not be safer");
    assert!(error.starts_with("HTTP 307") && error.contains("redirect to 127.0.0.1 not followed"), "{error}");
    assert!(
        leaked.lock().unwrap().is_empty(),
        "the other host got the alert and its key: {:?}",
        leaked.lock().unwrap()
    );
}

#[tokio::test]
async fn webhook_error_body_is_capped() {
    // A 500 whose body never ends; count what the receiver manages to hand out.
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || async move {
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let endless = futures::stream::repeat_with(move || {
                counter.fetch_add(chunk.len(), Ordering::Relaxed);
                Ok::<_, std::io::Error>(chunk.clone())
            });
            Response::builder().status(500).body(Body::from_stream(endless)).unwrap()
        }),
    );
    let url = serve(app).await;

    let started = std::time::Instant::now();
    let outcome = deliver(&webhook(format!("{url}/hook"))).await;
    let Outcome::Failed { attempts, error } = outcome else { panic!("{outcome:?}") };
    assert_eq!(attempts, 1);
    assert!(error.starts_with("HTTP 500 Internal Server Error: xxx"), "{error}");
    assert!(error.len() < 300, "the error quotes a snippet, not the body: {} bytes", error.len());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // The connection was dropped after the cap: the server stops soon after (socket buffers).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sent.load(Ordering::Relaxed), after_drop, "the receiver is still streaming to us");
}

#[tokio::test]
async fn capped_body_reads_at_most_the_cap() {
    let app = axum::Router::new().route("/big", axum::routing::get(|| async { "é".repeat(100_000) }));
    let url = serve(app).await;
    let response = reqwest::get(format!("{url}/big")).await.unwrap();
    let text = capped_body(response, 1_001).await;
    // 1001 bytes: 500 'é' and half of one, which lossy decoding turns into one U+FFFD.
    assert_eq!(text.chars().count(), 501);
    assert!(text.ends_with('\u{FFFD}'));
}
