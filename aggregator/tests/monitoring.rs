//! The monitoring, end to end (issue 22): Debian's Prometheus scrapes a real ingest (on a broker
//! of its own, which this test stops), aggregator and console (on the test stack's broker,
//! ClickHouse behind a fault proxy) and evaluates deploy/prometheus/uptake-alerts.yml;
//! Alertmanager routes to a webhook receiver in this test.
//!
//! - Every rule's expression, and every panel's of the Grafana dashboards, is evaluated by that
//!   Prometheus, and every metric it names must have a series there: a misspelt metric name
//!   fails this test (a typo'd rule never fires, a typo'd panel stays empty).
//! - ClickHouse is cut: `UptakeInsertsFailing` is seen firing in Prometheus's API and delivered by
//!   Alertmanager to the receiver; ClickHouse is restored: the alert resolves and the resolution
//!   is delivered too.
//! - ingest's broker is stopped (SIGKILL) while events keep arriving: `UptakeIngestNotReady` and
//!   `UptakeIngestUnavailable` (503s) fire and are delivered; the broker restarted, both resolve.
//!
//! The rules run as shipped but for their durations: `for` and the range windows are shortened
//! (minutes to seconds) so that the test takes a minute, not half an hour. Prometheus and
//! Alertmanager are child processes of this test, killed by their handles when it ends.
//!
//! Run by `deploy/local/test.sh` (which installs Prometheus and Alertmanager); ignored by a bare
//! `cargo test`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aggregator::config::WebhookConfig;
use axum::extract::State;
use axum::routing::post;
use axum::Json;
use chrono::Utc;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use schemas::event::{Event, EventKind};
use serde_json::Value;
use testkit::{create_topics, free_port, OwnBroker, Proxy, Stack};

const RULES: &str = include_str!("../../deploy/prometheus/uptake-alerts.yml");
/// The Grafana dashboards (deploy/grafana/dashboards.py writes them): every panel's expression
/// is evaluated too.
const DASHBOARDS: [&str; 4] = [
    include_str!("../../deploy/grafana/dashboards/uptake-overview.json"),
    include_str!("../../deploy/grafana/dashboards/uptake-ingest.json"),
    include_str!("../../deploy/grafana/dashboards/uptake-aggregator.json"),
    include_str!("../../deploy/grafana/dashboards/uptake-notifier.json"),
];

/// A child process killed (by its own handle, so by its pid) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(binary: &'static str, args: &[String], log: &Path) -> Process {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{binary}: {e} (deploy/local/check_deploy.sh installs Debian's prometheus packages)")
        });
    Process(child)
}

