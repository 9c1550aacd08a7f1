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
    /// Make a token for the privacy API: prints the token (give it to the script or admin who
    /// will use it) and the `[[api_tokens]]` entry to add to the config (only its SHA-256).
    Token {
        /// Who will use it: the audit trail records this name as the requester.
        name: String,
    },
    /// File and follow privacy requests through a running console's API (docs/privacy.md).
    Privacy {
        /// The console's address, as this machine reaches it (plain HTTP: run it next to the
        /// console, or through a port-forward).
        #[arg(long, env = "UPTAKE_CONSOLE_URL", default_value = "http://127.0.0.1:8090")]
        url: String,
        /// An API token (`console token add`).
        #[arg(long, env = "UPTAKE_API_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        command: PrivacyCommand,
    },
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// File a request: suppress, suppress_with_delete, delete or unsuppress.
    File {
        #[arg(long = "type")]
        kind: String,
        /// People: user ids or anonymous ids (repeat, or comma-separated).
        #[arg(long = "user", value_delimiter = ',')]
        users: Vec<String>,
        /// Whole accounts (repeat, or comma-separated).
        #[arg(long = "account", value_delimiter = ',', conflicts_with = "users")]
        accounts: Vec<String>,
    },
    /// A request's status and audit trail.
    Show { id: String },
    /// The latest requests.
    List,
    /// Everything held about one person or account, as JSON on stdout.
    Export {
        #[arg(long, conflicts_with = "account", required_unless_present = "account")]
        user: Option<String>,
        #[arg(long)]
        account: Option<String>,
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
        Command::Token { name } => {
            anyhow::ensure!(
                console::config::valid_user_name(&name),
                "token name must be 1–64 characters of letters, digits, . _ @ + -"
            );
            let token = console::auth::new_token();
            let digest = console::auth::token_digest(&token);
            eprintln!("token (shown once; keep it secret): {token}");
            println!("[[api_tokens]]\nname = {name:?}\nsha256 = {digest:?}");
        }
        Command::Privacy { url, token, command } => privacy(&url, &token, command).await?,
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

/// `console privacy …`: one call to the console's privacy API; the answer as pretty JSON on
/// stdout, or its error on stderr with a non-zero exit.
async fn privacy(url: &str, token: &str, command: PrivacyCommand) -> anyhow::Result<()> {
    let base = url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let request = match command {
        PrivacyCommand::File { kind, users, accounts } => {
            let (subject_type, ids) = if accounts.is_empty() { ("user", users) } else { ("account", accounts) };
            let body = serde_json::json!({ "type": kind, "subject_type": subject_type, "ids": ids });
            http.post(format!("{base}/api/v1/regulations")).json(&body)
        }
        PrivacyCommand::Show { id } => http.get(format!("{base}/api/v1/regulations/{id}")),
        PrivacyCommand::List => http.get(format!("{base}/api/v1/regulations")),
        PrivacyCommand::Export { user, account } => {
            let (subject_type, id) = match (user, account) {
                (Some(u), _) => ("user", u),
                (None, Some(a)) => ("account", a),
                (None, None) => anyhow::bail!("name --user or --account"),
            };
            http.get(format!("{base}/api/v1/exports")).query(&[("subject_type", subject_type), ("id", &id)])
        }
    };
    let res = request.bearer_auth(token).send().await.with_context(|| format!("reaching {base}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.context("reading the answer")?;
    let text = serde_json::to_string_pretty(&body)?;
    anyhow::ensure!(status.is_success(), "{status}: {text}");
    println!("{text}");
    Ok(())
}
