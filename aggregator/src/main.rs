use std::path::PathBuf;

use aggregator::{AggregatorConfig, RuleSet};
use anyhow::Context;
use clap::{Parser, Subcommand};
use warehouse::rows::BacktestScoreRow;
use warehouse::Warehouse;

/// uptake aggregator: Kafka → ClickHouse, rolling adoption metrics and churn-risk alerts.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file; `UPTAKE_…` environment variables override it.
    #[arg(long, env = "UPTAKE_CONFIG", global = true)]
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
    /// Consume, aggregate and alert until SIGTERM/SIGINT (the default).
    Run,
    /// Only the CSM notifier (alerts → webhooks, `[notifier]` in the config) and the admin
    /// endpoints; for running it apart from the aggregation. `run` includes it when webhooks
    /// are configured.
    Notify,
    /// Apply the ClickHouse migrations and exit.
    Migrate,
    /// Replay the stored history through the rules (`rules_file`), one evaluation per day, and
    /// print which accounts would have alerted on which day — or, with `--score`, how well the
    /// rules caught the recorded churn and contraction outcomes. Writes and publishes nothing.
    Backtest {
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// JSON instead of a table: one alert record per line, or with `--score` the score.
        #[arg(long)]
        json: bool,
        /// Score the replay against the recorded outcomes (docs/analysts.md#scoring-rules-against-outcomes).
        #[arg(long)]
        score: bool,
        /// With `--score`: how long before a churn or contraction an alert still counts ("90d").
        #[arg(long, default_value = "90d", value_parser = aggregator::backtest::score::parse_days)]
        horizon: u32,
        /// With `--score`: also record the score in `backtest_scores` (the console's Rules page).
        #[arg(long, requires = "score")]
        store: bool,
    },
    /// Write the daily health history (`account_health_daily`) of past days: one as-of pass per
    /// day, as a backtest replays them. The live evaluator writes only today's row, so run this
    /// once after loading history, to draw an account's health over the days before.
    History {
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (YYYY-MM-DD), inclusive.
        #[arg(long)]
        to: chrono::NaiveDate,
    },
    /// Print the metric catalogue as the Markdown table of docs/analysts.md.
    MetricsDoc,
    /// Print every SQL statement uptake runs — the migrations, then one evaluation pass's
    /// queries — each ending with `;` on its own line end. Used to prove the SQL on other
    /// ClickHouse versions (deploy/local/chdb_check.py).
    Sql {
        /// Evaluation time of the printed queries (RFC 3339); default now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Print the privacy statements for a sample request over the tables `--columns` describes
    /// (`system.columns` as TSV: table, name, type, 1 if in a key): the retention `TTL`s, a
    /// deletion's mutations and its verification queries, after `-- ttl`, `-- delete` and
    /// `-- verify` lines (deploy/local/chdb_privacy.py runs them on current ClickHouse).
    PrivacySql {
        #[arg(long)]
        columns: PathBuf,
    },
}