/// The shipped rules with minutes made seconds: `for: 5m` → `for: 2s`, `[15m]` → `[20s]`.
fn quick_rules() -> String {
    let mut out = String::new();
    for line in RULES.lines() {
        let mut line = line.to_owned();
        if line.trim_start().starts_with("for:") {
            line = format!("{}for: 2s", &line[..line.len() - line.trim_start().len()]);
        }
        for window in ["[5m]", "[10m]", "[15m]", "[30m]"] {
            line = line.replace(window, "[20s]");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Every panel expression of the dashboards, with the dashboard's uid and the panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for text in DASHBOARDS {
        let d: Value = serde_json::from_str(text).unwrap();
        for panel in d["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let name = format!("{} / {}", d["uid"].as_str().unwrap(), panel["title"].as_str().unwrap());
                out.push((name, target["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    out
}

/// Every metric name an expression reads: `uptake_…` identifiers and `up`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("uptake_") || *t == "up")
        .map(str::to_owned)
        .collect()
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// `None` while nothing answers at `url` yet: Prometheus takes a moment to bind its port after
/// it is spawned, longer on a loaded machine (a CI run once found the port still closed).
async fn json_once_up(url: &str) -> Option<Value> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

/// Polls `check` every 500 ms until it returns `Some`, for at most `secs` seconds.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const KEY: &str = "monitoring-key-0123456789abcdef0123";

/// One login through ingest's native API; its HTTP status.
async fn send(http: &reqwest::Client, ingest: &str, i: usize) -> u16 {
    let body = serde_json::json!({"kind": "login", "account_id": "acct-http", "user_id": format!("h{i}"),
                                  "timestamp": Utc::now(), "message_id": format!("http-{i}")});
    let r = http.post(format!("{ingest}/v1/events")).bearer_auth(KEY).json(&body).send().await.unwrap();
    r.status().as_u16()
}

async fn produce(producer: &FutureProducer, topic: &str, from: usize, n: usize) {
    for i in from..from + n {
        let now = Utc::now();
        let e = Event::new(
            EventKind::Login,
            format!("mon-{i:06}"),
            format!("acct-{}", i % 7),
            format!("u{}", i % 20),
            now,
            now,
            "mon".into(),
        );
        let payload = serde_json::to_vec(&e).unwrap();
        producer
            .send(FutureRecord::to(topic).key(&e.account_id).payload(&payload), Duration::from_secs(10))
            .await
            .unwrap();
    }
}

/// The state of alert `name` in Prometheus (`firing`, `pending`), if it is active.
async fn alert_state(prometheus: &str, name: &str) -> Option<String> {
    let alerts = get_json(&format!("{prometheus}/api/v1/alerts")).await;
    alerts["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .and_then(|a| a["state"].as_str().map(str::to_owned))
}

/// Whether the receiver got a notification of status `status` about alert `name`.
fn delivered(received: &Mutex<Vec<Value>>, name: &str, status: &str) -> bool {
    received.lock().unwrap().iter().any(|n| {
        n["alerts"]
            .as_array()
            .is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["alertname"] == name && a["status"] == status))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the local stack and Prometheus: run deploy/local/test.sh"]
async fn an_outage_fires_its_alert_through_prometheus_and_alertmanager_and_resolves() {
    let stack = Stack::from_env("monitoring");
    let dir: PathBuf = stack.temp_path("monitoring");
    std::fs::create_dir_all(&dir).unwrap();

    // The receiver Alertmanager delivers to: every notification's JSON body, kept.
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/hook", receiver.local_addr().unwrap());
    let app = axum::Router::new()
        .route(
            "/hook",
            post(|State(r): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                r.lock().unwrap().push(body);
            }),
        )
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    // ingest and the aggregator (with a webhook, so the notifier's series exist), ClickHouse
    // behind a proxy this test can cut; consumer-lag statistics every second.
    let proxy = Proxy::start(stack.clickhouse.trim_start_matches("http://")).await;
    let mut cfg = testkit::aggregator::config(&stack, "monitoring", 2).await;
    cfg.clickhouse.url = proxy.url();
    cfg.batch.max_wait_ms = 100;
    cfg.evaluation.interval_ms = 1_000;
    cfg.kafka.librdkafka.insert("statistics.interval.ms".into(), "1000".into());
    let hook = format!("name = \"csm\"\nurl = \"{receiver_url}\"\nformat = \"json\"");
    cfg.notifier.webhooks = vec![toml::from_str::<WebhookConfig>(&hook).unwrap()];
    let events_topic = cfg.kafka.events_topic.clone();
    let cfg = cfg.build_and_validate().unwrap();
    let console =
        testkit::console::start_console_with_admin(cfg.clone(), &["dana"], "", schemas::runtime::Clock::system()).await;
    let aggregator = testkit::aggregator::start(cfg).await;
    // ingest writes to a broker this test can stop (its events are not needed downstream: the
    // aggregator's traffic is produced onto the stack's topic below). A 503 comes after 1 s.
    let mut broker = OwnBroker::start("monitoring").await;
    create_topics(&broker.address(), &["usage-events", "usage-events-dlq"], 1).await;
    let mut ingest_cfg = testkit::ingest::config_for(&broker.address(), KEY, "mon");
    ingest_cfg.kafka.delivery_timeout_ms = 1_000;
    let ingest = testkit::ingest::serve(ingest_cfg).await;

    // Alertmanager, routing everything to the receiver at once, resolutions included.
    let am_port = free_port();
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, instance]\n  group_wait: 1s\n  group_interval: 1s\n  \
             repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: {receiver_url}\n        \
             send_resolved: true\n"
        ),
    )
    .unwrap();
    let _alertmanager = spawn(
        "/usr/bin/prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        &dir.join("alertmanager.log"),
    );

    // Prometheus: the shipped rules (quick), the two services under the job names they expect.
    let prom_port = free_port();
    std::fs::write(dir.join("uptake-alerts.yml"), quick_rules()).unwrap();
    let target = |url: &str| url.trim_start_matches("http://").to_owned();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [uptake-alerts.yml]\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: uptake-ingest\n    static_configs:\n      - targets: ['{}']\n  \
             - job_name: uptake-aggregator\n    static_configs:\n      - targets: ['{}']\n  \
             - job_name: uptake-console\n    static_configs:\n      - targets: ['{}']\n",
            target(&ingest.admin_url),
            target(&aggregator.admin_url),
            target(console.admin_url.as_deref().unwrap())
        ),
    )
    .unwrap();
    let _prometheus = spawn(
        "/usr/bin/prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        &dir.join("prometheus.log"),
    );
    let prometheus = format!("http://127.0.0.1:{prom_port}");

    // Traffic through ingest (so its request series exist) and straight onto the topic.
    let http = reqwest::Client::new();
    for i in 0..5 {
        assert_eq!(send(&http, &ingest.url, i).await, 200);
    }
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    produce(&producer, &events_topic, 0, 50).await;

    // Both targets up, the rules loaded, the consumer-lag series scraped.
    until(60, "the three targets up", || async {
        let t = json_once_up(&format!("{prometheus}/api/v1/targets")).await?;
        let active = t["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        (active.len() == 3 && active.iter().all(|a| a["health"] == "up")).then_some(())
    })
    .await;
    let rules = until(30, "the rules loaded", || async {
        let r = get_json(&format!("{prometheus}/api/v1/rules")).await;
        let rules: Vec<(String, String)> = r["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| {
                (r["name"].as_str().unwrap_or_default().to_owned(), r["query"].as_str().unwrap_or_default().to_owned())
            })
            .collect();
        (!rules.is_empty()).then_some(rules)
    })
    .await;
    assert_eq!(rules.len(), RULES.matches("- alert:").count(), "every rule of the file loaded");

    // Every expression, of the rules and of the dashboards' panels, evaluates, and every metric it
    // names has a series here.
    let panels = dashboard_queries();
    assert!(panels.len() >= 30, "{} panel queries", panels.len());
    let queries: Vec<(String, String)> = rules.iter().cloned().chain(panels).collect();
    let names: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    assert!(names.len() >= 15, "{names:?}");
    // (A series appears with the scrape after its first use: retried for a while.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        for name in &names {
            let r = get_json(&format!("{prometheus}/api/v1/series?match[]={name}")).await;
            if r["data"].as_array().is_none_or(|s| s.is_empty()) {
                missing.push(name.clone());
            }
        }
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the rules or dashboards name metrics no service exports: {missing:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (name, query) in &queries {
        let r = http.get(format!("{prometheus}/api/v1/query")).query(&[("query", query)]).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{name}: {query} → {body}");
    }
    assert_eq!(alert_state(&prometheus, "UptakeInsertsFailing").await, None, "healthy before the fault");

    // The fault: ClickHouse unreachable while events keep coming.
    proxy.cut();
    let mut sent = 50;
    until(90, "UptakeInsertsFailing delivered by Alertmanager", || {
        let (producer, topic, received, prometheus) = (&producer, &events_topic, &received, &prometheus);
        sent += 5;
        let from = sent;
        async move {
            produce(producer, topic, from, 5).await;
            let firing = alert_state(prometheus, "UptakeInsertsFailing").await.as_deref() == Some("firing");
            (firing && delivered(received, "UptakeInsertsFailing", "firing")).then_some(())
        }
    })
    .await;

    // Lifted: the inserts succeed, the failure rate falls to 0, the alert resolves.
    proxy.restore();
    until(120, "UptakeInsertsFailing resolved and the resolution delivered", || async {
        let gone = alert_state(&prometheus, "UptakeInsertsFailing").await.is_none();
        (gone && delivered(&received, "UptakeInsertsFailing", "resolved")).then_some(())
    })
    .await;

    // The broker stops while events keep arriving: ingest is not ready and answers 503.
    let unavailable = ["UptakeIngestNotReady", "UptakeIngestUnavailable"];
    broker.kill();
    let mut n = 5;
    let refused = until(90, "UptakeIngestNotReady and UptakeIngestUnavailable delivered", || {
        n += 1;
        let (http, url, received, prometheus) = (&http, &ingest.url, &received, &prometheus);
        async move {
            let status = send(http, url, n).await;
            let mut all = true;
            for name in unavailable {
                let firing = alert_state(prometheus, name).await.as_deref() == Some("firing");
                all &= firing && delivered(received, name, "firing");
            }
            all.then_some(status)
        }
    })
    .await;
    assert_eq!(refused, 503, "an event the broker cannot take is refused, not acknowledged");

    // Restarted: events are acknowledged again and both alerts resolve.
    broker.restart().await;
    until(150, "UptakeIngestNotReady and UptakeIngestUnavailable resolved and delivered", || {
        n += 1;
        let (http, url, received, prometheus) = (&http, &ingest.url, &received, &prometheus);
        async move {
            let accepted = send(http, url, n).await == 200;
            let mut all = accepted;
            for name in unavailable {
                all &= alert_state(prometheus, name).await.is_none() && delivered(received, name, "resolved");
            }
            all.then_some(())
        }
    })
    .await;

    ingest.stop().await.unwrap();
    aggregator.stop().await.unwrap();
}

#[test]
fn quick_rules_keep_every_rule_and_shorten_only_durations() {
    let quick = quick_rules();
    assert_eq!(quick.matches("- alert:").count(), RULES.matches("- alert:").count());
    assert!(!quick.contains("[5m]") && !quick.contains("for: 10m"), "{quick}");
    assert!(quick.contains("for: 2s") && quick.contains("[20s]"));
    assert_eq!(
        metric_names("sum(rate(uptake_a_total{job=\"x\"}[5m])) > 0 and up == 0"),
        ["uptake_a_total", "up"].map(String::from).into()
    );
}
