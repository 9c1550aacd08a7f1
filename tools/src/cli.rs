//! Command-line arguments the tools that start their own services share (`bench`, `signal`).

use std::path::PathBuf;

/// The running stack (a broker and ClickHouse) and where the service binaries are.
#[derive(Debug, clap::Args)]
pub struct StackArgs {
    /// Kafka bootstrap servers of the running stack.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// ClickHouse HTTP URL of the running stack.
    #[arg(long, default_value = "http://127.0.0.1:8123")]
    pub clickhouse: String,
    /// Directory of the `ingest` and `aggregator` binaries; default: next to this one.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

impl StackArgs {
    /// `--bin-dir`, or the directory of the running executable.
    pub fn bin_dir(&self) -> std::io::Result<PathBuf> {
        match &self.bin_dir {
            Some(d) => Ok(d.clone()),
            None => {
                let exe = std::env::current_exe()?;
                exe.parent()
                    .map(PathBuf::from)
                    .ok_or_else(|| std::io::Error::other(format!("{} has no parent directory", exe.display())))
            }
        }
    }
}
