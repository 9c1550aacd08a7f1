//! `drill`: ingest, two aggregators and the notifier on a sharded, replicated ClickHouse and a
//! multi-broker Kafka, with a ClickHouse replica, a broker and an aggregator killed under load;
//! prints what every node holds afterwards and fails unless every acknowledged event is stored
//! exactly once, each account lives on one shard, and every alert is stored and delivered once.
//! `deploy/local/cluster_test.sh` starts the cluster and runs it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tools::drill::{self, Options};

#[derive(Parser)]
#[command(version, about = "Kills cluster nodes under load and counts what every node holds")]
struct Args {
    /// Kafka bootstrap servers: every broker. Ingest gets them all; the broker it produces to is
    /// the one killed, and the aggregators and the notifier bootstrap on the others (Tansu 0.6
    /// keeps a group's members in each broker's memory: a group whose members reach different
    /// brokers after one dies was left unassigned for over a minute).
    #[arg(long)]
    brokers: String,
    /// Every ClickHouse node's HTTP URL, comma-separated, shard by shard (s1r1,s1r2,s2r1,s2r2).
    #[arg(long, value_delimiter = ',', required = true)]
    clickhouse: Vec<String>,
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    #[arg(long, default_value = "uptake_cluster")]
    cluster: String,
    /// Directory of the `ingest` and `aggregator` binaries.
    #[arg(long)]
    bin_dir: PathBuf,
    /// Fault injection: run as `HOOK kill-clickhouse|restart-clickhouse|kill-broker|restart-broker`.
    #[arg(long)]
    hook: PathBuf,
    #[arg(long, default_value_t = 60)]
    accounts: usize,
    #[arg(long, default_value_t = 28)]
    days: u32,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let opts = Options {
        brokers: a.brokers,
        nodes: a.clickhouse,
        replicas: a.replicas,
        cluster: a.cluster,
        bin_dir: a.bin_dir,
        hook: a.hook,
        accounts: a.accounts,
        days: a.days,
        seed: a.seed,
    };
    let report =
        drill::run(&opts, tools::loadgen::today(), |line| eprintln!("drill: {line}")).await.context("drill")?;
    print!("{report}");
    anyhow::ensure!(report.failures.is_empty(), "the drill failed: {}", report.failures.join("; "));
    Ok(())
}
