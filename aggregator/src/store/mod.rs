//! ClickHouse access — all of uptake's SQL: migrations and event inserts here, the evaluation's
//! input queries in [`inputs`], alert history and pending conditions in [`alerts`], recorded
//! outcomes in [`outcomes`], the daily health history in [`health`], the CSM workflow in
//! [`workflow`] (docs/architecture.md#layers).
//!
//! Validation is off (`with_validation(false)`): the crate's schema probes use formats ClickHouse
//! 18.16 lacks. The row structs below therefore must match the DDL in `schemas/sql` by hand; the
//! end-to-end tests read every written column back from the real server to hold them to it.

use clickhouse::{Client, Row};
use schemas::event::Event;
use schemas::migrations::{ledger_ddl, on_cluster, MIGRATIONS};
use serde::{Deserialize, Serialize};

use crate::config::ClickHouseConfig;
use crate::model::MetricsRow;
use crate::AggregatorError;

mod alerts;
mod health;
mod inputs;
mod outcomes;
mod scores;
mod windows;
mod workflow;

pub use alerts::{AlertRow, PendingRow};
pub use health::HealthDayRow;
pub use inputs::{Changed, History, InputQueries, LifetimeRow};
pub use outcomes::{OutcomeSource, RecordedOutcome};
pub use scores::BacktestScoreRow;
pub use workflow::ActionRow;

/// A row type and the table it is stored in: the one place each table's name is written for
/// inserts ([`Store::insert_rows`] takes it from the row type), so no call site spells it.
pub trait Table: clickhouse::RowOwned + clickhouse::RowWrite {
    /// The table, in the configured database.
    const TABLE: &'static str;
}

macro_rules! tables {
    ($($row:ty => $name:literal),* $(,)?) => {
        $(impl Table for $row {
            const TABLE: &'static str = $name;
        })*
    };
}

tables! {
    EventRow => "events",
    NotificationRow => "notifications",
    MetricsRow => "account_metrics",
    AlertRow => "alerts",
    PendingRow => "alert_pending",
    ActionRow => "alert_actions",
    HealthDayRow => "account_health_daily",
    BacktestScoreRow => "backtest_scores",
}

/// One row of `events`.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct EventRow {
    pub message_id: String,
    pub account_id: String,
    pub user_id: String,
    pub kind: String,
    pub event: String,
    pub feature: String,
    pub module: String,
    pub uses: u64,
    pub records: u64,
    pub bytes: u64,
    pub object: String,
    pub nps: Option<u8>,
    pub csat: Option<u8>,
    pub ticket_id: String,
    pub ticket_status: String,
    pub priority: String,
    /// `churned`, `renewed` or `contracted` on `outcome` events; '' otherwise (migration 008).
    pub outcome: String,
    pub timestamp: u32,
    pub received_at: u32,
    pub source: String,
    pub traits: String,
    pub properties: String,
    pub kafka_topic: String,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// DateTime columns hold seconds since the epoch in a UInt32.
pub use crate::model::to_datetime;

fn json_or_empty(map: &serde_json::Map<String, serde_json::Value>) -> String {
    if map.is_empty() {
        String::new()
    } else {
        serde_json::Value::Object(map.clone()).to_string()
    }
}

impl EventRow {
    pub fn new(e: Event, topic: &str, partition: i32, offset: i64) -> Self {
        Self {
            kind: e.kind.as_str().to_owned(),
            uses: e.count.unwrap_or(0),
            records: e.records.unwrap_or(0),
            bytes: e.bytes.unwrap_or(0),
            ticket_status: e.ticket_status.map(|s| format!("{s:?}").to_lowercase()).unwrap_or_default(),
            timestamp: to_datetime(e.timestamp),
            received_at: to_datetime(e.received_at),
            traits: json_or_empty(&e.traits),
            properties: json_or_empty(&e.properties),
            feature: e.feature.unwrap_or_default(),
            module: e.module.unwrap_or_default(),
            object: e.object.unwrap_or_default(),
            ticket_id: e.ticket_id.unwrap_or_default(),
            priority: e.priority.unwrap_or_default(),
            outcome: e.outcome.map(|o| o.as_str().to_owned()).unwrap_or_default(),
            nps: e.nps,
            csat: e.csat,
            message_id: e.message_id,
            account_id: e.account_id,
            user_id: e.user_id,
            event: e.event,
            source: e.source,
            kafka_topic: topic.to_owned(),
            kafka_partition: partition,
            kafka_offset: offset,
        }
    }
}

