//! Every ClickHouse read the console makes, built as a [`Query`] by one function each, so the
//! same text runs here and in the chDB check on current ClickHouse (`console sql`). Customer
//! text (account ids, search) is always a bound parameter; sort keys come from a fixed list.
//! Filters run in inner queries wherever an outer alias would shadow the column they name
//! (ClickHouse 18.16 resolves aliases before columns).

use aggregator::model::MetricsRow;
use chrono::NaiveDate;
use clickhouse::query::Query;
use warehouse::rows::{ActionRow, BacktestScoreRow, HealthDayRow};
use warehouse::{ClickHouseConfig, Warehouse};

use super::{
    AlertView, BandCount, BookFilter, BookPage, BookRow, FiringRow, InboxCounts, InboxFilter, InboxPage, OutcomeRow,
    ScorePoint, TimelineRow, TraitsRow, INBOX_ROWS, PAGE_ROWS,
};
use crate::ConsoleError;

/// The columns of a row type its writer shares with us (the aggregator's account metrics, the
/// warehouse's tables), so no column is named twice. Listed in the statement rather than by the
/// client's `?fields`, so that `console sql` shows the text that runs.
fn columns_of<R: clickhouse::Row>() -> String {
    R::COLUMN_NAMES.join(", ")
}

/// 3 critical, 2 warning, 1 info: most severe first.
const SEVERITY_RANK: &str = "multiIf(severity = 'critical', 3, severity = 'warning', 2, 1)";

/// The workflow state joined onto episodes (alert_workflow is small: one row per worked alert).
const WORKFLOW: &str =
    "SELECT alert_id, acknowledged_by, assignee, toUInt32(snoozed_until) AS snoozed_until, snooze_note,
        toUInt8(closed) AS closed, close_reason FROM {db}.alert_workflow";

/// Each episode's latest rule record (a resolved record wins a tie, as in `open_alerts`), over
/// the `alerts` rows `filter` keeps.
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
    /// The tables' client: the one `{db}` convention, inserts by row type.
    warehouse: Warehouse,
}

