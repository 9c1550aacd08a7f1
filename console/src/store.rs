//! What the console reads from ClickHouse, and the `alert_actions` rows it writes. Every value
//! that comes from a customer (account ids, search text) is bound as a query parameter, never
//! pasted into SQL; sort keys come from a fixed list.

use aggregator::store::ActionRow;
use chrono::NaiveDate;
use clickhouse::{Client, Row};
use serde::Deserialize;

use crate::ConsoleError;

/// Rows per book page: the book is paged so a page costs the same for 100 or 100,000 accounts.
pub const PAGE_ROWS: u64 = 100;

/// How the book is sorted (a fixed list: the key never reaches SQL as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Lowest health first: the accounts that need a CSM first.
    #[default]
    Health,
    Account,
    Renewal,
    Alerts,
    ActiveUsers,
}

impl Sort {
    pub const ALL: [(Sort, &'static str, &'static str); 5] = [
        (Sort::Health, "health", "health (worst first)"),
        (Sort::Account, "account", "account"),
        (Sort::Renewal, "renewal", "renewal (soonest first)"),
        (Sort::Alerts, "alerts", "open alerts"),
        (Sort::ActiveUsers, "users", "active users vs usual"),
    ];

    pub fn parse(s: &str) -> Self {
        Self::ALL.iter().find(|(_, key, _)| *key == s).map(|(sort, _, _)| *sort).unwrap_or_default()
    }

    pub fn key(self) -> &'static str {
        Self::ALL.iter().find(|(s, _, _)| *s == self).map(|(_, k, _)| *k).unwrap_or("health")
    }

    fn order_by(self) -> &'static str {
        match self {
            Self::Health => "isNull(score), score, account_id",
            Self::Account => "account_id",
            Self::Renewal => "isNull(days_to_renewal), days_to_renewal, account_id",
            Self::Alerts => "top_severity DESC, open_alerts DESC, isNull(score), score, account_id",
            Self::ActiveUsers => "isNull(wau_vs_usual), wau_vs_usual, account_id",
        }
    }
}

/// The book's filters, as the page's query string gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookFilter {
    /// Only this CSM's accounts (owner, case-insensitive).
    pub owner: Option<String>,
    pub band: Option<String>,
    pub stage: Option<String>,
    /// Account ids containing this text (case-insensitive).
    pub search: Option<String>,
    pub sort: Sort,
    pub page: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct BookRow {
    pub account_id: String,
    pub stage: String,
    pub owner: String,
    pub plan: String,
    pub score: Option<f64>,
    pub band: String,
    pub days_to_renewal: Option<i32>,
    pub wau: u64,
    pub wau_usual: Option<f64>,
    pub wau_vs_usual: Option<f64>,
    pub open_alerts: u64,
    /// 3 critical, 2 warning, 1 info, 0 none.
    pub top_severity: u8,
}

