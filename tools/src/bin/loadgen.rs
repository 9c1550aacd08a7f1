//! `loadgen`: simulates a book of N accounts over D days and sends their usage to ingest.
//!
//!   loadgen --accounts 500 --days 60                      history, native API, as fast as ingest takes it
//!   loadgen --format segment --truth truth.json           the same through the Segment API, with ground truth
//!   loadgen --mode live --rate 2000 --duration 60         live traffic at 2000 events/s for a minute
//!   loadgen --dry-run --accounts 3 --days 2 | head        the events as JSON lines, nothing sent
//!   loadgen --leave-share 0.85 --truth truth.json         a book whose people take five weeks' leave a year
//!
//! The last line on stdout is the number of events ingest accepted.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tools::loadgen::{self, send::Sender, Book, Format};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// The simulated days, oldest first, as fast as ingest takes them.
    History,
    /// Today's behaviour stamped with the current time, at --rate events/s for --duration.
    Live,
}

#[derive(Parser)]
#[command(version, about = "Simulates a book of accounts and sends their product usage to uptake's ingest")]
struct Args {
    /// ingest's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "uptake-dev-key")]
    write_key: String,
    #[arg(long, default_value_t = 12)]
    accounts: usize,
    /// Days of history, ending today.
    #[arg(long, default_value_t = 35)]
    days: u32,
    /// Same seed, same book, same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The share of users who take a block of 5–12 days' leave inside the book (0–1). The
    /// default, 0.3, is about 12 days a year; 0.85 is about five weeks, as people take.
    #[arg(long, default_value_t = loadgen::LEAVE_SHARE, value_parser = tools::cli::share)]
    leave_share: f64,
    #[arg(long, value_enum, default_value_t = Format::Native)]
    format: Format,
    #[arg(long, value_enum, default_value_t = Mode::History)]
    mode: Mode,
    /// Live mode: events per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Live mode: seconds to run.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Events per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Requests in flight (history mode).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Write the ground truth (kinds, decline onsets, churn dates, dips) to this JSON file.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Leave out the churn and renewal outcome events (for an ingest that does not accept them).
    #[arg(long)]
    no_outcomes: bool,
    /// Print the events (in --format) as JSON lines instead of sending them.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.accounts > 0 && args.days > 0, "--accounts and --days must be at least 1");
    anyhow::ensure!(
        args.batch > 0 && args.concurrency > 0 && args.rate > 0,
        "--batch, --concurrency and --rate must be at least 1"
    );
    let mut book = Book::with_leave(args.accounts, args.days, args.seed, loadgen::today(), args.leave_share);
    book.outcomes = !args.no_outcomes;
    if let Some(path) = &args.truth {
        loadgen::write_truth(&book, path)?;
        eprintln!("ground truth written to {}", path.display());
    }
    if args.dry_run {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for day in book.days() {
            for e in loadgen::day_events(&book, day) {
                let e = if args.format == Format::Segment { loadgen::to_segment(&e) } else { e };
                if writeln!(out, "{e}").is_err() {
                    return Ok(()); // the reader stopped (`| head`)
                }
            }
        }
        return Ok(());
    }
    let sender = Sender::new(&args.url, &args.write_key, args.format);
    let accepted = match args.mode {
        Mode::History => loadgen::history(&book, &sender, args.batch, args.concurrency).await?,
        Mode::Live => loadgen::live(&book, &sender, args.rate, Duration::from_secs(args.duration), args.batch).await?,
    };
    println!("{accepted}");
    Ok(())
}
