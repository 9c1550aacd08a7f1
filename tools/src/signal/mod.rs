//! `signal`: how well the rules tell at-risk accounts from healthy ones, measured on loadgen's
//! book with its ground truth (docs/SIGNAL.md). Self-contained like `bench`: it starts its own
//! ingest and aggregator (fresh topics and database on the running broker and ClickHouse),
//! sends the book's whole history, waits until ClickHouse stores every accepted event, stops
//! them by pid, replays the last days in-process ([`aggregator::backtest::replay`]) and scores
//! the replay against the truth ([`score::score`]).

pub mod book;
pub mod calibrate;
pub mod report;
pub mod score;
pub mod visible;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use aggregator::{RawAggregatorConfig, RuleSet};
use chrono::{DateTime, Days, NaiveDate, Utc};

use crate::bench::{self, procs, Names};
use crate::loadgen::{self, send::Sender, Book, Format};
use crate::ToolsError;
use book::ExternalBook;
pub use score::{EndState, Scores, Truth, Window};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub brokers: String,
    pub clickhouse: String,
    /// Where the `ingest` and `aggregator` binaries are.
    pub bin_dir: PathBuf,
    pub accounts: usize,
    /// Days of history sent, ending today.
    pub days: u32,
    /// The last days replayed and scored.
    pub score_days: u32,
    pub seed: u64,
    /// The share of loadgen's users with a block of their own leave ([`loadgen::LEAVE_SHARE`]
    /// by default).
    pub leave_share: f64,
    pub format: Format,
    /// A rule file; default: the shipped rules.
    pub rules: Option<PathBuf>,
    /// Whether the book sends outcome events (churned / renewed).
    pub outcomes: bool,
    /// Keep the topics' database afterwards (for inspection).
    pub keep: bool,
    /// The aggregator's `evaluation.settle_ms`, in seconds: how long after the import the live
    /// evaluator judges the accounts (the default's 300 for the full run, as a customer gets it).
    pub settle_secs: u64,
    /// The statistics whose daily values the replay keeps for calibration (`--calibrate`).
    pub calibrate: Vec<String>,
    /// The id of an earlier run kept with `keep` (`s1204144512`): replay and score its stored
    /// history again (with other rules) without sending it; nothing is measured live.
    pub reuse: Option<String>,
    /// Write every day's metrics rows of the replay here, one JSON object per line.
    pub rows: Option<PathBuf>,
    /// Score this book (a directory with `truth.json` and `events.jsonl`, [`book`]) instead of
    /// loadgen's: `accounts`, `days`, `seed` then do not apply.
    pub book: Option<PathBuf>,
}

impl Options {
    /// The book the figures in docs/SIGNAL.md come from: 400 accounts × 75 days, 54 scored.
    pub fn full(brokers: String, clickhouse: String, bin_dir: PathBuf) -> Self {
        Self {
            brokers,
            clickhouse,
            bin_dir,
            accounts: 400,
            days: 75,
            score_days: 54,
            seed: 7,
            leave_share: loadgen::LEAVE_SHARE,
            format: Format::Segment,
            rules: None,
            outcomes: true,
            keep: false,
            settle_secs: 300,
            calibrate: Vec::new(),
            reuse: None,
            rows: None,
            book: None,
        }
    }

    /// The CI run (`deploy/local/test.sh`): 40 accounts × 60 days, 30 scored; only its counts
    /// are checked.
    pub fn smoke(brokers: String, clickhouse: String, bin_dir: PathBuf) -> Self {
        Self { accounts: 40, days: 60, score_days: 30, settle_secs: 10, ..Self::full(brokers, clickhouse, bin_dir) }
    }
}

