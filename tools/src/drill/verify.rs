//! What the drill checks once the load and the faults are over, counting on every node: the
//! acknowledged events stored exactly once (each replica of a shard holding the same rows, no
//! message id on two shards), each account's events and metrics on one shard, and each alert
//! record stored once and delivered once to the webhook.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use warehouse::{ClickHouseConfig, Warehouse, WarehouseError};

use super::services::Stack;
use super::Options;
use crate::bench::Names;
use crate::loadgen::Book;
use crate::ToolsError;

/// One node's local tables after the drill.
#[derive(Debug, Clone, Default)]
pub struct NodeCount {
    pub url: String,
    pub shard: usize,
    pub replica: usize,
    pub events: u64,
    pub distinct_ids: u64,
    pub metric_accounts: u64,
}

/// The drill's figures and every check that failed.
#[derive(Debug, Default)]
pub struct Report {
    pub acknowledged: u64,
    pub nodes: Vec<NodeCount>,
    pub stored: u64,
    pub stored_distinct: u64,
    /// Accounts whose events are on more than one shard, and whose metrics are.
    pub accounts_split: usize,
    pub metrics_split: usize,
    pub accounts_with_metrics: usize,
    pub alert_records: usize,
    pub alert_records_twice: usize,
    pub deliveries: usize,
    pub delivered_twice: usize,
    pub undelivered: usize,
    /// (seconds into the load, fault, events sent before it).
    pub faults: Vec<(f64, String, u64)>,
    /// From the broker's kill to the last refusal the sender saw.
    pub broker_503: Option<Duration>,
    /// From aggregator A's SIGTERM (it leaves the group) until B owned every partition.
    pub takeover_stopped: Option<Duration>,
    /// From A's SIGKILL until B owned every partition (within 45 s, or not seen).
    pub takeover_killed: Option<Duration>,
    pub refusals: usize,
    /// Evaluation passes and inserts that failed and were retried (aggregator B, A restarted).
    pub failed_passes: u64,
    pub failed_inserts: u64,
    pub failures: Vec<String>,
}