impl Store {
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        Self { warehouse: Warehouse::new(cfg) }
    }

    fn query(&self, text: &str) -> Query {
        self.warehouse.query(text)
    }

    pub async fn ping(&self) -> bool {
        self.warehouse.ping().await
    }

    /// The book's page and its band counts under `filter`.
    fn book_queries(&self, filter: &BookFilter) -> (Query, Query) {
        let given = [
            (&filter.owner, "lowerUTF8(csm_owner) = lowerUTF8(?)"),
            (&filter.band, "health_band = ?"),
            (&filter.stage, "lifecycle_stage = ?"),
            (&filter.search, "positionCaseInsensitiveUTF8(account_id, ?) > 0"),
        ];
        let given: Vec<(&str, &str)> = given.iter().filter_map(|(v, c)| v.as_deref().map(|v| (v, *c))).collect();
        let mut conditions = vec!["1"];
        conditions.extend(given.iter().map(|(_, c)| *c));
        let binds = given.iter().map(|(v, _)| *v);
        let filtered = format!(
            "SELECT account_id, lifecycle_stage, csm_owner, plan, health_score, health_band, days_to_renewal,
                    active_users_7d, active_users_baseline, active_users_vs_baseline
             FROM {{db}}.account_metrics FINAL WHERE {}",
            conditions.join(" AND ")
        );
        let rows = format!(
            "SELECT account_id, lifecycle_stage AS stage, csm_owner AS owner, plan, health_score AS score,
                    health_band AS band, days_to_renewal, active_users_7d AS wau, active_users_baseline AS wau_usual,
                    active_users_vs_baseline AS wau_vs_usual,
                    ifNull(open_alerts, 0) AS open_alerts, ifNull(top_severity, 0) AS top_severity
             FROM ({filtered}) AS m
             ANY LEFT JOIN
                 (SELECT account_id, count() AS open_alerts,
                         toUInt8(max({SEVERITY_RANK})) AS top_severity
                  FROM {{db}}.open_alerts
                  WHERE alert_id NOT IN (SELECT alert_id FROM {{db}}.alert_workflow WHERE closed)
                  GROUP BY account_id) AS a
             USING account_id
             ORDER BY {} LIMIT {} OFFSET {}",
            filter.sort.order_by(),
            PAGE_ROWS,
            filter.page * PAGE_ROWS
        );
        let bands = format!(
            "SELECT health_band AS band, count() AS accounts FROM ({filtered}) AS m GROUP BY band ORDER BY band"
        );
        let (mut rows, mut bands) = (self.query(&rows), self.query(&bands));
        for b in binds {
            rows = rows.bind(b);
            bands = bands.bind(b);
        }
        (rows, bands)
    }

    /// One page of the book under `filter`, with the filtered book's size and bands (red, yellow,
    /// green, then none).
    pub async fn book(&self, filter: &BookFilter) -> Result<BookPage, ConsoleError> {
        let (rows, bands) = self.book_queries(filter);
        let (rows, mut bands) = tokio::try_join!(rows.fetch_all::<BookRow>(), bands.fetch_all::<BandCount>())?;
        let rank = |b: &str| ["red", "yellow", "green"].iter().position(|x| *x == b).unwrap_or(3);
        bands.sort_by_key(|b| rank(&b.band));
        let total = bands.iter().map(|b| b.accounts).sum();
        Ok(BookPage { rows, total, bands: bands.into_iter().map(|b| (b.band, b.accounts)).collect() })
    }

    fn owners_query(&self) -> Query {
        self.query("SELECT DISTINCT csm_owner FROM {db}.account_metrics FINAL WHERE csm_owner != '' ORDER BY csm_owner LIMIT 1000")
    }

    /// Every CSM owning an account (the book's owner filter).
    pub async fn owners(&self) -> Result<Vec<String>, ConsoleError> {
        Ok(self.owners_query().fetch_all().await?)
    }

    fn scores_query(&self, accounts: &[String], from: NaiveDate) -> Query {
        // One placeholder per id: ClickHouse 18.16 takes a tuple after IN, not an array.
        let marks = vec!["?"; accounts.len()].join(", ");
        let mut q = self.query(&format!(
            "SELECT account_id, toUInt16(d) AS day, health_score AS score
             FROM (SELECT account_id, day AS d, health_score FROM {{db}}.account_health_daily FINAL
                   WHERE account_id IN ({marks}) AND day >= toDate(?))
             ORDER BY account_id, day"
        ));
        for a in accounts {
            q = q.bind(a.as_str());
        }
        q.bind(from.to_string())
    }

    /// The stored health scores of `accounts` from `from` on, by account and day.
    pub async fn scores_since(&self, accounts: &[String], from: NaiveDate) -> Result<Vec<ScorePoint>, ConsoleError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.scores_query(accounts, from).fetch_all().await?)
    }

    fn account_query(&self, account_id: &str) -> Query {
        self.query(&format!(
            "SELECT {} FROM {{db}}.account_metrics FINAL WHERE account_id = ?",
            columns_of::<MetricsRow>()
        ))
        .bind(account_id)
    }

    pub async fn account(&self, account_id: &str) -> Result<Option<MetricsRow>, ConsoleError> {
        Ok(self.account_query(account_id).fetch_optional().await?)
    }

    fn history_query(&self, account_id: &str, from: NaiveDate) -> Query {
        self.query(&format!(
            "SELECT {} FROM {{db}}.account_health_daily FINAL WHERE account_id = ? AND day >= toDate(?) ORDER BY day",
            columns_of::<HealthDayRow>()
        ))
        .bind(account_id)
        .bind(from.to_string())
    }

    pub async fn health_history(&self, account_id: &str, from: NaiveDate) -> Result<Vec<HealthDayRow>, ConsoleError> {
        Ok(self.history_query(account_id, from).fetch_all::<HealthDayRow>().await?)
    }

    fn traits_query(&self, account_id: &str) -> Query {
        self.query(
            "SELECT argMax(traits, updated_at) AS traits FROM {db}.accounts WHERE account_id = ? GROUP BY account_id",
        )
        .bind(account_id)
    }

    /// The account's latest traits (JSON object text; "{}" when none were sent).
    pub async fn traits(&self, account_id: &str) -> Result<String, ConsoleError> {
        let row: Option<TraitsRow> = self.traits_query(account_id).fetch_optional().await?;
        Ok(row.map(|r| r.traits).unwrap_or_else(|| "{}".into()))
    }

    /// The episodes `filter` keeps (`HAVING` on the grouped episodes), each with its workflow.
    fn with_workflow(filter: &str, having: &str) -> String {
        format!(
            "SELECT alert_id, account_id, rule_id, severity, fired_at, lifecycle_stage, health_score, csm_owner,
                    reason, metrics, open, acknowledged_by, assignee, snoozed_until, snooze_note, closed, close_reason
             FROM ({} {having}) AS e
             ANY LEFT JOIN ({WORKFLOW}) AS w USING alert_id",
            episodes(filter)
        )
    }

    fn alerts_query(&self, account: &str) -> Query {
        let episodes = Self::with_workflow("AND account_id = ?", "");
        self.query(&format!("{episodes} ORDER BY {SEVERITY_RANK} DESC, fired_at DESC, alert_id")).bind(account)
    }

    /// Every episode of `account` with its workflow, most severe and newest first.
    pub async fn alerts(&self, account: &str) -> Result<Vec<AlertView>, ConsoleError> {
        Ok(self.alerts_query(account).fetch_all().await?)
    }

    /// The inbox's head and its counts under `filter`: filtered, ordered and cut in SQL, so a
    /// page costs the same however many episodes are open. The filters run in an outer query,
    /// over the joined workflow columns.
    fn inbox_queries(&self, filter: &InboxFilter) -> (Query, Query) {
        let queue = Self::with_workflow("", "HAVING open = 1");
        let mut scope = "closed = 0".to_owned();
        if filter.user.is_some() {
            scope += " AND (lowerUTF8(csm_owner) = lowerUTF8(?) OR lowerUTF8(assignee) = lowerUTF8(?))";
        }
        let by_user = |q: Query| match &filter.user {
            Some(user) => q.bind(user.as_str()).bind(user.as_str()),
            None => q,
        };
        let snoozed = if filter.show_snoozed { "" } else { " AND snoozed_until <= ?" };
        let page = by_user(self.query(&format!(
            "SELECT * FROM ({queue}) WHERE {scope}{snoozed}
             ORDER BY {SEVERITY_RANK} DESC, fired_at DESC, alert_id LIMIT {INBOX_ROWS}"
        )));
        let page = if filter.show_snoozed { page } else { page.bind(filter.now) };
        let counts = self
            .query(&format!(
                "SELECT count() AS in_scope, countIf(snoozed_until > ?) AS snoozed FROM ({queue}) WHERE {scope}"
            ))
            .bind(filter.now);
        (page, by_user(counts))
    }

    /// The inbox under `filter`: its head, how many episodes it lists, and how many snoozed
    /// ones it leaves out.
    pub async fn inbox(&self, filter: &InboxFilter) -> Result<InboxPage, ConsoleError> {
        let (page, counts) = self.inbox_queries(filter);
        let (alerts, counts) = tokio::try_join!(page.fetch_all::<AlertView>(), counts.fetch_one::<InboxCounts>())?;
        let snoozed_hidden = if filter.show_snoozed { 0 } else { counts.snoozed };
        Ok(InboxPage { alerts, total: counts.in_scope - snoozed_hidden, snoozed_hidden })
    }

    fn firing_query(&self, alert_id: &str) -> Query {
        self.query(&format!(
            "SELECT alert_id, account_id, rule_id, severity, fired_at, lifecycle_stage, health_score, metrics,
                    csm_owner, reason, open
             FROM ({}) AS e",
            episodes("AND alert_id = ?")
        ))
        .bind(alert_id)
    }

    /// The firing record of `alert_id` and whether the rules still hold it open.
    pub async fn firing(&self, alert_id: &str) -> Result<Option<FiringRow>, ConsoleError> {
        Ok(self.firing_query(alert_id).fetch_optional().await?)
    }

    fn closed_query(&self, alert_id: &str) -> Query {
        self.query("SELECT toUInt8(closed) FROM {db}.alert_workflow WHERE alert_id = ?").bind(alert_id)
    }

    /// Whether `alert_id` was closed.
    pub async fn closed(&self, alert_id: &str) -> Result<bool, ConsoleError> {
        Ok(self.closed_query(alert_id).fetch_optional::<u8>().await? == Some(1))
    }

    fn timeline_query(&self, account_id: &str) -> Query {
        self.query(
            "SELECT alert_id, rule_id, what, by, at, detail FROM
             (
                 SELECT alert_id, rule_id, status AS what, 'uptake' AS by,
                        toUInt32(if(status = 'resolved', ifNull(resolved_at, recorded_at), fired_at)) AS at,
                        reason AS detail
                 FROM {db}.alerts WHERE account_id = ? AND status IN ('firing', 'resolved')
                 UNION ALL
                 SELECT alert_id, rule_id, action AS what, actor AS by, toUInt32(at) AS at,
                        concat(note, if(assignee = '', '', concat(' → ', assignee)),
                               if(close_reason = '', '', concat(' (', close_reason, ')')),
                               if(action = 'snoozed', concat(' until ', toString(toDate(snoozed_until))), '')) AS detail
                 FROM {db}.alert_actions FINAL WHERE account_id = ?
             )
             ORDER BY at DESC, what",
        )
        .bind(account_id)
        .bind(account_id)
    }

    /// Every rule record and CSM action of the account's episodes, newest first.
    pub async fn timeline(&self, account_id: &str) -> Result<Vec<TimelineRow>, ConsoleError> {
        Ok(self.timeline_query(account_id).fetch_all().await?)
    }

    fn outcomes_query(&self, account_id: &str) -> Query {
        self.query(
            "SELECT outcome, toUInt32(occurred_at) AS occurred_at, source FROM {db}.account_outcomes
             WHERE account_id = ? ORDER BY occurred_at DESC",
        )
        .bind(account_id)
    }

    pub async fn outcomes(&self, account_id: &str) -> Result<Vec<OutcomeRow>, ConsoleError> {
        Ok(self.outcomes_query(account_id).fetch_all().await?)
    }

    fn stored_query(&self, alert_id: &str, action_id: &str) -> Query {
        self.query("SELECT count() FROM {db}.alert_actions WHERE alert_id = ? AND action_id = ?")
            .bind(alert_id)
            .bind(action_id)
    }

    /// Whether an action with this id was stored for `alert_id` (a re-posted form).
    pub async fn action_stored(&self, alert_id: &str, action_id: &str) -> Result<bool, ConsoleError> {
        Ok(self.stored_query(alert_id, action_id).fetch_one::<u64>().await? > 0)
    }

    pub async fn record_action(&self, row: &ActionRow) -> Result<(), ConsoleError> {
        Ok(self.warehouse.insert_rows(std::slice::from_ref(row)).await?)
    }

    fn backtest_query(&self) -> Query {
        self.query(&format!(
            "SELECT {} FROM {{db}}.backtest_scores ORDER BY scored_at DESC LIMIT 1",
            columns_of::<BacktestScoreRow>()
        ))
    }

    pub async fn latest_backtest(&self) -> Result<Option<BacktestScoreRow>, ConsoleError> {
        Ok(self.backtest_query().fetch_optional().await?)
    }

    /// Every read with sample arguments, as the SQL ClickHouse receives (`console sql`, which
    /// the chDB check runs on current ClickHouse). Named, in a fixed order.
    pub fn check_queries(&self, today: NaiveDate) -> Vec<(&'static str, String)> {
        let filter = BookFilter {
            owner: Some("dana@vendor.example".into()),
            band: Some("red".into()),
            stage: Some("growth".into()),
            search: Some("ac'me".into()),
            ..Default::default()
        };
        let (rows, bands) = self.book_queries(&filter);
        let (all_rows, _) = self.book_queries(&BookFilter { sort: super::Sort::Alerts, ..Default::default() });
        let ids = ["acme".to_string(), "beta".to_string()];
        let from = today - chrono::Duration::days(89);
        let start_of_today = today.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp();
        let (inbox, inbox_counts) = self.inbox_queries(&InboxFilter {
            user: Some("Dana@vendor.example".into()),
            show_snoozed: true,
            now: start_of_today,
        });
        [
            ("book_filtered", rows),
            ("book_bands", bands),
            ("book_all_by_alerts", all_rows),
            ("owners", self.owners_query()),
            ("scores", self.scores_query(&ids, from)),
            ("account", self.account_query("acme")),
            ("history", self.history_query("acme", from)),
            ("traits", self.traits_query("acme")),
            ("inbox", inbox),
            ("inbox_counts", inbox_counts),
            ("account_alerts", self.alerts_query("acme")),
            ("firing", self.firing_query("al-acme")),
            ("closed", self.closed_query("al-acme")),
            ("timeline", self.timeline_query("acme")),
            ("outcomes", self.outcomes_query("acme")),
            ("action_stored", self.stored_query("al-acme", "x")),
            ("latest_backtest", self.backtest_query()),
        ]
        .into_iter()
        .map(|(name, q)| (name, q.sql_display().to_string()))
        .collect()
    }
}
