//! A book of accounts for the console's tests, put through the real path: loadgen's simulated
//! book (`tools::loadgen`) → ingest → Kafka → aggregator → ClickHouse, then the health backfill
//! over its past days (`aggregator history`) and one live evaluation, so every table a console
//! page reads is filled as in production: `events`, `account_metrics`, `account_health_daily`
//! (one row per account and day), `alerts` / `open_alerts` with firing episodes, and a stored
//! scored backtest (`backtest_scores`, the Rules page).

use std::sync::Arc;
use std::time::Duration;

use aggregator::backtest::score;
use aggregator::AggregatorConfig;
use aggregator::{Evaluator, Ownership, RuleSet};
use chrono::{DateTime, Days, NaiveDate, Utc};
use console::{Clock, RawConsoleConfig};
use rdkafka::producer::{FutureProducer, Producer};
use serde_json::Value;
use tokio::sync::oneshot;
use tools::loadgen::{self, send::Sender, Book, Format};
use warehouse::rows::BacktestScoreRow;
use warehouse::Warehouse;

use crate::Stack;

/// The write key the seed's ingest accepts.
pub const WRITE_KEY: &str = "console-seed-write-key-0123456789abcd";
/// The book: 12 accounts (seed 42: every story of the demo, four of them at risk) over 70 days.
pub const ACCOUNTS: usize = 12;
pub const DAYS: u32 = 70;
pub const SEED: u64 = 42;

/// What [`seed_book`] stored.
pub struct SeededBook {
    /// The aggregator configuration of the seed: its database, topics and (default) rules. The
    /// console reads the same; a test may start the notifier with it.
    pub aggregator: AggregatorConfig,
    /// The simulated book and its ground truth.
    pub book: Book,
    /// The days whose health was backfilled: the book's first day to yesterday.
    pub history: (NaiveDate, NaiveDate),
    /// At-risk accounts (ground truth) with an open firing alert, sorted.
    pub at_risk: Vec<String>,
    /// Every open firing alert, most severe first, then by account.
    pub open_alerts: Vec<OpenAlert>,
}

/// One open alert episode (a row of `open_alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
}

impl SeededBook {
    /// The open alerts of the at-risk accounts.
    pub fn at_risk_alerts(&self) -> Vec<&OpenAlert> {
        self.open_alerts.iter().filter(|a| self.at_risk.contains(&a.account_id)).collect()
    }
}

/// Seeds the book on `stack` (fresh topics and database; ~10–20 s). Panics, naming what is
/// missing, unless it ends with at least two at-risk accounts alerting.
pub async fn seed_book(stack: &Stack) -> SeededBook {
    let mut cfg = crate::aggregator::config(stack, "console-seed", 2).await;
    cfg.batch.max_wait_ms = 200;
    // Its pass at start only (nothing stored yet): the live evaluation runs after the backfill.
    cfg.evaluation.interval_ms = 3_600_000;
    // Judged at once: the seeded console shows what a CSM sees once the import settled (each
    // evaluate_live is a fresh evaluator, which would otherwise wait for the book to settle).
    cfg.evaluation.settle_ms = 0;
    let cfg = cfg.build_and_validate().expect("a valid aggregator config");
    let db = stack.database();

    let mut ingest_cfg = crate::ingest::config_for(&stack.kafka, WRITE_KEY, "console-seed");
    ingest_cfg.kafka.topic = cfg.kafka.events_topic.clone();
    let ingest = crate::ingest::serve(ingest_cfg).await;
    let consumer = crate::aggregator::start(cfg.clone()).await;
    let book = Book::new(ACCOUNTS, DAYS, SEED, loadgen::today());
    let sender = Sender::new(&ingest.url, WRITE_KEY, Format::Native);
    let sent = loadgen::history(&book, &sender, 500, 4).await.expect("ingest takes the book");
    let stored =
        stack.wait_for_count(&format!("SELECT count() AS n FROM {db}.events"), sent, Duration::from_secs(60)).await;
    assert_eq!(stored, sent, "every event of the book in ClickHouse");
    ingest.stop().await.expect("ingest stops");
    consumer.stop().await.expect("the aggregator stops");

    let history = (book.first_day, book.today - Days::new(1));
    aggregator::backtest::backfill_health(&cfg, history.0, history.1, |_, _| {}).await.expect("health backfill");

    store_backtest_score(&cfg, history.1).await;
    evaluate_live(&cfg, Utc::now()).await;
    let today = format!("SELECT count() AS n FROM {db}.account_metrics WHERE as_of = toDate('{}')", book.today);
    let metrics = stack.wait_for_count(&today, ACCOUNTS as u64, Duration::from_secs(10)).await;
    assert_eq!(metrics, ACCOUNTS as u64, "the live pass wrote every account's metrics");

    let open_alerts = open_alerts(stack).await;
    let mut at_risk: Vec<String> = book
        .accounts
        .iter()
        .filter(|a| a.at_risk() && open_alerts.iter().any(|o| o.account_id == a.id))
        .map(|a| a.id.clone())
        .collect();
    at_risk.sort();
    assert!(at_risk.len() >= 2, "two at-risk accounts alerting; open: {open_alerts:?}");
    SeededBook { aggregator: cfg, book, history, at_risk, open_alerts }
}