/// One row of `notifications`: an alert record delivered to (or parked for) one webhook.
#[derive(Debug, Clone, Row, Serialize, Deserialize, PartialEq)]
pub struct NotificationRow {
    pub delivery_id: String,
    pub alert_id: String,
    pub status: String,
    pub webhook: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    /// `delivered`, `dead_lettered`, or `snoozed` (held back: its episode was snoozed).
    pub outcome: String,
    pub attempts: u32,
    pub error: String,
    pub recorded_at: u32,
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    db: String,
    /// Replicated cluster to run DDL on; `None` for a single server.
    cluster: Option<String>,
}

impl Store {
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        let client = Client::default()
            .with_url(&cfg.url)
            .with_user(&cfg.user)
            .with_password(&cfg.password)
            .with_validation(false);
        let cluster = Some(cfg.cluster.clone()).filter(|c| !c.is_empty());
        Self { client, db: cfg.database.clone(), cluster }
    }

    pub fn database(&self) -> &str {
        &self.db
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every DDL statement of the schema, in order: database, ledger, then each migration's
    /// statements with its version — rewritten `ON CLUSTER` when a cluster is configured.
    pub fn ddl(&self) -> Vec<(Option<u32>, String)> {
        let db = &self.db;
        let mut out = vec![(None, format!("CREATE DATABASE IF NOT EXISTS {db}")), (None, ledger_ddl(db))];
        for m in MIGRATIONS {
            out.extend(m.statements(db).into_iter().map(|s| (Some(m.version), s)));
        }
        match &self.cluster {
            Some(c) => out.into_iter().map(|(v, s)| (v, on_cluster(&s, c))).collect(),
            None => out,
        }
    }

    /// Creates the database and applies every migration not yet recorded in
    /// `schema_migrations`. Idempotent; returns the versions it applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, AggregatorError> {
        let db = &self.db;
        let ddl = self.ddl();
        for (_, statement) in ddl.iter().filter(|(v, _)| v.is_none()) {
            self.client.query(statement).execute().await?;
        }
        let done: Vec<u32> =
            self.client.query(&format!("SELECT version FROM {db}.schema_migrations")).fetch_all().await?;
        let mut applied = Vec::new();
        for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
            for (_, statement) in ddl.iter().filter(|(v, _)| *v == Some(m.version)) {
                if let Err(e) = self.client.query(statement).execute().await {
                    // Instances started together all apply a migration nobody recorded yet; an
                    // `ADD COLUMN` (18.16 has no IF NOT EXISTS) then fails for all but one. The
                    // column being there is the migration's whole effect, so that is success.
                    match added_column(statement) {
                        Some((table, column)) if self.has_column(table, column).await? => {}
                        _ => return Err(e.into()),
                    }
                }
            }
            self.client
                .query(&format!("INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES (?, ?, now())"))
                .bind(m.version)
                .bind(m.name)
                .execute()
                .await?;
            tracing::info!(version = m.version, name = m.name, "migration applied");
            applied.push(m.version);
        }
        Ok(applied)
    }

    /// Whether `table` (`db.table`) has `column`.
    async fn has_column(&self, table: &str, column: &str) -> Result<bool, AggregatorError> {
        let (db, table) = table.split_once('.').unwrap_or((&self.db, table));
        let n: u64 = self
            .client
            .query("SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?")
            .bind(db)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await?;
        Ok(n > 0)
    }

    /// Whether the server answers.
    pub async fn ping(&self) -> bool {
        self.client.query("SELECT 1").fetch_one::<u8>().await.is_ok()
    }

    /// Inserts rows into `table` as one INSERT: it is stored whole or, on error, not at all.
    /// The server's clock (seconds): what `account_lifetime.last_stored` is measured in.
    pub async fn clock(&self) -> Result<u32, AggregatorError> {
        Ok(self.client().query("SELECT toUInt32(now())").fetch_one().await?)
    }

    pub async fn insert_rows<T: Table>(&self, rows: &[T]) -> Result<(), AggregatorError> {
        self.insert_each(rows).await
    }

    /// [`Store::insert_rows`] for rows that are not contiguous in memory.
    pub async fn insert_each<'a, T: Table + 'a>(
        &self,
        rows: impl IntoIterator<Item = &'a T>,
    ) -> Result<(), AggregatorError> {
        let table = T::TABLE;
        // `db` is a validated plain identifier (config) and `table` a constant of ours, so
        // `db.table` needs no escaping.
        let mut insert = self.client.insert_unescaped::<T>(&format!("{}.{table}", self.db)).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }

    /// Inserts rows already encoded in RowBinary with `columns` (comma-separated; for `events`
    /// [`crate::consume::record::COLUMNS`]) as one INSERT: stored whole or, on error, not at all.
    pub async fn insert_row_binary<'a>(
        &self,
        table: &str,
        columns: &str,
        rows: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), AggregatorError> {
        let sql = format!("INSERT INTO {}.{table}({columns}) FORMAT RowBinary", self.db);
        let mut insert = self.client.insert_formatted_with(sql).buffered();
        for mut row in rows {
            while !row.is_empty() {
                let written = insert.write(row).await?;
                row = &row[written..];
            }
        }
        insert.end().await?;
        Ok(())
    }

    /// `(received_at, message_id)` of the events stored from one Kafka partition that were
    /// received since `since`, or sit at offset `from_offset` or later (what a replay from
    /// `from_offset` can meet again, even when it was received long ago).
    pub async fn stored_ids(
        &self,
        topic: &str,
        partition: i32,
        since: u32,
        from_offset: i64,
    ) -> Result<Vec<(u32, String)>, AggregatorError> {
        let sql = format!(
            "SELECT toUInt32(received_at), message_id FROM {db}.events
             WHERE kafka_topic = ? AND kafka_partition = ?
               AND (received_at >= toDateTime(?, 'UTC') OR kafka_offset >= ?)",
            db = self.db
        );
        Ok(self.client.query(&sql).bind(topic).bind(partition).bind(since).bind(from_offset).fetch_all().await?)
    }

    /// The partitions of `topic` that stored events came from.
    pub async fn partitions(&self, topic: &str) -> Result<Vec<i32>, AggregatorError> {
        let sql = format!(
            "SELECT DISTINCT kafka_partition FROM {}.account_partitions WHERE kafka_topic = ? ORDER BY kafka_partition",
            self.db
        );
        Ok(self.client.query(&sql).bind(topic).fetch_all().await?)
    }

    /// The webhooks the notifier already delivered (or parked) the alert record `delivery_id` for.
    pub async fn served_webhooks(&self, delivery_id: &str) -> Result<Vec<String>, AggregatorError> {
        let sql = format!("SELECT DISTINCT webhook FROM {}.notifications WHERE delivery_id = ?", self.db);
        Ok(self.client.query(&sql).bind(delivery_id).fetch_all().await?)
    }
}