/// A page of the book and the counts of the whole filtered book.
#[derive(Debug, Clone, Default)]
pub struct BookPage {
    pub rows: Vec<BookRow>,
    pub total: u64,
    /// Accounts per band (green, yellow, red, none) of the filtered book.
    pub bands: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct BandCount {
    band: String,
    accounts: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ScorePoint {
    pub account_id: String,
    /// Days since 1970-01-01.
    pub day: u16,
    pub score: Option<f64>,
}

/// One day of an account's stored health snapshot (`account_health_daily`).
#[derive(Debug, Clone, Row, Deserialize)]
pub struct HealthDay {
    pub day: u16,
    pub health_score: Option<f64>,
    pub health_band: String,
    pub health_deployment: Option<f64>,
    pub health_adoption: Option<f64>,
    pub health_trend: Option<f64>,
    pub health_value: Option<f64>,
    pub health_experience: Option<f64>,
    pub health_weakest: String,
    pub active_users_7d: u64,
    pub logins_7d: u64,
    pub features_used_30d: u64,
    pub records_30d: u64,
}

/// The account's latest metrics row: what the book shows and what the account page explains.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct AccountNow {
    pub account_id: String,
    pub computed_at: u32,
    pub lifecycle_stage: String,
    pub days_since_start: Option<i32>,
    pub days_to_renewal: Option<i32>,
    pub plan: String,
    pub csm_owner: String,
    pub seats: Option<u32>,
    pub active_users_7d: u64,
    pub active_users_30d: u64,
    pub active_users_baseline: Option<f64>,
    pub active_users_vs_baseline: Option<f64>,
    pub logins_7d: u64,
    pub logins_baseline: Option<f64>,
    pub features_used_30d: u64,
    pub features_used_baseline: Option<f64>,
    pub records_30d: u64,
    pub seat_utilisation: Option<f64>,
    pub days_since_last_login: Option<u32>,
    pub latest_nps: Option<u8>,
    pub open_tickets: u64,
    pub health_score: Option<f64>,
    pub health_band: String,
    pub health_deployment: Option<f64>,
    pub health_adoption: Option<f64>,
    pub health_trend: Option<f64>,
    pub health_value: Option<f64>,
    pub health_experience: Option<f64>,
    pub health_weakest: String,
    pub health_cap: String,
    pub health_score_14d_ago: Option<f64>,
    pub health_change_14d: Option<f64>,
}

/// An episode as the inbox and the timeline show it: its latest rule record and its workflow.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct AlertView {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    pub fired_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub csm_owner: String,
    pub reason: String,
    pub metrics: String,
    /// Whether the rules still hold it open (no `resolved` record yet).
    pub open: u8,
    pub acknowledged_by: String,
    pub assignee: String,
    /// Seconds since the epoch; 0: not snoozed.
    pub snoozed_until: u32,
    pub snooze_note: String,
    pub closed: u8,
    pub close_reason: String,
}

/// One entry of an account's alert timeline: a rule record or a CSM action.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct TimelineRow {
    pub alert_id: String,
    pub rule_id: String,
    pub what: String,
    pub by: String,
    pub at: u32,
    pub detail: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct OutcomeRow {
    pub outcome: String,
    pub occurred_at: u32,
    pub source: String,
}