/// Sends the book, replays and scores. `progress` gets a line per step.
pub async fn run(opts: &Options, today: NaiveDate, progress: impl Fn(&str)) -> Result<Report, ToolsError> {
    let source = Source::new(opts, today)?;
    if opts.score_days == 0 || opts.score_days > source.days() {
        return Err(ToolsError::Setup(format!("--score-days must be from 1 to the book's {} days", source.days())));
    }
    let rules = RuleSet::load(opts.rules.as_deref())?;
    let store;
    let (n, live_open) = match &opts.reuse {
        Some(id) => {
            let n = Names::existing("signal", id.clone());
            store = bench::store_unmigrated(&opts.clickhouse, &n.db);
            progress(&format!("reusing the history stored in {}", n.db));
            (n, None)
        }
        None => {
            let n = Names::new("signal");
            store = bench::store_unmigrated(&opts.clickhouse, &n.db);
            let live = import(opts, &source, &n, &store, &progress).await?;
            (n, Some(live))
        }
    };

    let from = today - Days::new(u64::from(opts.score_days) - 1);
    progress(&format!("replaying {from} .. {today} in-process"));
    let mut cfg = RawAggregatorConfig::default();
    cfg.kafka.brokers = opts.brokers.clone();
    cfg.kafka.events_topic = n.events_topic.clone();
    cfg.clickhouse.url = opts.clickhouse.clone();
    cfg.clickhouse.database = n.db.clone();
    let cfg = cfg.build_and_validate()?;
    let mut series: Vec<calibrate::Series> = opts.calibrate.iter().map(|m| calibrate::Series::new(m)).collect();
    // What the data allow, beside what the rules did (`visible`).
    let mut shortfall = visible::Readings::default();
    // Every day's metrics rows as JSON lines (`--rows`), to study what the rules saw.
    let mut dump = match &opts.rows {
        Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => None,
    };
    // Today is replayed as of the live evaluator's last pass: what it could know then.
    let now = live_open.as_ref().map_or_else(Utc::now, |(_, at)| *at);
    let replay = aggregator::backtest::replay(&cfg, rules.clone(), from, today, now, |day, rows| {
        progress(&format!("  {day}: {} accounts evaluated", rows.len()));
        series.iter_mut().for_each(|s| s.add(day, rows));
        shortfall.add(day, rows);
        if let Some(out) = dump.as_mut() {
            for row in rows {
                let _ = serde_json::to_writer(&mut *out, row).map(|_| std::io::Write::write_all(out, b"\n"));
            }
        }
    })
    .await?;
    drop(dump);
    let end: HashMap<String, EndState> = replay
        .last_rows
        .iter()
        .map(|r| {
            (r.account_id.clone(), EndState { band: r.health_band.clone(), idle_days: r.days_since_last_activity })
        })
        .collect();
    let truth = source.truth();
    let scores = score::score(&truth, Window { from, to: today }, &replay.alerts, &replay.accounts, &end);
    let visibility = visible::visibility(&shortfall, &truth, &replay.alerts, today);
    let live = live_open.map(|(open, _)| score::live(&truth, today, &open, &score::open_at_end(&replay.alerts)));
    // The same replay scored the way a CS team scores its own history: against the recorded
    // churn and renewal outcomes, not the simulation's truth (`aggregator backtest --score`).
    let outcomes = store.outcomes().await?;
    let by_outcomes = aggregator::backtest::score::score(&replay, &outcomes, &rules, from, today, OUTCOME_HORIZON_DAYS);
    if !opts.keep && opts.reuse.is_none() {
        let _ = store.client().query(&format!("DROP DATABASE IF EXISTS {}", n.db)).execute().await;
    }
    Ok(Report { truth: scores, visibility, live, outcomes: by_outcomes, alerts: replay.alerts, series, book: truth })
}

/// Sends the book's history through a fresh ingest and aggregator, waits until ClickHouse
/// stores all of it and the accounts settle, and returns the accounts the live evaluator then
/// has open; stops both services by pid.
async fn import(
    opts: &Options,
    source: &Source,
    n: &Names,
    store: &warehouse::Warehouse,
    progress: &impl Fn(&str),
) -> Result<(BTreeSet<String>, DateTime<Utc>), ToolsError> {
    let work = std::env::temp_dir().join(format!("uptake-{}", n.id));
    std::fs::create_dir_all(&work)?;
    bench::create_topics(&opts.brokers, &[&n.events_topic, &n.alerts_topic, &n.dlq_topic]).await?;

    let (ingest_port, ingest_admin, agg_admin) = (procs::free_port()?, procs::free_port()?, procs::free_port()?);
    let ingest_file = work.join("ingest.toml");
    std::fs::write(&ingest_file, bench::ingest_toml(&opts.brokers, n, ingest_port, ingest_admin))?;
    let agg_file = work.join("aggregator.toml");
    // The live aggregator judges by the same rules as the replay (a top-level key, so before
    // the first section); `[evaluation]` is the file's last section.
    let rules_file = match &opts.rules {
        Some(path) => format!("rules_file = {:?}\n", std::fs::canonicalize(path)?.display().to_string()),
        None => String::new(),
    };
    let agg_toml = rules_file
        + &bench::aggregator_toml(&opts.brokers, &opts.clickhouse, n, agg_admin)
        + &format!("settle_ms = {}\n", opts.settle_secs * 1000);
    std::fs::write(&agg_file, agg_toml)?;
    let mut ingest = procs::Service::start(
        "ingest",
        &procs::binary(&opts.bin_dir, "ingest")?,
        &["--config", &ingest_file.to_string_lossy()],
        ingest_admin,
        "/readyz",
        &work.join("ingest.log"),
    )
    .await?;
    let mut agg = procs::Service::start(
        "aggregator",
        &procs::binary(&opts.bin_dir, "aggregator")?,
        &["--config", &agg_file.to_string_lossy(), "run"],
        agg_admin,
        "/readyz",
        &work.join("aggregator.log"),
    )
    .await?;
    progress(&format!(
        "sending {} ({:?}) to ingest (pid {}), aggregator pid {}",
        source.describe(),
        opts.format,
        ingest.pid(),
        agg.pid()
    ));
    let accepted = source.send(&format!("http://127.0.0.1:{ingest_port}"), opts.format).await? as usize;
    progress(&format!("{accepted} events accepted; waiting until ClickHouse stores them"));
    let stored = bench::wait_for_rows(store, accepted, Duration::from_secs(600)).await?;
    ingest.stop();
    if stored != accepted {
        agg.stop();
        return Err(ToolsError::Setup(format!(
            "ClickHouse stored {stored} of {accepted} accepted events; see {}",
            work.display()
        )));
    }
    // What a CSM finds right after the import: the live evaluator's open episodes, once the
    // accounts settled (`evaluation.settle_ms`) and two more passes ran.
    progress(&format!("import stored; waiting {} s for the accounts to settle, then two passes", opts.settle_secs));
    tokio::time::sleep(Duration::from_secs(opts.settle_secs + 1)).await;
    let admin = format!("http://127.0.0.1:{agg_admin}");
    let passes = || async { bench::evaluation_passes(&admin).await };
    let (before, deadline) = (passes().await, std::time::Instant::now() + Duration::from_secs(600));
    while passes().await < before + 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let live_open = open_episodes(store).await?;
    let at = last_pass_at(store).await?;
    agg.stop();
    if !opts.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok((live_open, at))
}

