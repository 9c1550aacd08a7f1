//! `signal`: sends loadgen's book (with ground truth) through a fresh ingest and aggregator,
//! replays the last days and prints how well the rules caught the at-risk accounts
//! (docs/SIGNAL.md explains every figure).
//!
//!   target/release/signal --bin-dir target/release                 400 accounts × 75 days, 54 scored
//!   target/debug/signal --smoke --bin-dir target/debug             40 × 60, 30 scored: counts must add up
//!   target/release/signal --bin-dir target/release --book DIR      a book written elsewhere

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tools::cli::StackArgs;
use tools::loadgen::{self, Format};
use tools::signal::{self, Options};

#[derive(Parser)]
#[command(version, about = "Measures uptake's alerts against loadgen's ground truth")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// Score a book written elsewhere instead of loadgen's: a directory with `truth.json` and
    /// `events.jsonl` (docs/SIGNAL.md#your-own-book). It must end today.
    #[arg(long, conflicts_with_all = ["accounts", "days", "seed", "leave_share", "smoke"])]
    book: Option<PathBuf>,
    #[arg(long)]
    accounts: Option<usize>,
    /// Days of history sent, ending today.
    #[arg(long)]
    days: Option<u32>,
    /// The last days replayed and scored.
    #[arg(long)]
    score_days: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    /// The share of loadgen's users who take a block of 5–12 days' leave (0–1; default 0.3,
    /// about 12 days a year; 0.85 is about five weeks). With `--reuse`, give the share the stored
    /// book was drawn with: the truth is drawn again from it.
    #[arg(long, value_parser = tools::cli::share)]
    leave_share: Option<f64>,
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// A rule file; default: the shipped rules.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// Also write the table as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write every alert record of the replay to this file, one JSON object per line.
    #[arg(long)]
    alerts: Option<PathBuf>,
    /// A small book (40 accounts × 60 days, 30 scored) for CI: fails only when counts do not add up.
    #[arg(long)]
    smoke: bool,
    /// Send no churn and renewal outcome events (the scored backtest then has nothing to score).
    #[arg(long)]
    no_outcomes: bool,
    /// Keep the run's database (signal_*) afterwards.
    #[arg(long)]
    keep: bool,
    /// Replay and score the history an earlier `--keep` run stored (its id, `s1204144512_4242_0`,
    /// from its database name `signal_s1204144512_4242_0`) instead of sending the book again: for
    /// trying rule files. Nothing is measured live.
    #[arg(long)]
    reuse: Option<String>,
    /// With `--reuse`: the day the stored history ended (YYYY-MM-DD), when that was before today.
    /// A stored book is replayed as of its own last day; loadgen's is drawn again ending then.
    #[arg(long, requires = "reuse")]
    today: Option<chrono::NaiveDate>,
    /// Write every day's metrics rows of the replay to this file, one JSON object per line
    /// (what each rule saw on each day).
    #[arg(long)]
    rows: Option<PathBuf>,
    /// Seconds the aggregator waits for an imported history to settle before it judges it
    /// (`evaluation.settle_ms`; default 300, as shipped; the smoke run 10).
    #[arg(long)]
    settle_secs: Option<u64>,
    /// Calibrate these statistics (metric names, comma-separated; default the decline
    /// detector's and the people metrics'): print delay against false alarms per threshold and
    /// write `calibration-<metric>.svg` into --calibrate-dir. A name led by `-` calibrates the
    /// metric negated, for statistics where lower is worse (`-health_score`).
    #[arg(long, num_args = 0.., value_delimiter = ',')]
    calibrate: Option<Vec<String>>,
    /// Where the calibration plots go (created if missing). Not the working directory by
    /// default: a plot written there is one `git add` away from being committed.
    #[arg(long, default_value = "target/signal")]
    calibrate_dir: PathBuf,
    /// The false-alarm budget a calibration picks for: alarms per healthy account-year.
    #[arg(long, default_value_t = 1.0)]
    budget: f64,
}

/// The thresholds tried per calibrated statistic.
fn thresholds(metric: &str) -> Vec<f64> {
    match metric {
        "decline_evidence" => vec![2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0],
        "decline_score" => vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95],
        "regular_users_lapsed_pct" => vec![10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0],
        "champion_days_absent" => vec![3.0, 5.0, 7.0, 10.0, 14.0],
        "-active_user_days_vs_baseline" => vec![10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0],
        "-health_score" => vec![-75.0, -70.0, -65.0, -60.0, -55.0, -50.0, -45.0, -40.0, -35.0],
        _ => vec![1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0],
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin_dir = args.stack.bin_dir()?;
    let mut opts = if args.smoke {
        Options::smoke(args.stack.brokers, args.stack.clickhouse, bin_dir)
    } else {
        Options::full(args.stack.brokers, args.stack.clickhouse, bin_dir)
    };
    opts.accounts = args.accounts.unwrap_or(opts.accounts);
    opts.days = args.days.unwrap_or(opts.days);
    opts.score_days = args.score_days.unwrap_or(opts.score_days);
    opts.seed = args.seed.unwrap_or(opts.seed);
    opts.leave_share = args.leave_share.unwrap_or(opts.leave_share);
    opts.format = args.format.unwrap_or(opts.format);
    opts.rules = args.rules;
    opts.keep = args.keep;
    opts.reuse = args.reuse;
    opts.rows = args.rows;
    opts.book = args.book;
    opts.settle_secs = args.settle_secs.unwrap_or(opts.settle_secs);
    opts.outcomes = !args.no_outcomes;
    opts.calibrate = match &args.calibrate {
        Some(list) if list.is_empty() => {
            ["decline_evidence", "regular_users_lapsed", "regular_users_lapsed_pct", "champion_days_absent"]
                .map(String::from)
                .to_vec()
        }
        Some(list) => list.clone(),
        None => Vec::new(),
    };
    let started = std::time::Instant::now();
    let scores = signal::run(&opts, args.today.unwrap_or_else(loadgen::today), |step| {
        eprintln!("[{:>6.1} s] {step}", started.elapsed().as_secs_f64())
    })
    .await?;
    println!("{}", signal::report::table(&scores.truth));
    println!("{}", signal::visible::table(&scores.visibility));
    if let Some(live) = &scores.live {
        println!("{}", signal::report::live_table(live));
    }
    println!("Scored against the recorded outcomes (aggregator backtest --score):\n{}", scores.outcomes.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&scores)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.alerts {
        let lines: String =
            scores.alerts.iter().map(|a| serde_json::to_string(a).map(|l| l + "\n")).collect::<Result<_, _>>()?;
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    if !scores.series.is_empty() {
        std::fs::create_dir_all(&args.calibrate_dir)
            .with_context(|| format!("creating {}", args.calibrate_dir.display()))?;
    }
    for series in &scores.series {
        let points =
            signal::calibrate::curve(series, &scores.book, &thresholds(&series.metric), scores.truth.window.to);
        println!("{}", signal::calibrate::table(&series.metric, &points, args.budget));
        let path = args.calibrate_dir.join(format!("calibration-{}.svg", series.metric));
        std::fs::write(&path, signal::calibrate::svg(&series.metric, &points))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("  plot: {}", path.display());
    }
    let problems = scores.truth.inconsistencies();
    anyhow::ensure!(problems.is_empty(), "the counts do not add up:\n  {}", problems.join("\n  "));
    Ok(())
}
