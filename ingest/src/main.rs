use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use schemas::settings::LogFormat;
use ingest::{App, IngestConfig};
use tracing_subscriber::EnvFilter;

/// uptake ingest: receives usage events over HTTP and writes them to Kafka.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; `UPTAKE_…` environment variables override it.
    #[arg(long, env = "UPTAKE_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = IngestConfig::load(args.config.as_deref()).context("loading configuration")?;
    init_logs(config.log_format);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(listen = %config.listen, brokers = %config.kafka.brokers, topic = %config.kafka.topic, "ingest started");
    let app = App::new(config)?;
    ingest::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("ingest stopped");
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
    tracing::info!("shutdown signal received; draining");
}
