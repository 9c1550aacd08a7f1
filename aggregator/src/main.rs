use std::path::PathBuf;

use aggregator::AggregatorConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// uptake aggregator: Kafka → ClickHouse, rolling adoption metrics and churn-risk alerts.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; `UPTAKE_…` environment variables override it.
    #[arg(long, env = "UPTAKE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume, aggregate and alert until SIGTERM/SIGINT (the default).
    Run,
    /// Apply the ClickHouse migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = AggregatorConfig::load(args.config.as_deref()).context("loading configuration")?;
    schemas::runtime::init_logs(config.log_format);
    match args.command.unwrap_or(Command::Run) {
        Command::Migrate => {
            let applied = aggregator::store::Store::new(&config.clickhouse).migrate().await?;
            println!("migrations applied: {applied:?} (database {})", config.clickhouse.database);
        }
        Command::Run => {
            let admin = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .with_context(|| format!("binding {}", config.admin_listen))?;
            tracing::info!(admin = %config.admin_listen, brokers = %config.kafka.brokers, clickhouse = %config.clickhouse.url, "aggregator started");
            aggregator::run(config, admin, schemas::runtime::shutdown_signal()).await?;
            tracing::info!("aggregator stopped");
        }
    }
    Ok(())
}
