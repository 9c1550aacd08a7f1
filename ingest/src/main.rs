use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use ingest::{App, IngestConfig};

/// uptake ingest: receives usage events over HTTP and writes them to Kafka.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; `UPTAKE_…` environment variables override it.
    #[arg(long, env = "UPTAKE_CONFIG")]
    config: Option<PathBuf>,
    /// Health check for containers (no shell or curl in the images): ask `HOST:PORT/readyz`
    /// (this service's admin listener) and exit 0 when it answers 200, 1 otherwise.
    #[arg(long, value_name = "HOST:PORT")]
    probe: Option<String>,
    /// Print the reference of every configuration key (Markdown, as in docs/configuration.md).
    #[arg(long)]
    config_doc: bool,
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = &args.probe {
        std::process::exit(schemas::runtime::probe::exit_code(addr));
    }
    if args.config_doc {
        let _ =
            std::io::Write::write_all(&mut std::io::stdout(), ingest::RawIngestConfig::reference().markdown.as_bytes());
        return Ok(());
    }
    let config = IngestConfig::load(args.config.as_deref()).context("loading configuration")?;
    schemas::runtime::init_logs(config.log_format);
    let listener =
        tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("binding admin_listen {}", config.admin_listen))?;
    tracing::info!(listen = %config.listen, admin_listen = %config.admin_listen, brokers = %config.kafka.brokers,
        topic = %config.kafka.topic, suppressions_topic = %config.kafka.suppressions_topic, "ingest started");
    let app = App::new(config)?;
    // The admin listener outlives the API's drain, so health and metrics answer during it.
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin = tokio::spawn(ingest::serve_admin(admin_listener, app.clone(), async {
        let _ = admin_stopped.await;
    }));
    let served = ingest::serve(listener, app, schemas::runtime::shutdown_signal()).await;
    let _ = stop_admin.send(());
    let _ = admin.await;
    served?;
    tracing::info!("ingest stopped");
    Ok(())
}
