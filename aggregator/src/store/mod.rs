//! The aggregator's own SQL over the tables of the `warehouse` crate: the evaluation's input
//! queries in [`inputs`] (their windows in [`windows`]), the episode state read back in [`alerts`],
//! the daily health history in [`health`], the CSM workflow as the evaluator and notifier read it
//! in [`workflow`], and the consume path's reads below (docs/architecture.md#layers).
//!
//! The rows, the table names, the migrations and the client are the warehouse's; this module adds
//! only queries, written `{db}.table` with bound values ([`Warehouse::query`]). The evaluation's
//! input queries are generated text (`windows`, `inputs`): they take the database identifier as
//! an argument instead, with the same rendering.

use std::ops::Deref;

use chrono::{DateTime, Utc};
use warehouse::rows::Table;
use warehouse::Warehouse;

use crate::model::{AccountInputs, MetricsRow};
use crate::AggregatorError;

mod alerts;
mod book;
mod health;
mod inputs;
mod windows;
mod workflow;

pub use inputs::{Changed, History, LifetimeRow};

/// The account metrics row is generated from the metric catalogue (`model::catalogue`), so its
/// table name is given here rather than beside the warehouse's own rows.
impl Table for MetricsRow {
    const TABLE: &'static str = "account_metrics";
}

/// The warehouse client with the aggregator's queries on it.
#[derive(Clone)]
pub struct Store(Warehouse);

impl Store {
    pub fn new(warehouse: Warehouse) -> Self {
        Self(warehouse)
    }
}

impl Deref for Store {
    type Target = Warehouse;

    fn deref(&self) -> &Warehouse {
        &self.0
    }
}

impl Store {
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
        let sql = "SELECT toUInt32(received_at), message_id FROM {db}.events
             WHERE kafka_topic = ? AND kafka_partition = ?
               AND (received_at >= toDateTime(?, 'UTC') OR kafka_offset >= ?)";
        Ok(self.query(sql).bind(topic).bind(partition).bind(since).bind(from_offset).fetch_all().await?)
    }

    /// The webhooks the notifier already delivered (or parked) the alert record `delivery_id` for.
    pub async fn served_webhooks(&self, delivery_id: &str) -> Result<Vec<String>, AggregatorError> {
        let sql = "SELECT DISTINCT webhook FROM {db}.notifications WHERE delivery_id = ?";
        Ok(self.query(sql).bind(delivery_id).fetch_all().await?)
    }
}

/// The inputs a full pass at `now` reads for every account of `partitions` of `topic`, and the
/// number of features seen in 64 days: for tests that hold the windows to the stored events (and to hostile ones).
pub async fn account_inputs(
    warehouse: &Warehouse,
    now: DateTime<Utc>,
    topic: &str,
    partitions: &[i32],
) -> Result<(Vec<AccountInputs>, u64), AggregatorError> {
    Store::new(warehouse.clone()).account_inputs(now, topic, partitions, None).await
}

/// Every statement the aggregator runs whose text does not depend on data: the schema's DDL, then
/// the evaluation's input queries of every kind of pass at `at` (live, as of a past day, and an
/// incremental pass), the lookups beside them, and whether the book is importing (at a clock in
/// 2027, stored within about 3 years, last seen before 30 June 2026: whenever the check runs,
/// the accounts of its book last seen before that day) — what `aggregator sql` prints for the
/// check on current ClickHouse.
pub fn evaluation_sql(warehouse: &Warehouse, events_topic: &str, at: DateTime<Utc>) -> Vec<String> {
    let store = Store::new(warehouse.clone());
    let partitions = [0, 1, 2, 3];
    let changed = Changed { since: 0, accounts: vec!["acme".into()] };
    let queries = [History::Live, History::AsOf]
        .into_iter()
        .flat_map(|h| store.input_queries(at, events_topic, &partitions, h, None, None).sql())
        .chain(
            store
                .input_queries(at, events_topic, &partitions, History::Live, Some(&changed), Some(("acme", "zeta")))
                .sql(),
        )
        .chain([store.user_traits_query(&["u1".into(), "o'brien".into()]).sql_display().to_string()])
        .chain([store.book_days_query(at).sql_display().to_string()])
        .chain([store.book_older_query(at).sql_display().to_string()])
        .chain([store.book_importing_query(1_800_000_000, 100_000_000).sql_display().to_string()]);
    store.ddl().into_iter().map(|(_, s)| s).chain(queries).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use warehouse::migrations::MIGRATIONS;
    use warehouse::ClickHouseConfig;

    use super::*;

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
        let store = Store::new(Warehouse::new(&ClickHouseConfig::default()));
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
