use std::io::BufRead;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use console::{Clock, RawConsoleConfig};

/// uptake console: the CSM's book, alert inbox and workflow, account pages and rules.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; `UPTAKE_CONSOLE__…` environment variables override it.
    #[arg(long, env = "UPTAKE_CONSOLE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Health check for containers (no shell or curl in the images): ask `HOST:PORT/readyz`
    /// (this service's admin listener) and exit 0 when it answers 200, 1 otherwise.
    #[arg(long, value_name = "HOST:PORT")]
    probe: Option<String>,
    /// Print the reference of every configuration key (Markdown, as in docs/configuration.md).
    #[arg(long)]
    config_doc: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the console until SIGTERM/SIGINT (the default).
    Serve,
    /// Print every ClickHouse read the console makes, with sample arguments, after a
    /// `-- console queries` line (deploy/local/chdb_console.py runs them on current ClickHouse).
    Sql,
    /// Manage sign-in users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Hash a password (read from the first line of stdin) and print the `[[users]]` entry to
    /// add to the console's config. The password itself is never printed or stored.
    Add {
        /// The sign-in name: the CSM's name as accounts' `csm` trait gives it (often an email).
        name: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = &args.probe {
        std::process::exit(schemas::runtime::probe::exit_code(addr));
    }
    if args.config_doc {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            console::RawConsoleConfig::reference().markdown.as_bytes(),
        );
        return Ok(());
    }
    match args.command.unwrap_or(Command::Serve) {
        Command::User { command: UserCommand::Add { name, display_name } } => {
            anyhow::ensure!(
                console::config::valid_user_name(&name),
                "user name must be 1–64 characters of letters, digits, . _ @ + -"
            );
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(password.chars().count() >= 8, "the password must have at least 8 characters");
            let hash = console::auth::hash_password(password)?;
            println!("[[users]]\nname = {name:?}\ndisplay_name = {display_name:?}\npassword_hash = {hash:?}");
        }
        Command::Sql => {
            // Only the aggregator config is needed (the database name): no users, no secret.
            let raw = RawConsoleConfig::load(args.config.as_deref()).context("loading configuration")?;
            let aggregator = aggregator::AggregatorConfig::load(raw.aggregator_config.as_deref())?;
            let store = console::store::Store::new(&aggregator.clickhouse);
            let today = chrono::Utc::now().date_naive();
            let mut out = String::from("-- console queries\n");
            for (name, sql) in store.check_queries(today) {
                out.push_str(&format!("-- {name}\n{sql};\n"));
            }
            let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
        }
        Command::Serve => {
            let raw = RawConsoleConfig::load(args.config.as_deref()).context("loading configuration")?;
            let cfg = raw.build().context("checking the configuration")?;
            schemas::runtime::init_logs(cfg.aggregator.log_format);
            let listener =
                tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
            let admin = match cfg.admin_listen {
                Some(addr) => Some(
                    tokio::net::TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding admin_listen {addr}"))?,
                ),
                None => None,
            };
            console::serve_with_admin(cfg, listener, admin, Clock::system(), schemas::runtime::shutdown_signal())
                .await?;
            tracing::info!("console stopped");
        }
    }
    Ok(())
}
