//! The drill's own processes: ingest, aggregators A and B (one consumer group), the notifier
//! (`aggregator notify`, apart) and the webhook receiver it delivers to. Each ClickHouse client
//! has every node: its own first (A on the first shard, B and the notifier on the last), the
//! others as `failover_urls`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Json;
use serde_json::Value;

use super::Options;
use crate::bench::procs::{self, Service};
use crate::bench::{self, Names};
use crate::ToolsError;

/// Partitions of the drill's topics (`bench::create_topics`).
pub(super) const PARTITIONS: u64 = 4;

/// What the webhook received: `(alert_id, status)` per delivery, repeats kept.
pub(super) type Deliveries = Arc<Mutex<Vec<(String, String)>>>;

pub(super) struct Stack {
    ingest: Service,
    /// Aggregator A: `None` while killed.
    a: Option<Service>,
    b: Service,
    notifier: Service,
    a_config: PathBuf,
    a_port: u16,
    bin: PathBuf,
    work: PathBuf,
    pub(super) ingest_url: String,
    /// The broker (1-based, in `--brokers` order) ingest's producer is connected to: the one
    /// the drill kills. The consumer groups are bootstrapped on another.
    pub(super) ingest_broker: usize,
    pub(super) deliveries: Deliveries,
    /// Time from A's kill until B owned every partition, once seen.
    takeover: Arc<Mutex<Option<Duration>>>,
}

impl Stack {
    /// Migrates the cluster's schema and starts every process.
    pub(super) async fn start(
        opts: &Options,
        n: &Names,
        work: &Path,
        progress: impl Fn(&str),
    ) -> Result<Self, ToolsError> {
        let deliveries: Deliveries = Arc::default();
        let receiver = receiver(deliveries.clone()).await?;
        let bin = procs::binary(&opts.bin_dir, "aggregator")?;
        let last = opts.nodes.len() - 1;

        let write = |name: &str, text: String| -> Result<PathBuf, ToolsError> {
            let path = work.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        };
        let (ingest_port, ingest_admin) = (procs::free_port()?, procs::free_port()?);
        let ingest_config = write("ingest.toml", bench::ingest_toml(&opts.brokers, n, ingest_port, ingest_admin))?;
        let ingest_bin = procs::binary(&opts.bin_dir, "ingest")?;
        let ingest = Service::start(
            "ingest",
            &ingest_bin,
            &["--config", path(&ingest_config)],
            ingest_admin,
            "/readyz",
            &work.join("ingest.log"),
        )
        .await?;
        // Which broker ingest produces to (librdkafka picks one of the bootstrap brokers): the
        // broker the drill kills must be that one, or the kill proves nothing about ingest.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let brokers: Vec<&str> = opts.brokers.split(',').collect();
        let connected = connected_ports(ingest.pid());
        let ingest_broker = brokers
            .iter()
            .position(|b| {
                b.rsplit(':').next().and_then(|p| p.parse().ok()).is_some_and(|p: u16| connected.contains(&p))
            })
            .unwrap_or(0);
        let others: Vec<&str> =
            brokers.iter().enumerate().filter(|(i, _)| *i != ingest_broker).map(|(_, b)| *b).collect();
        let consumers = if others.is_empty() { opts.brokers.clone() } else { others.join(",") };
        progress(&format!(
            "ingest produces to {}; the consumer groups bootstrap on {consumers}",
            brokers[ingest_broker]
        ));
        let (a_port, b_port, notifier_port) = (procs::free_port()?, procs::free_port()?, procs::free_port()?);
        let a_config = write("aggregator-a.toml", aggregator_toml(opts, n, &consumers, a_port, 0, None))?;
        let b_config = write("aggregator-b.toml", aggregator_toml(opts, n, &consumers, b_port, last, None))?;
        let notifier_config =
            write("notifier.toml", aggregator_toml(opts, n, &consumers, notifier_port, last, Some(&receiver)))?;

        let migrated = Command::new(&bin).args(["--config", path(&a_config), "migrate"]).status()?;
        if !migrated.success() {
            return Err(ToolsError::Setup(format!("aggregator migrate on cluster {} failed", opts.cluster)));
        }
        progress("schema migrated ON CLUSTER");

        let a_args = ["--config", path(&a_config), "run"];
        let a = Service::start("aggregator A", &bin, &a_args, a_port, "/readyz", &work.join("a.log")).await?;
        let b_args = ["--config", path(&b_config), "run"];
        let b = Service::start("aggregator B", &bin, &b_args, b_port, "/readyz", &work.join("b.log")).await?;
        let notify = ["--config", path(&notifier_config), "notify"];
        let notifier =
            Service::start("notifier", &bin, &notify, notifier_port, "/readyz", &work.join("notifier.log")).await?;
        progress(&format!("ingest, aggregators A and B, notifier running; logs in {}", work.display()));
        Ok(Self {
            ingest,
            a: Some(a),
            b,
            notifier,
            a_config,
            a_port,
            bin,
            work: work.to_owned(),
            ingest_url: format!("http://127.0.0.1:{ingest_port}"),
            ingest_broker: ingest_broker + 1,
            deliveries,
            takeover: Arc::default(),
        })
    }