/// The table and column an `ALTER TABLE t [ON CLUSTER c] ADD COLUMN col …` statement adds.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let table = statement.trim_start().strip_prefix("ALTER TABLE ")?.split_whitespace().next()?;
    let rest = &statement[statement.find("ADD COLUMN ")? + "ADD COLUMN ".len()..];
    let rest = rest.trim_start().strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
    Some((table, rest.split_whitespace().next()?))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn an_added_column_is_read_from_its_statement() {
        assert_eq!(
            added_column("ALTER TABLE uptake.events ADD COLUMN outcome String DEFAULT ''"),
            Some(("uptake.events", "outcome"))
        );
        assert_eq!(
            added_column("ALTER TABLE uptake.events ON CLUSTER c ADD COLUMN outcome String"),
            Some(("uptake.events", "outcome"))
        );
        assert_eq!(added_column("CREATE TABLE IF NOT EXISTS uptake.x (a String) ENGINE = Log"), None);
    }

    /// Every call of a date function in `sql`, with its arguments: `toDate(timestamp, 'UTC')`.
    fn date_calls(sql: &str) -> Vec<String> {
        let mut calls = Vec::new();
        for f in
            ["toDate(", "toDateTime(", "toYYYYMM(", "toYYYYMMDD(", "toStartOf", "toMonday(", "today(", "yesterday("]
        {
            for (at, _) in sql.match_indices(f) {
                let open = at + sql[at..].find('(').unwrap_or(0);
                let mut depth = 0;
                let end = sql[open..]
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += i32::from(c == '(') - i32::from(c == ')');
                        depth == 0
                    })
                    .map_or(sql.len(), |(i, _)| open + i + 1);
                calls.push(sql[at..end].to_owned());
            }
        }
        calls
    }

    #[test]
    fn every_day_boundary_is_utc() {
        let store = Store::new(&ClickHouseConfig::default());
        let mut sql = store.input_queries(chrono::Utc::now(), "usage-events", &[0, 1], History::Live, None, None).sql();
        sql.extend(store.input_queries(chrono::Utc::now(), "usage-events", &[0, 1], History::AsOf, None, None).sql());
        // The materialized views as the migrations leave them: the last definition of each.
        let mut views = BTreeMap::new();
        for m in MIGRATIONS {
            for s in m.statements("db") {
                if let Some(rest) = s.strip_prefix("CREATE MATERIALIZED VIEW IF NOT EXISTS ") {
                    views.insert(rest.split_whitespace().next().unwrap_or_default().to_owned(), s.clone());
                }
            }
        }
        assert!(views.contains_key("db.account_daily_mv"));
        sql.extend(views.into_values());
        let calls: Vec<String> = sql.iter().flat_map(|s| date_calls(s)).collect();
        assert!(calls.len() >= 8, "the queries and views have date expressions: {calls:?}");
        for call in calls {
            assert!(call.contains("'UTC'"), "a date expression in the server's timezone: {call}");
        }
    }
}