/// The firing record of an episode: what a lifecycle record repeats.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct FiringRow {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    pub fired_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub metrics: String,
    pub csm_owner: String,
    pub reason: String,
    pub open: u8,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct BacktestRow {
    pub scored_at: u32,
    pub from_day: u16,
    pub to_day: u16,
    pub horizon_days: u32,
    pub rules_digest: String,
    pub score: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct TraitsRow {
    traits: String,
}

/// The workflow state joined onto episodes (alert_workflow is small: one row per worked alert).
const WORKFLOW: &str =
    "SELECT alert_id, acknowledged_by, assignee, toUInt32(snoozed_until) AS snoozed_until, snooze_note,
        toUInt8(closed) AS closed, close_reason FROM {db}.alert_workflow";

/// Each episode's latest rule record (a resolved record wins a tie, as in `open_alerts`), over
/// the `alerts` rows `filter` keeps. The filter runs in an inner query: the outer aliases
/// (`account_id`…) would otherwise shadow the columns it names.
fn episodes(filter: &str) -> String {
    format!(
        "SELECT alert_id, any(account_id) AS account_id, any(rule_id) AS rule_id,
            argMax(severity, toUInt64(recorded_at) * 2 + (status = 'resolved')) AS severity,
            toUInt32(min(fired_at)) AS fired_at,
            argMax(lifecycle_stage, toUInt64(recorded_at) * 2 + (status = 'resolved')) AS lifecycle_stage,
            argMaxIf(health_score, toUInt64(recorded_at), status = 'firing') AS health_score,
            argMaxIf(csm_owner, toUInt64(recorded_at), status = 'firing') AS csm_owner,
            argMaxIf(reason, toUInt64(recorded_at), status = 'firing') AS reason,
            argMaxIf(metrics, toUInt64(recorded_at), status = 'firing') AS metrics,
            toUInt8(argMax(status, toUInt64(recorded_at) * 2 + (status = 'resolved')) = 'firing') AS open
         FROM (SELECT * FROM {{db}}.alerts WHERE status IN ('firing', 'resolved') {filter})
         GROUP BY alert_id"
    )
}

#[derive(Clone)]
pub struct Store {
    /// The aggregator's store: its inserts (database, compression) and row types.
    inner: aggregator::store::Store,
    client: Client,
    db: String,
}

impl Store {
    pub fn new(cfg: &aggregator::config::ClickHouseConfig) -> Self {
        let inner = aggregator::store::Store::new(cfg);
        Self { client: inner.client().clone(), db: inner.database().to_owned(), inner }
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{db}", &self.db)
    }

    pub async fn ping(&self) -> bool {
        self.client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
    }

    /// One page of the book under `filter`, with the filtered book's size and bands.
    pub async fn book(&self, filter: &BookFilter) -> Result<BookPage, ConsoleError> {
        let mut conditions = vec!["1".to_string()];
        let mut binds: Vec<String> = Vec::new();
        if let Some(owner) = &filter.owner {
            conditions.push("lowerUTF8(csm_owner) = lowerUTF8(?)".into());
            binds.push(owner.clone());
        }
        if let Some(band) = &filter.band {
            conditions.push("health_band = ?".into());
            binds.push(band.clone());
        }
        if let Some(stage) = &filter.stage {
            conditions.push("lifecycle_stage = ?".into());
            binds.push(stage.clone());
        }
        if let Some(search) = &filter.search {
            conditions.push("positionCaseInsensitiveUTF8(account_id, ?) > 0".into());
            binds.push(search.clone());
        }
        let filtered = format!(
            "SELECT account_id, lifecycle_stage, csm_owner, plan, health_score, health_band, days_to_renewal,
                    active_users_7d, active_users_baseline, active_users_vs_baseline
             FROM {{db}}.account_metrics FINAL WHERE {}",
            conditions.join(" AND ")
        );
        let rows_sql = self.sql(&format!(
            "SELECT account_id, lifecycle_stage AS stage, csm_owner AS owner, plan, health_score AS score,
                    health_band AS band, days_to_renewal, active_users_7d AS wau, active_users_baseline AS wau_usual,
                    active_users_vs_baseline AS wau_vs_usual,
                    ifNull(open_alerts, 0) AS open_alerts, ifNull(top_severity, 0) AS top_severity
             FROM ({filtered}) AS m
             ANY LEFT JOIN
                 (SELECT account_id, count() AS open_alerts,
                         toUInt8(max(multiIf(severity = 'critical', 3, severity = 'warning', 2, 1))) AS top_severity
                  FROM {{db}}.open_alerts
                  WHERE alert_id NOT IN (SELECT alert_id FROM {{db}}.alert_workflow WHERE closed)
                  GROUP BY account_id) AS a
             USING account_id
             ORDER BY {} LIMIT {} OFFSET {}",
            filter.sort.order_by(),
            PAGE_ROWS,
            filter.page * PAGE_ROWS
        ));
        let bands_sql = self.sql(&format!(
            "SELECT health_band AS band, count() AS accounts FROM ({filtered}) AS m GROUP BY band ORDER BY band"
        ));
        let mut rows_q = self.client.query(&rows_sql);
        let mut bands_q = self.client.query(&bands_sql);
        for b in &binds {
            rows_q = rows_q.bind(b.as_str());
            bands_q = bands_q.bind(b.as_str());
        }
        let (rows, bands) = tokio::try_join!(rows_q.fetch_all::<BookRow>(), bands_q.fetch_all::<BandCount>())?;
        let total = bands.iter().map(|b| b.accounts).sum();
        Ok(BookPage { rows, total, bands: bands.into_iter().map(|b| (b.band, b.accounts)).collect() })
    }

    /// Every CSM owning an account (the book's owner filter).
    pub async fn owners(&self) -> Result<Vec<String>, ConsoleError> {
        let sql = self.sql(
            "SELECT DISTINCT csm_owner FROM {db}.account_metrics FINAL WHERE csm_owner != '' ORDER BY csm_owner LIMIT 1000",
        );
        Ok(self.client.query(&sql).fetch_all().await?)
    }

    /// The stored health scores of `accounts` from `from` on, by account and day.
    pub async fn scores_since(&self, accounts: &[String], from: NaiveDate) -> Result<Vec<ScorePoint>, ConsoleError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // One placeholder per id: ClickHouse 18.16 takes a tuple after IN, not an array.
        let marks = vec!["?"; accounts.len()].join(", ");
        let sql = self.sql(&format!(
            "SELECT account_id, toUInt16(d) AS day, health_score AS score
             FROM (SELECT account_id, day AS d, health_score FROM {{db}}.account_health_daily FINAL
                   WHERE account_id IN ({marks}) AND day >= toDate(?))
             ORDER BY account_id, day"
        ));
        let mut q = self.client.query(&sql);
        for a in accounts {
            q = q.bind(a.as_str());
        }
        Ok(q.bind(from.to_string()).fetch_all().await?)
    }

    pub async fn account(&self, account_id: &str) -> Result<Option<AccountNow>, ConsoleError> {
        let sql = self.sql(
            "SELECT account_id, toUInt32(computed_at) AS computed_at, lifecycle_stage, days_since_start, days_to_renewal,
                    plan, csm_owner, seats, active_users_7d, active_users_30d, active_users_baseline,
                    active_users_vs_baseline, logins_7d, logins_baseline, features_used_30d, features_used_baseline,
                    records_30d, seat_utilisation, days_since_last_login, latest_nps, open_tickets, health_score,
                    health_band, health_deployment, health_adoption, health_trend, health_value, health_experience,
                    health_weakest, health_cap, health_score_14d_ago, health_change_14d
             FROM {db}.account_metrics FINAL WHERE account_id = ?",
        );
        Ok(self.client.query(&sql).bind(account_id).fetch_optional().await?)
    }

    pub async fn health_history(&self, account_id: &str, from: NaiveDate) -> Result<Vec<HealthDay>, ConsoleError> {
        let sql = self.sql(
            "SELECT toUInt16(d) AS day, health_score, health_band, health_deployment, health_adoption, health_trend,
                    health_value, health_experience, health_weakest, active_users_7d, logins_7d, features_used_30d,
                    records_30d
             FROM (SELECT *, day AS d FROM {db}.account_health_daily FINAL WHERE account_id = ? AND day >= toDate(?))
             ORDER BY day",
        );
        Ok(self.client.query(&sql).bind(account_id).bind(from.to_string()).fetch_all().await?)
    }

    /// The account's latest traits (JSON object text; "{}" when none were sent).
    pub async fn traits(&self, account_id: &str) -> Result<String, ConsoleError> {
        let sql = self.sql(
            "SELECT argMax(traits, updated_at) AS traits FROM {db}.accounts WHERE account_id = ? GROUP BY account_id",
        );
        let row: Option<TraitsRow> = self.client.query(&sql).bind(account_id).fetch_optional().await?;
        Ok(row.map(|r| r.traits).unwrap_or_else(|| "{}".into()))
    }

    /// Episodes with their workflow: the inbox (`account` None: every open, unclosed one) or
    /// one account's (every episode, newest first).
    pub async fn alerts(&self, account: Option<&str>) -> Result<Vec<AlertView>, ConsoleError> {
        let (filter, having) = match account {
            Some(_) => ("AND account_id = ?", ""),
            None => ("", "HAVING open = 1"),
        };
        let sql = self.sql(&format!(
            "SELECT alert_id, account_id, rule_id, severity, fired_at, lifecycle_stage, health_score, csm_owner,
                    reason, metrics, open, acknowledged_by, assignee, snoozed_until, snooze_note, closed, close_reason
             FROM ({} {having}) AS e
             ANY LEFT JOIN ({WORKFLOW}) AS w USING alert_id
             ORDER BY multiIf(severity = 'critical', 3, severity = 'warning', 2, 1) DESC, fired_at DESC, alert_id",
            episodes(filter)
        ));
        let mut q = self.client.query(&sql);
        if let Some(a) = account {
            q = q.bind(a);
        }
        Ok(q.fetch_all().await?)
    }

    /// The firing record of `alert_id` and whether the rules still hold it open.
    pub async fn firing(&self, alert_id: &str) -> Result<Option<FiringRow>, ConsoleError> {
        let sql = self.sql(&format!(
            "SELECT alert_id, account_id, rule_id, severity, fired_at, lifecycle_stage, health_score, metrics,
                    csm_owner, reason, open
             FROM ({}) AS e",
            episodes("AND alert_id = ?")
        ));
        Ok(self.client.query(&sql).bind(alert_id).fetch_optional().await?)
    }

    /// Whether `alert_id` was closed.
    pub async fn closed(&self, alert_id: &str) -> Result<bool, ConsoleError> {
        let sql = self.sql("SELECT toUInt8(closed) FROM {db}.alert_workflow WHERE alert_id = ?");
        Ok(self.client.query(&sql).bind(alert_id).fetch_optional::<u8>().await? == Some(1))
    }

    /// Every rule record and CSM action of the account's episodes, newest first.
    pub async fn timeline(&self, account_id: &str) -> Result<Vec<TimelineRow>, ConsoleError> {
        let sql = self.sql(
            "SELECT alert_id, rule_id, what, by, at, detail FROM
             (
                 SELECT alert_id, rule_id, status AS what, 'uptake' AS by,
                        toUInt32(if(status = 'resolved', ifNull(resolved_at, recorded_at), fired_at)) AS at,
                        reason AS detail
                 FROM {db}.alerts WHERE account_id = ?
                 UNION ALL
                 SELECT alert_id, rule_id, action AS what, actor AS by, toUInt32(at) AS at,
                        concat(note, if(assignee = '', '', concat(' → ', assignee)),
                               if(close_reason = '', '', concat(' (', close_reason, ')')),
                               if(action = 'snoozed', concat(' until ', toString(toDate(snoozed_until))), '')) AS detail
                 FROM {db}.alert_actions FINAL WHERE account_id = ?
             )
             ORDER BY at DESC, what",
        );
        Ok(self.client.query(&sql).bind(account_id).bind(account_id).fetch_all().await?)
    }

    pub async fn outcomes(&self, account_id: &str) -> Result<Vec<OutcomeRow>, ConsoleError> {
        let sql = self.sql(
            "SELECT outcome, toUInt32(occurred_at) AS occurred_at, source FROM {db}.account_outcomes
             WHERE account_id = ? ORDER BY occurred_at DESC",
        );
        Ok(self.client.query(&sql).bind(account_id).fetch_all().await?)
    }

    /// Whether an action with this id was stored for `alert_id` (a re-posted form).
    pub async fn action_stored(&self, alert_id: &str, action_id: &str) -> Result<bool, ConsoleError> {
        let sql = self.sql("SELECT count() FROM {db}.alert_actions WHERE alert_id = ? AND action_id = ?");
        Ok(self.client.query(&sql).bind(alert_id).bind(action_id).fetch_one::<u64>().await? > 0)
    }

    pub async fn record_action(&self, row: &ActionRow) -> Result<(), ConsoleError> {
        Ok(self.inner.insert_rows("alert_actions", std::slice::from_ref(row)).await?)
    }

    pub async fn latest_backtest(&self) -> Result<Option<BacktestRow>, ConsoleError> {
        let sql = self.sql(
            "SELECT toUInt32(scored_at) AS scored_at, toUInt16(from_day) AS from_day, toUInt16(to_day) AS to_day,
                    horizon_days, rules_digest, score
             FROM {db}.backtest_scores ORDER BY scored_at DESC LIMIT 1",
        );
        Ok(self.client.query(&sql).fetch_optional().await?)
    }
}