pub(super) async fn verify(
    opts: &Options,
    n: &Names,
    book: &Book,
    acknowledged: u64,
    stack: &Stack,
    progress: impl Fn(&str),
) -> Result<Report, ToolsError> {
    let local = warehouse::cluster::local_database(&n.db);
    let node = |url: &String| {
        Warehouse::new(&ClickHouseConfig { url: url.clone(), database: local.clone(), ..Default::default() })
    };
    let nodes: Vec<Warehouse> = opts.nodes.iter().map(node).collect();
    let all = Warehouse::new(&ClickHouseConfig {
        url: opts.nodes[0].clone(),
        failover_urls: opts.nodes[1..].to_vec(),
        database: n.db.clone(),
        cluster: opts.cluster.clone(),
        ..Default::default()
    });
    let mut report = Report { acknowledged, ..Default::default() };

    // Stored, and replicated: every replica of a shard as many rows as its first.
    let settled = until(Duration::from_secs(240), || async {
        let counts = counts(&nodes, "SELECT count() FROM {db}.events").await;
        let shards: Vec<&[u64]> = counts.chunks(opts.replicas).collect();
        let even = shards.iter().all(|s| s.iter().all(|c| *c == s[0]));
        let total: u64 = shards.iter().map(|s| s[0]).sum();
        (even && total >= acknowledged).then_some(())
    })
    .await;
    if settled.is_none() {
        report.failures.push("events not stored and replicated on every node within 240 s".into());
    }
    let (stored, stored_distinct): (u64, u64) = all
        .query("SELECT count(), uniqExact(message_id) FROM {db}.events")
        .fetch_one()
        .await
        .map_err(WarehouseError::from)?;
    (report.stored, report.stored_distinct) = (stored, stored_distinct);
    if stored_distinct < acknowledged {
        report.failures.push(format!("{} acknowledged events not stored", acknowledged - stored_distinct));
    }
    if stored != stored_distinct {
        report.failures.push(format!("{} events stored twice", stored - stored_distinct));
    }

    // Each account's metrics written, on the shard of its events.
    let accounts = book.accounts.len();
    let metrics = "SELECT uniqExact(account_id) FROM {db}.account_metrics";
    if until(Duration::from_secs(180), || async { (count(&all, metrics).await >= accounts as u64).then_some(()) })
        .await
        .is_none()
    {
        report.failures.push(format!("metrics of {accounts} accounts not written within 180 s"));
    }
    let events_on = shard_accounts(&nodes, opts.replicas, "SELECT DISTINCT account_id FROM {db}.events").await;
    let metrics_on =
        shard_accounts(&nodes, opts.replicas, "SELECT DISTINCT account_id FROM {db}.account_metrics").await;
    report.accounts_split = split(&events_on);
    report.metrics_split = split(&metrics_on);
    report.accounts_with_metrics = metrics_on.values().flatten().collect::<BTreeSet<_>>().len();
    let misplaced = metrics_on.iter().map(|(s, a)| a.iter().filter(|x| !events_on[s].contains(*x)).count()).sum();
    for (what, n) in [
        ("events", report.accounts_split),
        ("metrics", report.metrics_split),
        ("metrics off their events' shard", misplaced),
    ] {
        if n > 0 {
            report.failures.push(format!("{n} accounts with {what} on more than one shard"));
        }
    }

    for (i, (url, wh)) in opts.nodes.iter().zip(&nodes).enumerate() {
        let (events, distinct_ids): (u64, u64) = wh
            .query("SELECT count(), uniqExact(message_id) FROM {db}.events")
            .fetch_one()
            .await
            .map_err(WarehouseError::from)?;
        let metric_accounts = count(wh, "SELECT uniqExact(account_id) FROM {db}.account_metrics").await;
        let (shard, replica) = (i / opts.replicas + 1, i % opts.replicas + 1);
        report.nodes.push(NodeCount { url: url.clone(), shard, replica, events, distinct_ids, metric_accounts });
    }

    (report.failed_passes, report.failed_inserts) = stack.failures().await;
    if report.failed_passes > 0 {
        // A replica or a broker dying must cost retries of inserts, not failed passes.
        report.failures.push(format!("{} evaluation passes failed", report.failed_passes));
    }

    // Alert records: each stored once, and delivered once.
    let records: Vec<(String, String, u64)> = all
        .query("SELECT alert_id, status, count() FROM {db}.alerts GROUP BY alert_id, status")
        .fetch_all()
        .await
        .map_err(WarehouseError::from)?;
    report.alert_records = records.len();
    report.alert_records_twice = records.iter().filter(|r| r.2 > 1).count();
    for (id, status, _) in records.iter().filter(|r| r.2 > 1).take(3) {
        let rows: Vec<(String, String, u32)> = all
            .query(
                "SELECT account_id, rule_id, toUInt32(recorded_at) FROM {db}.alerts WHERE alert_id = ? AND status = ?",
            )
            .bind(id)
            .bind(status)
            .fetch_all()
            .await
            .map_err(WarehouseError::from)?;
        progress(&format!("stored twice: {id} {status}: {rows:?}"));
    }
    let wanted: BTreeSet<(String, String)> = records.into_iter().map(|(a, s, _)| (a, s)).collect();
    progress(&format!("{} alert records stored; waiting for their deliveries", wanted.len()));
    let delivered = || stack.deliveries.lock().expect("deliveries lock").clone();
    until(Duration::from_secs(120), || async {
        let got: BTreeSet<(String, String)> = delivered().into_iter().collect();
        wanted.is_subset(&got).then_some(())
    })
    .await;
    let mut per_record: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in delivered() {
        *per_record.entry(d).or_default() += 1;
    }
    report.deliveries = per_record.values().sum();
    report.delivered_twice = per_record.values().filter(|n| **n > 1).count();
    report.undelivered = wanted.iter().filter(|r| !per_record.contains_key(*r)).count();
    if report.alert_records == 0 {
        report.failures.push("no alert raised: nothing proven about alerts".into());
    }
    for (what, n) in [
        ("alert records stored twice", report.alert_records_twice),
        ("alert records delivered twice", report.delivered_twice),
        ("alert records never delivered", report.undelivered),
    ] {
        if n > 0 {
            report.failures.push(format!("{n} {what}"));
        }
    }
    Ok(report)
}