/// Scores the rules over the 28 days ending `to` and stores the score, as `aggregator backtest
/// --score --store` does: what the Rules page shows.
async fn store_backtest_score(cfg: &AggregatorConfig, to: NaiveDate) {
    let from = to - Days::new(27);
    let rules = RuleSet::load(cfg.rules_file.as_deref()).expect("the rules");
    let replay =
        aggregator::backtest::replay(cfg, rules.clone(), from, to, Utc::now(), |_, _| {}).await.expect("a replay");
    let store = Warehouse::new(&cfg.clickhouse);
    let outcomes = store.outcomes().await.expect("the outcomes");
    let scored = score::score(&replay, &outcomes, &rules, from, to, 90);
    let digest = score::rules_digest(aggregator::DEFAULT_RULES);
    let json = serde_json::to_string(&scored).expect("score JSON");
    let row = BacktestScoreRow::new(Utc::now(), (from, to), 90, digest, json);
    store.insert_rows(std::slice::from_ref(&row)).await.expect("the score stored");
}

/// One live evaluation pass at `now`, as `aggregator run` makes them (metrics rows, the day's
/// health, alert and `snooze_ended` records published on the alerts topic and stored), over every
/// partition: a test moves time past a snooze's end with it. In-process rather than a restarted
/// aggregator: a new member of the seed's consumer group would own no partition until the group
/// rebalanced, and evaluates only the accounts of the partitions it owns.
pub async fn evaluate_live(cfg: &AggregatorConfig, now: DateTime<Utc>) {
    let store = Warehouse::new(&cfg.clickhouse);
    let partitions = store.partitions(&cfg.kafka.events_topic).await.expect("the events topic's partitions");
    let producer: FutureProducer = cfg.kafka.to_rdkafka_producer().create().expect("a producer");
    let rules = RuleSet::load(cfg.rules_file.as_deref()).expect("the rules");
    let metrics = Arc::new(aggregator::Telemetry::new());
    let ownership = Arc::new(Ownership::fixed(partitions));
    let mut evaluator = Evaluator::live(cfg, rules, store, producer.clone(), metrics, ownership);
    evaluator.evaluate(now).await.expect("a live evaluation pass");
    producer.flush(Duration::from_secs(10)).expect("alert records delivered");
}

async fn open_alerts(stack: &Stack) -> Vec<OpenAlert> {
    let db = stack.database();
    let rows = stack
        .query(&format!(
            "SELECT alert_id, account_id, rule_id, severity FROM {db}.open_alerts
             ORDER BY severity = 'critical' DESC, account_id, rule_id"
        ))
        .await;
    let text = |r: &Value, k: &str| r[k].as_str().unwrap_or_default().to_owned();
    rows.iter()
        .map(|r| OpenAlert {
            alert_id: text(r, "alert_id"),
            account_id: text(r, "account_id"),
            rule_id: text(r, "rule_id"),
            severity: text(r, "severity"),
        })
        .collect()
}

/// Every console user's password in the tests.
pub const PASSWORD: &str = "correct horse battery staple";
/// The session secret of [`start_console`]'s consoles (a test can sign a cookie with it).
pub const SESSION_SECRET: &str = "test-console-session-secret-0123456789abcdef";

/// A console serving in-process on a free port; stopped when dropped.
pub struct RunningConsole {
    pub url: String,
    /// The console's clock: a test moves a fixed one.
    pub clock: Clock,
    /// `http://` address of the admin listener (`/healthz`, `/readyz`, `/metrics`), when started
    /// with one ([`start_console_with_admin`]).
    pub admin_url: Option<String>,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningConsole {
    /// The URL of `path` on this console.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for RunningConsole {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a console over `aggregator`'s ClickHouse and broker, for `users` (each with
/// [`PASSWORD`]), with `extra` appended to its TOML (e.g. an `[auth]` section), on `clock`.
pub async fn start_console(aggregator: AggregatorConfig, users: &[&str], extra: &str, clock: Clock) -> RunningConsole {
    start(aggregator, users, extra, clock, false).await
}

/// [`start_console`] with an admin listener on a free port too (`RunningConsole::admin_url`).
pub async fn start_console_with_admin(
    aggregator: AggregatorConfig,
    users: &[&str],
    extra: &str,
    clock: Clock,
) -> RunningConsole {
    start(aggregator, users, extra, clock, true).await
}

async fn start(aggregator: AggregatorConfig, users: &[&str], extra: &str, clock: Clock, admin: bool) -> RunningConsole {
    let hash = console::auth::hash_password(PASSWORD).expect("a password hash");
    let mut toml = format!("[session]\nsecret = \"{SESSION_SECRET}\"\nsecure_cookie = false\n{extra}\n");
    for user in users {
        toml.push_str(&format!("[[users]]\nname = \"{user}\"\npassword_hash = \"{hash}\"\n"));
    }
    let cfg =
        RawConsoleConfig::from_toml(&toml).and_then(|raw| raw.build_with(aggregator)).expect("the console config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let admin = match admin {
        true => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port")),
        false => None,
    };
    let admin_url = admin.as_ref().map(|a| format!("http://{}", a.local_addr().expect("its address")));
    let (stop, stopped) = oneshot::channel::<()>();
    let served = console::serve_with_admin(cfg, listener, admin, clock.clone(), async {
        let _ = stopped.await;
    });
    tokio::spawn(async move { served.await.expect("the console serves") });
    RunningConsole { url, clock, admin_url, stop: Some(stop) }
}
