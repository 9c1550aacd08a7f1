//! The console's pages on the evaluation book: the book page over every account (the issue's
//! figure: 10,000 accounts in under 300 ms server-side), a search, the inbox and an account page.
//!
//! The console runs in this process on a free port against the evaluation database. Its
//! session cookie is signed here with the console's own [`Signer`] (no password round trip).
//! Times are whole loopback HTTP requests: the server's work plus a loopback hop, so an upper
//! bound of the server-side time.

use std::time::{Duration, Instant};

use aggregator::AggregatorConfig;
use console::auth::{Signer, SESSION_COOKIE};
use console::{Clock, RawConsoleConfig};
use warehouse::Warehouse;

use super::load::quantile;
use crate::ToolsError;

const SECRET: &str = "bench-console-session-secret-0123456789";
const USER: &str = "bench@vendor.example";
/// Requests per page; the first of each is a warm-up and not counted.
const REQUESTS: usize = 21;

/// One page's request times.
#[derive(Debug, Clone)]
pub struct PageTimes {
    pub page: String,
    pub accounts: usize,
    pub times: Vec<Duration>,
    /// Bytes of HTML.
    pub bytes: usize,
}

impl PageTimes {
    pub fn p50(&self) -> Duration {
        quantile(&self.times, 0.5)
    }
    pub fn p95(&self) -> Duration {
        quantile(&self.times, 0.95)
    }
}

fn setup(msg: impl std::fmt::Display) -> ToolsError {
    ToolsError::Setup(format!("console: {msg}"))
}

/// Gives the book 29 more days of health history (the sparklines' 30 days), then times the
/// pages. `accounts`: the book's size.
pub async fn run(cfg: &AggregatorConfig, store: &Warehouse, accounts: usize) -> Result<Vec<PageTimes>, ToolsError> {
    let db = store.database();
    let backfill = format!(
        "INSERT INTO {db}.account_health_daily (account_id, day, computed_at, lifecycle_stage, health_score, health_band)
         SELECT account_id, day - (n + 1), computed_at, lifecycle_stage,
                greatest(0., least(100., ifNull(health_score, 50.) + (n % 7) * 3 - 9)), health_band
         FROM {db}.account_health_daily ARRAY JOIN range(29) AS n
         WHERE day = (SELECT max(day) FROM {db}.account_health_daily)"
    );
    store.client().query(&backfill).execute().await.map_err(setup)?;

    let hash = console::auth::hash_password("bench-password").map_err(setup)?;
    let toml = format!(
        "listen = \"127.0.0.1:0\"\n[session]\nsecret = \"{SECRET}\"\nsecure_cookie = false\n\
         [[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\n"
    );
    let console_cfg = RawConsoleConfig::from_toml(&toml).and_then(|r| r.build_with(cfg.clone())).map_err(setup)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(console::serve(console_cfg, listener, Clock::system(), async {
        let _ = stopped.await;
    }));

    let cookie = format!("{SESSION_COOKIE}={}", Signer::new(SECRET.as_bytes()).issue(USER, i64::MAX / 2));
    let client = reqwest::Client::new();
    let some_account: String = store
        .client()
        .query(&format!("SELECT min(account_id) FROM {db}.account_metrics"))
        .fetch_one()
        .await
        .map_err(setup)?;
    let pages = [
        ("book, all accounts, worst health first", "/book?scope=all".to_string()),
        ("book, sorted by open alerts", "/book?scope=all&sort=alerts".to_string()),
        ("book, search", "/book?scope=all&q=0042".to_string()),
        ("alert inbox", "/inbox?scope=all".to_string()),
        ("account page (90 days of history)", console::pages::account_href(&some_account)),
    ];
    let mut out = Vec::new();
    for (name, path) in pages {
        let mut times = Vec::with_capacity(REQUESTS);
        let mut bytes = 0;
        for i in 0..REQUESTS {
            let started = Instant::now();
            let res = client.get(format!("http://{addr}{path}")).header("cookie", &cookie).send().await?;
            let status = res.status();
            let body = res.text().await?;
            let took = started.elapsed();
            if !status.is_success() {
                return Err(setup(format!("{path}: {status}: {}", body.chars().take(300).collect::<String>())));
            }
            bytes = body.len();
            if i > 0 {
                times.push(took);
            }
        }
        times.sort();
        out.push(PageTimes { page: name.into(), accounts, times, bytes });
    }
    let _ = stop.send(());
    server.await.map_err(setup)?.map_err(setup)?;
    Ok(out)
}