    /// Stops aggregator A (by its own handle): SIGKILL when `crash`, else SIGTERM (it leaves the
    /// group); and times how long until B owns every partition.
    pub(super) fn kill_aggregator(&mut self, crash: bool) {
        let stopped = Instant::now();
        if let Some(mut a) = self.a.take() {
            if crash {
                a.kill();
            } else {
                a.stop();
            }
        }
        *self.takeover.lock().expect("takeover lock") = None;
        let (b, takeover, killed) = (self.b.url.clone(), self.takeover.clone(), stopped);
        tokio::spawn(async move {
            while killed.elapsed() < Duration::from_secs(120) {
                if partitions_owned(&b).await == Some(PARTITIONS as i64) {
                    *takeover.lock().expect("takeover lock") = Some(killed.elapsed());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    /// B's takeover of A's partitions, waiting for it up to 45 s.
    pub(super) async fn takeover(&self) -> Option<Duration> {
        for _ in 0..450 {
            if let Some(t) = *self.takeover.lock().expect("takeover lock") {
                return Some(t);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub(super) async fn restart_aggregator(&mut self, progress: impl Fn(&str)) -> Result<(), ToolsError> {
        let args = ["--config", path(&self.a_config), "run"];
        let log = self.work.join("a-restarted.log");
        let a = Service::start("aggregator A", &self.bin, &args, self.a_port, "/readyz", &log).await?;
        progress("aggregator A restarted");
        self.a = Some(a);
        Ok(())
    }

    /// Failed evaluation passes and ClickHouse inserts (each retried) the running aggregators
    /// counted: B's whole run, A's since its restart.
    pub(super) async fn failures(&self) -> (u64, u64) {
        let mut sum = (0, 0);
        for url in [Some(&self.b.url), self.a.as_ref().map(|a| &a.url)].into_iter().flatten() {
            sum.0 += metric(url, "uptake_aggregator_evaluation_failures_total").await.unwrap_or(0);
            sum.1 += metric(url, "uptake_aggregator_insert_failures_total").await.unwrap_or(0);
        }
        sum
    }

    /// Stops everything this drill started, by pid (SIGTERM, then SIGKILL).
    pub(super) fn stop(&mut self) {
        self.ingest.stop();
        if let Some(a) = &mut self.a {
            a.stop();
        }
        self.b.stop();
        self.notifier.stop();
    }
}

/// Runs `hook what [broker]` (the cluster script's fault injection) and waits for it.
pub(super) fn hook(hook: &Path, what: &str, broker: usize) -> Result<(), ToolsError> {
    let status = Command::new(hook).arg(what).arg(broker.to_string()).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(ToolsError::Setup(format!("{} {what} failed ({status})", hook.display())))
    }
}

/// An aggregator's configuration: `first` is the index of its preferred ClickHouse node; the
/// notifier's has the webhook (the aggregators have none, so `run` starts no notifier).
fn aggregator_toml(
    opts: &Options,
    n: &Names,
    brokers: &str,
    admin: u16,
    first: usize,
    webhook: Option<&str>,
) -> String {
    let mut failover: Vec<&String> = opts.nodes.iter().collect();
    let url = failover.remove(first);
    let failover: Vec<String> = failover.iter().map(|u| format!("{u:?}")).collect();
    let mut toml = format!(
        r#"admin_listen = "127.0.0.1:{admin}"
[kafka]
brokers = "{brokers}"
group_id = "drill-{id}"
events_topic = "{events}"
alerts_topic = "{alerts}"
dlq_topic = "{dlq}"
[clickhouse]
url = "{url}"
failover_urls = [{failover}]
database = "{db}"
cluster = "{cluster}"
[batch]
max_wait_ms = 200
[evaluation]
interval_ms = 2000
settle_ms = 5000
[notifier]
group_id = "drill-{id}-notifier"
[kafka.librdkafka]
# A dead member's partitions go to the other after this, not librdkafka's 45 s.
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "1000"
# Tansu 0.6 on PostgreSQL 15 fails read_committed offset lookups ("subquery in FROM must have
# an alias"; PostgreSQL 16 accepts it): no transactions are used, so this reads the same records.
"isolation.level" = "read_uncommitted"
"#,
        brokers = brokers,
        id = n.id,
        events = n.events_topic,
        alerts = n.alerts_topic,
        dlq = n.dlq_topic,
        failover = failover.join(", "),
        db = n.db,
        cluster = opts.cluster,
    );
    if let Some(url) = webhook {
        toml.push_str(&format!("[[notifier.webhooks]]\nname = \"drill\"\nurl = \"{url}\"\nformat = \"json\"\n"));
    }
    toml
}

/// A webhook receiver on a free port: records `(alert_id, status)` of every delivery.
async fn receiver(deliveries: Deliveries) -> Result<String, ToolsError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route(
            "/hook",
            post(|State(d): State<Deliveries>, Json(body): Json<Value>| async move {
                let field = |k: &str| body["alert"][k].as_str().unwrap_or_default().to_owned();
                d.lock().expect("deliveries lock").push((field("alert_id"), field("status")));
            }),
        )
        .with_state(deliveries);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// `uptake_aggregator_partitions_owned` of the aggregator at `url`, if it answers.
async fn partitions_owned(url: &str) -> Option<i64> {
    metric(url, "uptake_aggregator_partitions_owned").await.map(|v| v as i64)
}

/// The value of the unlabelled series `name` on `url`'s `/metrics`, if it answers.
async fn metric(url: &str, name: &str) -> Option<u64> {
    let text = bench::scrape(url).await;
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|v| v as u64)
}

/// The remote TCP ports `pid` has established connections to (Linux: its socket inodes in
/// /proc/PID/fd, looked up in /proc/PID/net/tcp and tcp6).
fn connected_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // remote address `IP:PORT` in hex, state 01 = ESTABLISHED, inode in column 10.
            if f.len() > 9 && f[3] == "01" && inodes.contains(f[9]) {
                if let Some(port) = f[2].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