/// Where the book comes from: loadgen, simulated here, or a directory written elsewhere.
enum Source {
    Loadgen(Book),
    File(ExternalBook),
}

impl Source {
    fn new(opts: &Options, today: NaiveDate) -> Result<Self, ToolsError> {
        let Some(dir) = &opts.book else {
            let mut book = Book::with_leave(opts.accounts, opts.days, opts.seed, today, opts.leave_share);
            book.outcomes = opts.outcomes;
            return Ok(Self::Loadgen(book));
        };
        let book = ExternalBook::load(dir)?;
        // The live evaluator judges the accounts as of today (the wall clock), the replay as of
        // the book's last day: only a book that ends today can be compared with both.
        if book.today != today {
            return Err(ToolsError::Setup(format!(
                "{} ends on {}, but today is {today}: the live evaluator judges today, so write the book to end today",
                dir.display(),
                book.today
            )));
        }
        Ok(Self::File(book))
    }

    fn days(&self) -> u32 {
        match self {
            Self::Loadgen(b) => b.days().count() as u32,
            Self::File(b) => b.days(),
        }
    }

    fn truth(&self) -> Vec<Truth> {
        match self {
            Self::Loadgen(b) => b.accounts.iter().map(Truth::from).collect(),
            Self::File(b) => b.truth.clone(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Loadgen(b) => format!("loadgen's book, {} accounts × {} days", b.accounts.len(), self.days()),
            Self::File(b) => format!("{}, {} accounts × {} days", b.events.display(), b.truth.len(), b.days()),
        }
    }

    /// Sends the whole history to ingest at `url`; returns the events accepted.
    async fn send(&self, url: &str, format: Format) -> Result<u64, ToolsError> {
        match self {
            Self::Loadgen(b) => loadgen::history(b, &Sender::new(url, bench::WRITE_KEY, format), 500, 4).await,
            Self::File(b) => b.send(&Sender::verbatim(url, bench::WRITE_KEY, format), 500, 4).await,
        }
    }
}

/// The accounts with an open episode, as the console shows them (`open_alerts`).
async fn open_episodes(store: &warehouse::Warehouse) -> Result<BTreeSet<String>, ToolsError> {
    let query = store.query("SELECT DISTINCT account_id FROM {db}.open_alerts");
    let ids: Vec<String> = query.fetch_all().await.map_err(warehouse::WarehouseError::from)?;
    Ok(ids.into_iter().collect())
}

/// When the live evaluator's last pass ran: the latest `computed_at` of its metrics rows.
async fn last_pass_at(store: &warehouse::Warehouse) -> Result<DateTime<Utc>, ToolsError> {
    let query = store.query("SELECT toUInt32(max(computed_at)) FROM {db}.account_metrics");
    let at: u32 = query.fetch_one().await.map_err(warehouse::WarehouseError::from)?;
    DateTime::from_timestamp(i64::from(at), 0)
        .filter(|_| at > 0)
        .ok_or_else(|| ToolsError::Setup("the live evaluator wrote no metrics rows".into()))
}

/// How long before a recorded churn an alert counts as catching it (the backtest's default).
pub const OUTCOME_HORIZON_DAYS: u32 = 90;

/// What a signal run measured: against the book's ground truth, and against the outcomes the
/// book recorded (the scored backtest).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub truth: Scores,
    /// How far the declines had gone by 7, 14 and 21 days after their onset, against the
    /// healthy accounts' chance shortfall.
    pub visibility: visible::Visibility,
    /// The live evaluator's open episodes right after the import (none with `reuse`).
    pub live: Option<score::Live>,
    pub outcomes: aggregator::backtest::score::Score,
    /// Every alert record of the replay (`signal --alerts FILE` writes them, one JSON per line).
    #[serde(skip)]
    pub alerts: Vec<schemas::alert::Alert>,
    /// The daily values of the statistics asked for (`--calibrate`).
    #[serde(skip)]
    pub series: Vec<calibrate::Series>,
    /// The book's truth, for the calibration.
    #[serde(skip)]
    pub book: Vec<Truth>,
}