/// `sql` (one number) on each node; 0 where a node does not answer.
async fn counts(nodes: &[Warehouse], sql: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for wh in nodes {
        out.push(count(wh, sql).await);
    }
    out
}

async fn count(wh: &Warehouse, sql: &str) -> u64 {
    wh.query(sql).fetch_one().await.unwrap_or(0)
}

/// The accounts `sql` lists on each shard's first replica.
async fn shard_accounts(nodes: &[Warehouse], replicas: usize, sql: &str) -> BTreeMap<usize, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (s, shard) in nodes.chunks(replicas).enumerate() {
        out.insert(s + 1, shard[0].query(sql).fetch_all::<String>().await.unwrap_or_default().into_iter().collect());
    }
    out
}

/// Accounts listed on more than one shard.
fn split(on: &BTreeMap<usize, BTreeSet<String>>) -> usize {
    let mut seen: BTreeMap<&String, usize> = BTreeMap::new();
    for accounts in on.values() {
        for a in accounts {
            *seen.entry(a).or_default() += 1;
        }
    }
    seen.values().filter(|n| **n > 1).count()
}

/// Polls `check` every 500 ms until it returns `Some`, for at most `limit`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "faults under load:")?;
        for (at, fault, sent) in &self.faults {
            writeln!(f, "  {at:6.1} s  {fault:<32} after {sent} events sent")?;
        }
        let secs = |d: Option<Duration>| d.map_or("not seen".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        match (self.refusals, self.broker_503) {
            (0, _) => writeln!(f, "ingest refusals (503/429): none, through every fault")?,
            (n, Some(span)) => writeln!(
                f,
                "ingest refusals (503/429, retried): {n}; the last {:.1} s after the broker kill",
                span.as_secs_f64()
            )?,
            (n, None) => writeln!(f, "ingest refusals (503/429, retried): {n}")?,
        }
        writeln!(
            f,
            "aggregator B owned every partition {} after A's SIGTERM, {} after its SIGKILL",
            secs(self.takeover_stopped),
            secs(self.takeover_killed)
        )?;
        writeln!(
            f,
            "retried by the aggregators (B, and A since its restart): {} failed inserts, {} failed evaluation passes",
            self.failed_inserts, self.failed_passes
        )?;
        writeln!(
            f,
            "events acknowledged {}, stored {} ({} distinct)",
            self.acknowledged, self.stored, self.stored_distinct
        )?;
        writeln!(f, "| node | shard | replica | events | distinct ids | accounts with metrics |")?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|")?;
        for n in &self.nodes {
            writeln!(
                f,
                "| {} | {} | {} | {} | {} | {} |",
                n.url, n.shard, n.replica, n.events, n.distinct_ids, n.metric_accounts
            )?;
        }
        writeln!(
            f,
            "accounts with metrics {}; on more than one shard: events {}, metrics {}",
            self.accounts_with_metrics, self.accounts_split, self.metrics_split
        )?;
        writeln!(
            f,
            "alert records {} (stored twice {}); deliveries {} (twice {}, missing {})",
            self.alert_records, self.alert_records_twice, self.deliveries, self.delivered_twice, self.undelivered
        )?;
        if self.failures.is_empty() {
            writeln!(f, "PASS")
        } else {
            writeln!(f, "FAIL: {}", self.failures.join("; "))
        }
    }
}
