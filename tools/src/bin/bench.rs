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
    let started = std::time::Instant::now();
    let report = bench::run(&opts, |step| eprintln!("[{:>5.1} s] {step}", started.elapsed().as_secs_f64())).await?;
    println!("{}", report.table());
    Ok(())
}
