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

/// A share given on the command line (`--leave-share 0.85`): a number from 0 to 1.
pub fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a share: give a number from 0 to 1")),
        Err(e) => Err(format!("{text:?} is not a number: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn a_share_is_a_number_from_0_to_1() {
        assert_eq!(share("0.85"), Ok(0.85));
        assert_eq!(share("0"), Ok(0.0));
        assert_eq!(share("1"), Ok(1.0));
        assert!(share("1.5").unwrap_err().contains("from 0 to 1"));
        assert!(share("-0.1").unwrap_err().contains("from 0 to 1"));
        assert!(share("NaN").is_err());
        assert!(share("most").unwrap_err().contains("not a number"));
    }
}
