//! `drill`: uptake on a cluster with nodes killed under load (issue 23, docs/scaling.md).
//!
//! Starts ingest, two aggregators and the notifier (release or debug binaries) against a
//! sharded, replicated ClickHouse and a multi-broker Kafka that `deploy/local/cluster_test.sh`
//! runs, sends loadgen's book through ingest, and meanwhile, in this order:
//! - kills a ClickHouse replica with SIGKILL and brings it back (`--hook kill-clickhouse`, then
//!   `restart-clickhouse`; the script kills by the pid it recorded);
//! - kills a broker (`kill-broker`, `restart-broker`);
//! - kills one aggregator with SIGKILL (this drill started it); the other takes its partitions;
//!   then restarts it.
//!
//! Then [`verify`] counts on every replica of every shard: every acknowledged event stored
//! exactly once, each account's metrics on exactly one shard, every alert record stored once and
//! delivered once to the webhook. A count that comes out wrong fails the run.

mod services;
mod verify;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::bench::{self, Names};
use crate::loadgen::send::Sender;
use crate::loadgen::{day_events, Book, Format};
use crate::ToolsError;
pub use verify::Report;

/// What the drill runs against and how big its book is.
#[derive(Debug, Clone)]
pub struct Options {
    /// Kafka bootstrap servers, every broker (`a:9092,b:9092`): ingest's. The broker ingest
    /// produces to is the one killed; the consumer groups bootstrap on the others.
    pub brokers: String,
    /// Every ClickHouse node's HTTP URL, shard by shard, replicas in order
    /// (`s1r1,s1r2,s2r1,s2r2`).
    pub nodes: Vec<String>,
    /// Replicas per shard (`nodes` is shards × this).
    pub replicas: usize,
    /// The `remote_servers` cluster name.
    pub cluster: String,
    pub bin_dir: PathBuf,
    /// Called with `kill-clickhouse`, `restart-clickhouse`, `kill-broker`, `restart-broker`.
    pub hook: PathBuf,
    pub accounts: usize,
    pub days: u32,
    pub seed: u64,
}

/// A phase's fault, applied when its share of the book has been sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Hook(&'static str),
    /// SIGTERM: A leaves the group; B must own every partition soon after.
    StopAggregator,
    /// SIGKILL: A vanishes; the group notices when A's session times out.
    KillAggregator,
    RestartAggregator,
}

/// When each fault comes (share of the book's days sent) and the least time the load runs
/// with it before the next.
const SCHEDULE: [(f64, Fault, Duration); 8] = [
    (0.12, Fault::Hook("kill-clickhouse"), Duration::from_secs(8)),
    (0.25, Fault::Hook("restart-clickhouse"), Duration::from_secs(3)),
    (0.35, Fault::Hook("kill-broker"), Duration::from_secs(8)),
    (0.47, Fault::Hook("restart-broker"), Duration::from_secs(3)),
    (0.55, Fault::StopAggregator, Duration::from_secs(3)),
    (0.65, Fault::RestartAggregator, Duration::from_secs(3)),
    (0.75, Fault::KillAggregator, Duration::from_secs(12)),
    (0.88, Fault::RestartAggregator, Duration::from_secs(3)),
];

/// Runs the drill; `progress` gets a line per step.
pub async fn run(opts: &Options, today: NaiveDate, progress: impl Fn(&str)) -> Result<Report, ToolsError> {
    if opts.nodes.is_empty() || opts.replicas == 0 || !opts.nodes.len().is_multiple_of(opts.replicas) {
        return Err(ToolsError::Setup("--clickhouse must list shards × --replicas nodes".into()));
    }
    let book = Book::new(opts.accounts, opts.days, opts.seed, today);
    let n = Names::new("drill");
    let work = std::env::temp_dir().join(format!("uptake-{}", n.id));
    std::fs::create_dir_all(&work)?;
    bench::create_topics(&opts.brokers, &[&n.events_topic, &n.alerts_topic, &n.dlq_topic]).await?;
    progress(&format!("topics {} on {}; database {} on cluster {}", n.events_topic, opts.brokers, n.db, opts.cluster));

    let mut stack = services::Stack::start(opts, &n, &work, &progress).await?;
    let sender = Sender::new(&stack.ingest_url, bench::WRITE_KEY, Format::Native);

    let days: Vec<NaiveDate> = book.days().collect();
    let mut sent = 0u64;
    let mut log = Vec::new();
    let mut next = 0;
    let mut phase_start = Instant::now();
    let mut broker_down: Option<Instant> = None;
    let mut broker_503 = None;
    let mut takeovers = Vec::new();
    let started = Instant::now();
    for (k, day) in days.iter().enumerate() {
        while next < SCHEDULE.len() && (k as f64) >= SCHEDULE[next].0 * days.len() as f64 {
            let (_, fault, _) = SCHEDULE[next];
            if next > 0 {
                // The previous fault has had its time under load.
                let least = SCHEDULE[next - 1].2;
                tokio::time::sleep(least.saturating_sub(phase_start.elapsed())).await;
            }
            let at = started.elapsed().as_secs_f64();
            match fault {
                Fault::Hook(what) => services::hook(&opts.hook, what, stack.ingest_broker)?,
                Fault::StopAggregator => stack.kill_aggregator(false),
                Fault::KillAggregator => stack.kill_aggregator(true),
                Fault::RestartAggregator => {
                    takeovers.push(stack.takeover().await);
                    stack.restart_aggregator(&progress).await?;
                }
            }
            match fault {
                Fault::Hook("kill-broker") => broker_down = Some(Instant::now()),
                Fault::Hook("restart-broker") => {
                    let refused = sender.refused_at.lock().expect("refusals lock");
                    broker_503 = broker_down.map(|from| refusal_span(&refused, from));
                }
                _ => {}
            }
            progress(&format!("{at:6.1} s  {fault:?} (after {sent} events sent)"));
            log.push((at, format!("{fault:?}"), sent));
            phase_start = Instant::now();
            next += 1;
        }
        let events = day_events(&book, *day);
        sender.send_all(&events, 200, 4).await?;
        sent += events.len() as u64;
    }
    let accepted = sender.accepted.load(Ordering::Relaxed);
    progress(&format!(
        "{accepted} events acknowledged in {:.0} s; waiting for the cluster",
        started.elapsed().as_secs_f64()
    ));

    let report = verify::verify(opts, &n, &book, accepted, &stack, &progress).await?;
    stack.stop();
    let refusals = sender.refused_at.lock().expect("refusals lock").len();
    let mut report = Report { faults: log, broker_503, refusals, ..report };
    (report.takeover_stopped, report.takeover_killed) = (takeovers[0], takeovers[1]);
    if report.takeover_stopped.is_none_or(|t| t > Duration::from_secs(30)) {
        report.failures.push("aggregator B did not take A's partitions within 30 s of A leaving".into());
    }
    // The services' logs and configs are for reading a failure; a drill that passed leaves
    // nothing behind (one directory in /tmp per CI run before).
    if report.failures.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        progress(&format!("logs kept in {}", work.display()));
    }
    Ok(report)
}

/// How long ingest refused events after the broker was killed: from the kill to the last
/// refusal recorded since (0 when none).
fn refusal_span(refusals: &[Instant], from: Instant) -> Duration {
    refusals.iter().filter(|t| **t >= from).max().map_or(Duration::ZERO, |last| last.duration_since(from))
}
