//! `bench`: measures uptake on the running local stack against the limits measured in the same
//! run and prints one table (docs/BENCHMARKS.md explains every figure).
//!
//!   deploy/local/run.sh up && target/release/bench            the full run (~5 minutes)
//!   target/release/bench --smoke                                 every phase, tiny (test.sh)

use clap::Parser;
use tools::bench::{self, Options};
use tools::cli::StackArgs;

#[derive(Parser)]
#[command(version, about = "Benchmarks uptake against raw broker and ClickHouse limits measured in the same run")]
struct Args {
    #[command(flatten)]
    stack: StackArgs,
    /// A minute-sized run of every phase: checks that everything arrives, its figures mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Events for the throughput phases (full run: 200000).
    #[arg(long)]
    events: Option<usize>,
    /// Keep the bench databases (bench_*) afterwards.
    #[arg(long)]
    keep: bool,
    /// Only the evaluation phases (books of synthetic accounts, and the history cases).
    #[arg(long)]
    only_evaluation: bool,
    /// History cases instead of the default ones: ACCOUNTS:DAYS:OWNERS, comma-separated
    /// (e.g. 100000:365:1).
    #[arg(long, value_delimiter = ',')]
    history: Option<Vec<String>>,
    /// Book sizes of the plain evaluation passes instead of the default ones (0: none).
    #[arg(long, value_delimiter = ',')]
    eval_accounts: Option<Vec<usize>>,
    /// Only the single-event latency phase: ingest and the raw producer at the same rates.
    #[arg(long)]
    latency: bool,
    /// Single-event rates in requests/s (default 1000,5000); with it, no search for the highest.
    #[arg(long, value_delimiter = ',')]
    rates: Vec<u32>,
    /// Seconds per single-event rate (default 5).
    #[arg(long)]
    rate_secs: Option<f64>,
    /// A librdkafka property for ingest's producer and the raw producers alike, KEY=VALUE
    /// (repeatable), e.g. --producer linger.ms=1 --producer socket.nagle.disable=true.
    #[arg(long, value_parser = key_value)]
    producer: Vec<(String, String)>,
    /// Background events/s of the end-to-end phase (default 5000).
    #[arg(long)]
    e2e_rate: Option<u32>,
    /// A librdkafka property for the aggregator's clients, KEY=VALUE (repeatable).
    #[arg(long, value_parser = key_value)]
    consumer: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
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
    if let Some(n) = args.events {
        opts.events = n;
    }
    opts.keep = args.keep;
    opts.only_evaluation = args.only_evaluation;
    if let Some(cases) = args.history {
        opts.history = cases.iter().map(|c| c.parse()).collect::<Result<_, String>>().map_err(anyhow::Error::msg)?;
    }
    if let Some(sizes) = args.eval_accounts {
        opts.eval_accounts = sizes.into_iter().filter(|n| *n > 0).collect();
    }
    opts.latency_only = args.latency;
    if !args.rates.is_empty() {
        (opts.rates, opts.find_max_rate) = (args.rates, false);
    }
    if let Some(secs) = args.rate_secs {
        opts.rate_secs = secs;
    }
    opts.producer = args.producer;
    opts.consumer = args.consumer;
    if let Some(rate) = args.e2e_rate {
        opts.e2e_rate = rate;
    }
    let started = std::time::Instant::now();
    let report = bench::run(&opts, |step| eprintln!("[{:>5.1} s] {step}", started.elapsed().as_secs_f64())).await?;
    println!("{}", report.table());
    Ok(())
}
