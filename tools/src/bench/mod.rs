//! `bench`: one run on the local stack that measures uptake against the limits measured in the
//! same run — the raw rdkafka producer and consumer on the same broker, the raw ClickHouse
//! insert on the same server — and prints absolute figures, ratios and the targets.
//!
//! It starts its own ingest and aggregator processes (release binaries) on free ports, with
//! throwaway topics and databases on the running broker and ClickHouse, so a running demo stack
//! is left alone; it measures their CPU time and peak RSS through /proc and stops them by pid.

mod console;
mod data;
mod eval;
pub mod history;
mod latency;
mod load;
pub(crate) mod procs;
mod raw;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::ToolsError;
use aggregator::{AggregatorConfig, RawAggregatorConfig};
use warehouse::Warehouse;

pub use report::Report;

/// A throughput: `count` items in `elapsed`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub count: usize,
    pub elapsed: Duration,
}

impl Rate {
    pub fn new(count: usize, elapsed: Duration) -> Self {
        Self { count, elapsed }
    }
    pub fn per_sec(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What to run, and how big.
#[derive(Debug, Clone)]
pub struct Options {
    pub brokers: String,
    pub clickhouse: String,
    /// Where the `ingest` and `aggregator` release binaries are.
    pub bin_dir: PathBuf,
    /// Events for the throughput phases.
    pub events: usize,
    /// Accounts those events belong to.
    pub accounts: usize,
    /// Single-event request rates to measure latency at (requests/s).
    pub rates: Vec<u32>,
    /// Seconds per fixed-rate run.
    pub rate_secs: f64,
    /// Search for the highest rate with p99 ≤ 10 ms beyond the listed rates.
    pub find_max_rate: bool,
    /// Background load (events/s) and seconds of the end-to-end phase.
    pub e2e_rate: u32,
    pub e2e_secs: u32,
    /// Book sizes for the evaluation timing.
    pub eval_accounts: Vec<usize>,
    /// The history cases: books with months of daily activity (`bench/history.rs`).
    pub history: Vec<history::Case>,
    /// Only the evaluation phases (no broker throughput, latency or end-to-end phases).
    pub only_evaluation: bool,
    /// Keep the bench databases afterwards (for inspection).
    pub keep: bool,
    /// A smoke run (see [`Options::smoke`]).
    pub smoke: bool,
    /// Only the single-event latency phase (ingest and the raw producer; `bench --latency`).
    pub latency_only: bool,
    /// librdkafka properties for ingest's producer and the raw producers alike (`--producer
    /// linger.ms=1`): the producer settings experiment on both sides of the comparison at once.
    pub producer: Vec<(String, String)>,
    /// librdkafka properties for the aggregator's clients (`--consumer fetch.wait.max.ms=100`).
    pub consumer: Vec<(String, String)>,
}

impl Options {
    /// The full run: the figures in docs/BENCHMARKS.md.
    pub fn full(brokers: String, clickhouse: String, bin_dir: PathBuf) -> Self {
        Self {
            brokers,
            clickhouse,
            bin_dir,
            events: 200_000,
            accounts: 2_000,
            rates: vec![1_000, 5_000],
            rate_secs: 5.0,
            find_max_rate: true,
            e2e_rate: 5_000,
            e2e_secs: 20,
            eval_accounts: vec![10_000, 100_000],
            history: [(100_000, 30, 1), (100_000, 180, 1), (100_000, 365, 1), (1_000_000, 90, 1), (1_000_000, 90, 4)]
                .map(|(accounts, days, owners)| history::Case { accounts, days, owners })
                .to_vec(),
            only_evaluation: false,
            keep: false,
            smoke: false,
            latency_only: false,
            producer: Vec::new(),
            consumer: Vec::new(),
        }
    }

    /// A minute-sized run that exercises every phase (`deploy/local/test.sh`); its figures mean
    /// nothing, its checks (every event arrived, every probe was seen) do.
    pub fn smoke(brokers: String, clickhouse: String, bin_dir: PathBuf) -> Self {
        Self {
            events: 5_000,
            accounts: 100,
            rates: vec![200],
            rate_secs: 1.0,
            find_max_rate: false,
            e2e_rate: 500,
            e2e_secs: 3,
            eval_accounts: vec![500],
            history: [(2_000, 30, 1), (2_000, 100, 1), (4_000, 90, 4)]
                .map(|(accounts, days, owners)| history::Case { accounts, days, owners })
                .to_vec(),
            smoke: true,
            ..Self::full(brokers, clickhouse, bin_dir)
        }
    }
}

/// Names of this run's topics and databases (the `signal` command uses them too).
pub(crate) struct Names {
    pub(crate) id: String,
    raw_topic: String,
    pub(crate) events_topic: String,
    pub(crate) alerts_topic: String,
    pub(crate) dlq_topic: String,
    pub(crate) db: String,
    raw_db: String,
    eval_db: String,
}

impl Names {
    /// Fresh names starting with `prefix` (`bench`, `signal`), the current time, the process id
    /// and a count in the process: two runs started in the same second (two `signal`s side by
    /// side, tests in one process) do not share a database or a topic.
    pub(crate) fn new(prefix: &str) -> Self {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let at = chrono::Utc::now().format("%m%d%H%M%S");
        Self::existing(prefix, format!("{}{at}_{}_{n}", &prefix[..1], std::process::id()))
    }

    /// The names of an earlier run `id` (`signal --reuse`).
    pub(crate) fn existing(prefix: &str, id: String) -> Self {
        Self {
            raw_topic: format!("{prefix}-{id}-raw"),
            events_topic: format!("{prefix}-{id}-events"),
            alerts_topic: format!("{prefix}-{id}-alerts"),
            dlq_topic: format!("{prefix}-{id}-dlq"),
            db: format!("{prefix}_{id}"),
            raw_db: format!("{prefix}_{id}_raw"),
            eval_db: format!("{prefix}_{id}_eval"),
            id,
        }
    }
}

const PARTITIONS: i32 = 4;
pub(crate) const WRITE_KEY: &str = "bench-write-key-0123456789abcdef012";

/// Runs every phase and returns the report; `progress` gets a line per step.
pub async fn run(opts: &Options, progress: impl Fn(&str)) -> Result<Report, ToolsError> {
    if opts.latency_only {
        return latency::run(opts, progress).await;
    }
    let n = Names::new("bench");
    let mut r = Report { smoke: opts.smoke, ..Report::default() };
    let work = std::env::temp_dir().join(format!("uptake-{}", n.id));
    std::fs::create_dir_all(&work)?;
    create_topics(&opts.brokers, &[&n.raw_topic, &n.events_topic, &n.alerts_topic, &n.dlq_topic]).await?;
    if !opts.only_evaluation {
        services(opts, &n, &work, &mut r, &progress).await?;
    }

    progress("evaluation time");
    let mut eval_cfg = RawAggregatorConfig::default();
    eval_cfg.kafka.brokers = opts.brokers.clone();
    eval_cfg.kafka.events_topic = n.events_topic.clone();
    eval_cfg.kafka.alerts_topic = n.alerts_topic.clone();
    eval_cfg.clickhouse.url = opts.clickhouse.clone();
    eval_cfg.clickhouse.database = n.eval_db.clone();
    let eval_cfg = eval_cfg.build_and_validate()?;
    let eval_store = store(opts, &n.eval_db).await?;
    let producer = eval_cfg.kafka.to_rdkafka_producer().create()?;
    let mut filled = 0;
    for accounts in &opts.eval_accounts {
        progress(&format!("  {accounts} accounts"));
        eval::fill(&eval_store, &n.events_topic, filled, *accounts).await?;
        filled = *accounts;
        let (took, evaluated, phases) = eval::pass(&eval_cfg, &eval_store, &producer, &[0, 1, 2, 3]).await?;
        if evaluated != *accounts {
            return Err(ToolsError::Setup(format!("evaluated {evaluated} accounts of {accounts}")));
        }
        r.evaluation.push((*accounts, took, phases));
    }
    if filled > 0 {
        progress(&format!("  console pages, {filled} accounts"));
        r.console = console::run(&eval_cfg, &eval_store, filled).await?;
    }
    // A case with the book of the case before it (same accounts and days, other owners) reuses it.
    let mut book: Option<(history::Case, AggregatorConfig, Warehouse)> = None;
    for (i, case) in opts.history.iter().enumerate() {
        progress(&format!("  history: {} accounts × {} days, {} owner(s)", case.accounts, case.days, case.owners));
        let same_book = book.as_ref().is_some_and(|(c, ..)| (c.accounts, c.days) == (case.accounts, case.days));
        let mut fill = Duration::ZERO;
        if !same_book {
            if let Some((_, cfg, store)) = book.take() {
                drop_database(opts, &store, &cfg.clickhouse.database).await;
            }
            let mut cfg = eval_cfg.to_raw();
            cfg.clickhouse.database = format!("{}_h{i}", n.eval_db);
            let cfg = cfg.build_and_validate()?;
            let store = store(opts, &cfg.clickhouse.database).await?;
            fill = history::fill(&store, &n.events_topic, *case).await?;
            book = Some((*case, cfg, store));
        }
        let (_, cfg, store) = book.as_ref().expect("filled above");
        let mut passes = Vec::new();
        let (mut incremental, mut peak_rss) = (None, 0);
        for owner in 0..case.owners {
            let mut evaluator = eval::evaluator(cfg, store, &producer, &history::partitions_of(owner, case.owners))?;
            procs::reset_own_peak_rss();
            let pass = eval::timed(&mut evaluator, true).await?;
            peak_rss = peak_rss.max(procs::usage(std::process::id()).peak_rss);
            passes.push(pass);
            if case.owners == 1 {
                // The next pass after 1 % of the accounts sent events: those alone.
                let changed: Vec<(String, i32)> =
                    (0..case.accounts).step_by(100).map(|a| (format!("h-{a}"), (a % 4) as i32)).collect();
                eval::touch(store, &n.events_topic, &changed).await?;
                tokio::time::sleep(Duration::from_secs(u64::from(aggregator::STORE_SLACK_SECS) + 1)).await;
                let pass = eval::timed(&mut evaluator, false).await?;
                // Those, and the few with a rule's clock running.
                if pass.1 < changed.len() || pass.1 > changed.len() * 2 {
                    return Err(ToolsError::Setup(format!(
                        "incremental pass: {} accounts, {} changed",
                        pass.1,
                        changed.len()
                    )));
                }
                incremental = Some(pass);
            }
        }
        let evaluated: usize = passes.iter().map(|p| p.1).sum();
        if evaluated != case.accounts {
            return Err(ToolsError::Setup(format!("the owners evaluated {evaluated} accounts of {}", case.accounts)));
        }
        r.history.push(history::Measured { case: *case, fill, passes, incremental, peak_rss });
    }
    if let Some((_, cfg, store)) = book {
        drop_database(opts, &store, &cfg.clickhouse.database).await;
    }

    if !opts.keep {
        for db in [&n.db, &n.raw_db, &n.eval_db] {
            let _ = eval_store.client().query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await;
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(r)
}

/// Drops a bench database, unless the run keeps them.
async fn drop_database(opts: &Options, store: &Warehouse, db: &str) {
    if !opts.keep {
        let _ = store.client().query(&format!("DROP DATABASE IF EXISTS {db}")).execute().await;
    }
}

pub(crate) async fn create_topics(brokers: &str, names: &[&str]) -> Result<(), ToolsError> {
    schemas::runtime::kafka::create_topics(brokers, names, PARTITIONS)
        .await
        .map_err(|e| ToolsError::Setup(e.to_string()))
}

pub(crate) fn store_unmigrated(clickhouse: &str, db: &str) -> Warehouse {
    Warehouse::new(&warehouse::ClickHouseConfig {
        url: clickhouse.to_owned(),
        database: db.to_owned(),
        ..Default::default()
    })
}

async fn store(opts: &Options, db: &str) -> Result<Warehouse, ToolsError> {
    let s = store_unmigrated(&opts.clickhouse, db);
    s.migrate().await?;
    Ok(s)
}

/// A service's `/metrics` text (empty if it does not answer).
pub(crate) async fn scrape(url: &str) -> String {
    match reqwest::get(format!("{url}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// How many evaluation passes the aggregator whose admin address is `url` has finished.
pub(crate) async fn evaluation_passes(url: &str) -> u64 {
    load::histogram_totals(&scrape(url).await, "uptake_aggregator_evaluation_seconds").1
}

/// Polls the stored event count until it reaches `want` (or `timeout`); returns the count.
pub(crate) async fn wait_for_rows(store: &Warehouse, want: usize, timeout: Duration) -> Result<usize, ToolsError> {
    let deadline = Instant::now() + timeout;
    let sql = format!("SELECT count() FROM {}.events", store.database());
    loop {
        let got = store.client().query(&sql).fetch_one::<u64>().await.unwrap_or(0) as usize;
        if got >= want || Instant::now() > deadline {
            return Ok(got);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the bench's own ingest (free ports, this run's topics, `opts.producer` applied) and
/// returns it, a client for it, and its configuration (whose producer the raw phases copy).
async fn start_ingest(
    opts: &Options,
    n: &Names,
    work: &std::path::Path,
) -> Result<(procs::Service, load::Ingest, ingest::IngestConfig), ToolsError> {
    let port = procs::free_port()?;
    // ingest's /readyz is on its admin listener: the bench waits on that one.
    let admin_port = procs::free_port()?;
    let file = work.join("ingest.toml");
    std::fs::write(&file, bench_ingest_toml(opts, n, port, admin_port))?;
    let bin = procs::binary(&opts.bin_dir, "ingest")?;
    let args = ["--config", file.to_str().unwrap()];
    let service = procs::Service::start("ingest", &bin, &args, admin_port, "/readyz", &work.join("ingest.log")).await?;
    let client = load::Ingest::new(&format!("http://127.0.0.1:{port}"), WRITE_KEY);
    Ok((service, client, ingest_config(opts, n, port, admin_port)))
}

/// ingest's configuration as the bench writes it, with the `UPTAKE_…` environment applied as
/// ingest applies it: the raw producer gets exactly the settings ingest runs with.
fn ingest_config(opts: &Options, n: &Names, port: u16, admin_port: u16) -> ingest::IngestConfig {
    let file = std::env::temp_dir().join(format!("uptake-{}-ingest-config.toml", n.id));
    std::fs::write(&file, bench_ingest_toml(opts, n, port, admin_port)).expect("writing the bench ingest config");
    let cfg = ingest::IngestConfig::load(Some(&file)).expect("bench ingest config");
    let _ = std::fs::remove_file(&file);
    cfg
}

/// [`ingest_toml`] with `opts.producer` as librdkafka passthrough properties.
fn bench_ingest_toml(opts: &Options, n: &Names, port: u16, admin_port: u16) -> String {
    ingest_toml(&opts.brokers, n, port, admin_port) + &librdkafka_section(&opts.producer)
}

/// A `[kafka.librdkafka]` passthrough section with `properties` (empty: nothing).
fn librdkafka_section(properties: &[(String, String)]) -> String {
    if properties.is_empty() {
        return String::new();
    }
    let lines: String = properties.iter().map(|(k, v)| format!("{k:?} = {v:?}\n")).collect();
    format!("[kafka.librdkafka]\n{lines}")
}

pub(crate) fn ingest_toml(brokers: &str, n: &Names, port: u16, admin_port: u16) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin_port}"
[kafka]
brokers = "{brokers}"
topic = "{topic}"
dlq_topic = "{dlq}"
[[write_keys]]
key = "{WRITE_KEY}"
source = "bench"
[limits]
rate_per_sec = 0
"#,
        topic = n.events_topic,
        dlq = n.dlq_topic,
    )
}

pub(crate) fn aggregator_toml(brokers: &str, clickhouse: &str, n: &Names, port: u16) -> String {
    format!(
        r#"admin_listen = "127.0.0.1:{port}"
[kafka]
brokers = "{brokers}"
group_id = "bench-{id}"
events_topic = "{events}"
alerts_topic = "{alerts}"
dlq_topic = "{dlq}"
[clickhouse]
url = "{ch}"
database = "{db}"
[batch]
max_wait_ms = 200
[evaluation]
interval_ms = 250
"#,
        id = n.id,
        events = n.events_topic,
        alerts = n.alerts_topic,
        dlq = n.dlq_topic,
        ch = clickhouse,
        db = n.db,
    )
}

/// The phases that run our services against the broker and ClickHouse: throughput (with the raw
/// limits), CPU, latency, end to end and RSS.
async fn services(
    opts: &Options,
    n: &Names,
    work: &std::path::Path,
    r: &mut Report,
    progress: &impl Fn(&str),
) -> Result<(), ToolsError> {
    progress(&format!("generating {} events over {} accounts", opts.events, opts.accounts));
    let native = data::native_events(&n.id, opts.events, opts.accounts);
    let canonical = data::canonical(&native)?;

    progress("raw producer: rdkafka → broker, ingest's producer settings");
    let ingest_cfg = ingest_config(opts, n, 0, 0);
    let producer_cfg = ingest_cfg.kafka.to_rdkafka();
    r.raw_produce = Some(raw::produce(&producer_cfg, &n.raw_topic, &canonical).await?);
    progress("raw consumer: broker → rdkafka");
    let (brokers, topic, count) = (opts.brokers.clone(), n.raw_topic.clone(), canonical.len());
    r.raw_consume = Some(
        tokio::task::spawn_blocking(move || raw::consume(&brokers, &topic, PARTITIONS, count))
            .await
            .map_err(|e| ToolsError::Setup(e.to_string()))??,
    );
    progress("raw ClickHouse insert: RowBinary into the same schema (materialized views included)");
    let raw_store = store(opts, &n.raw_db).await?;
    r.raw_insert = Some(raw::insert(&raw_store, &n.raw_topic, &canonical, 50_000).await?);

    // ingest, alone, on the batch endpoint.
    let (mut ingest, client, _) = start_ingest(opts, n, work).await?;
    progress("ingest: POST /v1/events, batches of 500, 8 in flight");
    let bodies = data::batch_bodies(&native, 500);
    let before = ingest.usage();
    let (rate, refusals) = client.batches(&bodies, native.len(), 8).await?;
    r.ingest_batches = Some(rate);
    r.ingest_refusals = refusals;
    r.ingest_cpu = Some((ingest.usage().cpu_secs - before.cpu_secs, native.len()));

    // aggregator, started once the events wait on the topic: it drains them.
    let admin_port = procs::free_port()?;
    let agg_file = work.join("aggregator.toml");
    let agg_toml = aggregator_toml(&opts.brokers, &opts.clickhouse, n, admin_port);
    std::fs::write(&agg_file, agg_toml + &librdkafka_section(&opts.consumer))?;
    let agg_bin = procs::binary(&opts.bin_dir, "aggregator")?;
    progress("aggregator: drain the topic into ClickHouse");
    let mut agg = procs::Service::start(
        "aggregator",
        &agg_bin,
        &["--config", agg_file.to_str().unwrap(), "run"],
        admin_port,
        "/readyz",
        &work.join("aggregator.log"),
    )
    .await?;
    let svc_store = store_unmigrated(&opts.clickhouse, &n.db);
    let before = agg.usage();
    let started = Instant::now();
    let stored = wait_for_rows(&svc_store, native.len(), Duration::from_secs(300)).await?;
    if stored < native.len() {
        return Err(ToolsError::Setup(format!(
            "the aggregator stored {stored} of {} events in 300 s; see {}",
            native.len(),
            work.display()
        )));
    }
    r.aggregator = Some(Rate::new(stored, started.elapsed()));
    r.aggregator_cpu = Some((agg.usage().cpu_secs - before.cpu_secs, stored));

    progress("single-event requests at fixed rates");
    let singles =
        latency::Singles { ingest: &client, producer_cfg: &producer_cfg, raw_topic: &n.events_topic, run_id: &n.id };
    latency::measure(&singles, opts, r, progress).await?;

    progress(&format!("end to end at {} events/s for {} s, a probe every 200 ms", opts.e2e_rate, opts.e2e_secs));
    let e2e_events =
        data::native_events(&format!("{}e", n.id), (opts.e2e_rate * opts.e2e_secs) as usize, opts.accounts);
    let e2e_bodies = data::batch_bodies(&e2e_events, 50);
    let before = scrape(&agg.url).await;
    let e2e = load::end_to_end(&client, &opts.clickhouse, &n.db, &n.id, &e2e_bodies, 50, opts.e2e_rate).await?;
    let after = scrape(&agg.url).await;
    let during = |name: &str| {
        let ((s0, c0), (s1, c1)) = (load::histogram_totals(&before, name), load::histogram_totals(&after, name));
        (s1 - s0, c1.saturating_sub(c0))
    };
    r.e2e_passes = Some(during("uptake_aggregator_evaluation_seconds"));
    r.e2e_inserts = Some(during("uptake_aggregator_insert_seconds"));
    (r.e2e, r.e2e_stored) = (e2e.evaluated, e2e.stored);
    let singles = r.latency.iter().chain(&r.raw_latency).map(|l| l.ok).sum::<usize>();
    let total_sent = native.len() + singles + e2e_events.len() + r.e2e.len();
    let stored = wait_for_rows(&svc_store, total_sent, Duration::from_secs(120)).await?;
    if stored != total_sent {
        return Err(ToolsError::Setup(format!("{stored} events stored of {total_sent} accepted")));
    }
    r.ingest_usage = ingest.usage();
    r.aggregator_usage = agg.usage();
    ingest.stop();
    agg.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_settings_reach_the_ingest_config_the_raw_producer_copies() {
        let mut opts = Options::smoke("b:1".into(), "http://c:2".into(), PathBuf::from("."));
        opts.producer = vec![("linger.ms".into(), "1".into()), ("socket.nagle.disable".into(), "false".into())];
        let cfg = ingest_config(&opts, &Names::new("test"), 1, 2);
        let rdkafka = cfg.kafka.to_rdkafka();
        assert_eq!(rdkafka.get("linger.ms"), Some("1"));
        assert_eq!(rdkafka.get("socket.nagle.disable"), Some("false"));
        assert_eq!(rdkafka.get("bootstrap.servers"), Some("b:1"));
        assert_eq!(librdkafka_section(&[]), "");
    }
}
