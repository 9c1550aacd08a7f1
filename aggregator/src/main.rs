use std::io::IsTerminal;
use std::path::PathBuf;

use schemas::settings::LogFormat;
use aggregator::AggregatorConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
    init_logs(config.log_format);
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
            aggregator::run(config, admin, shutdown_signal()).await?;
            tracing::info!("aggregator stopped");
        }
    }
    Ok(())
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown signal received; finishing the current batch");
}
