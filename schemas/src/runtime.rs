//! What every uptake service does the same way at run time: logs, shutdown signals and the
//! Prometheus text endpoint, and the plumbing both services would otherwise write twice:
//! [`kafka`] (client settings, topic creation, dead letters), [`retry`] (retry-until-shutdown)
//! and [`format`]. Behind the `runtime` feature so the contract types stay light.
//! Where each piece is used: `docs/architecture.md#shared-plumbing`.

pub mod clock;
pub mod format;
pub mod kafka;
pub mod probe;
pub mod retry;
pub mod suppressions;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

pub use clock::Clock;

/// Installs the global `tracing` subscriber: JSON lines in production (`auto` when stderr is not
/// a terminal), human-readable in a terminal. The level comes from `RUST_LOG` (default `info`).
pub fn init_logs(format: LogFormat) {
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

/// Completes on SIGTERM or SIGINT: the cue to stop taking work and drain.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutdown signal received; draining");
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn render_metrics(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf).expect("text encoding cannot fail");
    String::from_utf8(buf).expect("prometheus text is UTF-8")
}