/// Records a scored backtest in `backtest_scores`, named by the digest of the rule file's text.
async fn store_score(
    config: &AggregatorConfig,
    scored: &aggregator::backtest::score::Score,
    days: (chrono::NaiveDate, chrono::NaiveDate),
    horizon: u32,
) -> anyhow::Result<()> {
    let text = match &config.rules_file {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        None => aggregator::DEFAULT_RULES.to_owned(),
    };
    let row = BacktestScoreRow::new(
        chrono::Utc::now(),
        days,
        horizon,
        aggregator::backtest::score::rules_digest(&text),
        serde_json::to_string(scored)?,
    );
    Warehouse::new(&config.clickhouse).insert_rows(&[row]).await?;
    eprintln!("score stored in {}.backtest_scores", config.clickhouse.database);
    Ok(())
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
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            aggregator::RawAggregatorConfig::reference().markdown.as_bytes(),
        );
        return Ok(());
    }
    let config = AggregatorConfig::load(args.config.as_deref()).context("loading configuration")?;
    // Loaded and validated once, at start: a bad rule stops the service, naming rule and field.
    let rules = RuleSet::load(config.rules_file.as_deref()).context("loading the rules")?;
    schemas::runtime::init_logs(config.log_format);
    match args.command.unwrap_or(Command::Run) {
        Command::Migrate => {
            let applied = Warehouse::new(&config.clickhouse).migrate().await?;
            println!("migrations applied: {applied:?} (database {})", config.clickhouse.database);
        }
        Command::History { from, to } => {
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let days = (to - from).num_days() + 1;
            let mut done = 0;
            let written = aggregator::backtest::backfill_health(&config, from, to, |day, accounts| {
                done += 1;
                eprintln!("[{done}/{days}] {day}: {accounts} accounts");
            })
            .await?;
            println!(
                "health history: {} rows over {} days written to {}.account_health_daily",
                written.rows, written.days, config.clickhouse.database
            );
        }
        Command::Backtest { from, to, json, score, horizon, store } => {
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let days = (to - from).num_days() + 1;
            let mut done = 0;
            let replay =
                aggregator::backtest::replay(&config, rules.clone(), from, to, chrono::Utc::now(), |day, rows| {
                    done += 1;
                    eprintln!("[{done}/{days}] {day}: {} accounts evaluated", rows.len());
                })
                .await?;
            let out = if score {
                let outcomes = Warehouse::new(&config.clickhouse).outcomes().await?;
                let scored = aggregator::backtest::score::score(&replay, &outcomes, &rules, from, to, horizon);
                if store {
                    store_score(&config, &scored, (from, to), horizon).await?;
                }
                if json {
                    serde_json::to_string_pretty(&scored)? + "\n"
                } else {
                    scored.table()
                }
            } else if json {
                replay
                    .alerts
                    .iter()
                    .map(|a| serde_json::to_string(a).map(|l| l + "\n"))
                    .collect::<Result<String, _>>()?
            } else {
                aggregator::backtest::table(&replay.alerts)
            };
            let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
        }
        Command::MetricsDoc => {
            let _ =
                std::io::Write::write_all(&mut std::io::stdout(), aggregator::model::catalogue::doc_table().as_bytes());
        }
        Command::Sql { at } => {
            let at = at.unwrap_or_else(chrono::Utc::now);
            // The schema, then every kind of pass: live, as of a past day, incremental.
            let statements =
                aggregator::evaluation_sql(&Warehouse::new(&config.clickhouse), &config.kafka.events_topic, at);
            let out: String = statements.into_iter().map(|s| format!("{s};\n")).collect();
            // A reader that stops early (`| head`) is not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
        }
        Command::PrivacySql { columns } => {
            let text = std::fs::read_to_string(&columns).with_context(|| format!("reading {}", columns.display()))?;
            let rows = text.lines().filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() == 4).then(|| (f[0].to_owned(), f[1].to_owned(), f[2].to_owned(), f[3] == "1"))
            });
            let tables = warehouse::privacy::TableColumns::from_columns(rows);
            let wh = Warehouse::new(&config.clickhouse);
            // The sample request: person u1 (named in text by her identify traits), person 42 (a
            // numeric id) and account beta.
            let subjects = warehouse::privacy::Subjects {
                users: vec!["u1".into(), "42".into()],
                accounts: vec!["beta".into()],
                terms: ["u1", "42", "beta", "ana@x.example", "Ana Lee"].map(String::from).to_vec(),
            };
            let render = |s: &str| wh.client().query(s).sql_display().to_string();
            let mut out = String::from("-- ttl\n");
            for s in wh.ttl_statements(&config.retention.limits()) {
                out.push_str(&format!("{};\n", render(&s)));
            }
            out.push_str("-- delete\n");
            for s in wh.deletion_statements(&tables, &subjects) {
                out.push_str(&format!("{};\n", render(&s)));
            }
            out.push_str("-- verify\n");
            for (_, s) in wh.verification_queries(&tables, &subjects) {
                out.push_str(&format!("{};\n", render(&s)));
            }
            let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
        }
        command @ (Command::Run | Command::Notify) => {
            let role =
                if matches!(command, Command::Notify) { aggregator::Role::Notifier } else { aggregator::Role::All };
            anyhow::ensure!(
                role == aggregator::Role::All || !config.notifier.webhooks.is_empty(),
                "notify: no [[notifier.webhooks]] configured"
            );
            let admin = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .with_context(|| format!("binding {}", config.admin_listen))?;
            tracing::info!(admin = %config.admin_listen, brokers = %config.kafka.brokers, clickhouse = %config.clickhouse.url, "aggregator started");
            aggregator::serve(
                config,
                rules,
                role,
                aggregator::Clock::system(),
                admin,
                schemas::runtime::shutdown_signal(),
            )
            .await?;
            tracing::info!("aggregator stopped");
        }
    }
    Ok(())
}
