//! The queries one evaluation pass reads its inputs with: the rolling windows over the daily
//! rollup, traits, surveys and tickets, joined per account into [`AccountInputs`].
//!
//! Distinct counts over a window merge the daily uniqExact states (never sum daily counts);
//! sums over a window add daily sums. Only accounts of the partitions this instance owns are read.
//! The window query selects [`WindowRow::COLUMNS`] in that order (a test holds it to it): the
//! rows are decoded by position.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::Deserialize;

use super::{to_datetime, Store};
use crate::model::{AccountInputs, WindowRow};
use crate::AggregatorError;

#[derive(Debug, Clone, Row, Deserialize)]
struct TraitsRow {
    account_id: String,
    traits: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct SurveyRow {
    account_id: String,
    /// -1 when no NPS answer.
    latest_nps: i16,
    /// NaN when no CSAT answer in 90 days.
    avg_csat: f64,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct TicketRow {
    account_id: String,
    open_tickets: u64,
}

/// `account_id IN (accounts of these partitions)`; the topic is bound as the one `?`.
fn owned(db: &str, partitions: &[i32]) -> String {
    // Integers, so safe to inline; ClickHouse 18.16 rejects `IN [array]`, which is how a bound
    // slice would be rendered.
    let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    format!(
        "account_id IN (SELECT account_id FROM {db}.account_partitions FINAL
                        WHERE kafka_topic = ? AND kafka_partition IN ({list}))"
    )
}

/// One array per baseline measure (`WindowRow::weekly_*`, `recent_user_days`): element k is
/// the period k weeks before the current one, which ends yesterday (`model/baseline.rs`).
fn weekly_columns() -> String {
    let weeks = 0..=crate::model::baseline::BASELINE_WEEKS;
    let array = |span: usize, expr: &dyn Fn(&str) -> String| {
        let items: Vec<String> =
            weeks.clone().map(|k| expr(&format!("day >= d - {} AND day < d - {}", 7 * k + span, 7 * k))).collect();
        format!("[{}]", items.join(", "))
    };
    [
        ("weekly_user_days", array(7, &|c| format!("sumIf(dau, {c})"))),
        ("weekly_active_users", array(7, &|c| format!("uniqExactMergeIf(u, {c})"))),
        ("weekly_logins", array(7, &|c| format!("sumIf(lg, {c})"))),
        ("weekly_features", array(7, &|c| format!("toUInt64(length(groupUniqArrayMergeIf(f, {c})))"))),
        ("weekly_records", array(7, &|c| format!("sumIf(rec, {c})"))),
        ("recent_user_days", array(3, &|c| format!("sumIf(dau, {c})"))),
    ]
    .map(|(name, sql)| format!("{sql} AS {name}"))
    .join(",\n                    ")
}

/// The queries one evaluation pass reads its inputs with, with every argument bound.
pub struct InputQueries {
    pub windows: clickhouse::query::Query,
    pub traits: clickhouse::query::Query,
    pub surveys: clickhouse::query::Query,
    pub tickets: clickhouse::query::Query,
    pub catalogue: clickhouse::query::Query,
}

impl InputQueries {
    /// The SQL texts, in order (for `aggregator sql`, which the modern-ClickHouse check runs).
    pub fn sql(&self) -> Vec<String> {
        [&self.windows, &self.traits, &self.surveys, &self.tickets, &self.catalogue]
            .iter()
            .map(|q| q.sql_display().to_string())
            .collect()
    }
}

impl Store {
    /// The queries for windows ending on `now`'s day, over the accounts of `partitions` of `topic`.
    pub fn input_queries(&self, now: DateTime<Utc>, topic: &str, partitions: &[i32]) -> InputQueries {
        let db = self.database();
        let own = owned(db, partitions);
        let day = now.date_naive().format("%Y-%m-%d").to_string();
        let weekly = weekly_columns();
        let windows = self
            .client()
            .query(&format!(
                "SELECT account_id,
                    uniqExactMergeIf(u, day = d) AS active_users_1d,
                    uniqExactMergeIf(u, day > d - 7) AS active_users_7d,
                    uniqExactMergeIf(u, day > d - 30) AS active_users_30d,
                    uniqExactMergeIf(u, day <= d - 7 AND day > d - 14) AS active_users_prev_7d,
                    uniqExactMergeIf(u, day <= d - 30 AND day > d - 60) AS active_users_prev_30d,
                    sumIf(lg, day > d - 7) AS logins_7d,
                    sumIf(lg, day > d - 30) AS logins_30d,
                    uniqExactMergeIf(lu, day > d - 7) AS login_users_7d,
                    uniqExactMergeIf(lu, day > d - 30) AS login_users_30d,
                    sumIf(ev, day > d - 7) AS events_7d,
                    sumIf(ev, day <= d - 7 AND day > d - 14) AS events_prev_7d,
                    sumIf(ev, day > d - 30) AS events_30d,
                    toUInt64(length(groupUniqArrayMergeIf(f, day > d - 7))) AS features_used_7d,
                    toUInt64(length(groupUniqArrayMergeIf(f, day > d - 30))) AS features_used_30d,
                    sumIf(rec, day > d - 30) AS records_30d,
                    sumIf(rec, day <= d - 30 AND day > d - 60) AS records_prev_30d,
                    sumIf(byt, day > d - 30) AS bytes_30d,
                    sumIf(byt, day <= d - 30 AND day > d - 60) AS bytes_prev_30d,
                    sumIf(dau, day > d - 30) AS dau_sum_30d,
                    toUInt32(max(ls)) AS last_seen,
                    toUInt32(max(ll)) AS last_login,
                    toUInt16(min(day)) AS first_day,
                    {weekly}
                 FROM (
                    SELECT account_id, day, toDate(?, 'UTC') AS d,
                        uniqExactMerge(active_users) AS dau,
                        uniqExactMergeState(active_users) AS u,
                        uniqExactMergeState(login_users) AS lu,
                        sumMerge(logins) AS lg,
                        sumMerge(events) AS ev,
                        groupUniqArrayMergeState(features) AS f,
                        sumMerge(records) AS rec,
                        sumMerge(bytes) AS byt,
                        maxMerge(last_seen) AS ls,
                        maxMerge(last_login) AS ll
                    FROM {db}.account_daily
                    WHERE day <= toDate(?, 'UTC') AND {own}
                    GROUP BY account_id, day)
                 GROUP BY account_id
                 ORDER BY account_id"
            ))
            .bind(&day)
            .bind(&day)
            .bind(topic);
        let traits = self
            .client()
            .query(&format!(
                "SELECT account_id, argMax(traits, updated_at) AS traits FROM {db}.accounts WHERE {own} GROUP BY account_id"
            ))
            .bind(topic);
        let surveys = self
            .client()
            .query(&format!(
                "SELECT account_id,
                    toInt16(ifNull(argMaxIf(nps, timestamp, isNotNull(nps)), -1)) AS latest_nps,
                    toFloat64(ifNull(avgIf(csat, timestamp > toDateTime(?, 'UTC') - 90 * 86400 AND isNotNull(csat)), nan)) AS avg_csat
                 FROM {db}.events
                 WHERE kind = 'survey' AND timestamp <= toDateTime(?, 'UTC') AND {own}
                 GROUP BY account_id"
            ))
            .bind(to_datetime(now))
            .bind(to_datetime(now))
            .bind(topic);
        let tickets = self
            .client()
            .query(&format!(
                "SELECT account_id, toUInt64(countIf(status = 'opened')) AS open_tickets
                 FROM (SELECT account_id, ticket_id, argMax(ticket_status, timestamp) AS status
                       FROM {db}.events
                       WHERE kind = 'support_ticket' AND timestamp <= toDateTime(?, 'UTC') AND {own}
                       GROUP BY account_id, ticket_id)
                 GROUP BY account_id"
            ))
            .bind(to_datetime(now))
            .bind(topic);
        // Distinct features any account used in 90 days: the catalogue when none is configured.
        let catalogue = self
            .client()
            .query(&format!(
                "SELECT toUInt64(length(groupUniqArrayMerge(features))) FROM {db}.account_daily
                 WHERE day > toDate(?, 'UTC') - 90 AND day <= toDate(?, 'UTC')"
            ))
            .bind(&day)
            .bind(&day);
        InputQueries { windows, traits, surveys, tickets, catalogue }
    }

    /// The inputs of every account of `partitions` of `topic`, for windows ending on `now`'s
    /// day, and the number of features seen in 90 days.
    pub async fn account_inputs(
        &self,
        now: DateTime<Utc>,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(Vec<AccountInputs>, u64), AggregatorError> {
        let q = self.input_queries(now, topic, partitions);
        let windows: Vec<WindowRow> = q.windows.fetch_all().await?;
        let traits: Vec<TraitsRow> = q.traits.fetch_all().await?;
        let surveys: Vec<SurveyRow> = q.surveys.fetch_all().await?;
        let tickets: Vec<TicketRow> = q.tickets.fetch_all().await?;
        let features_seen: u64 = q.catalogue.fetch_one().await?;

        // Indexed by account: a linear search per account made a 100k-account pass quadratic
        // (24 s, found by `bench`).
        let traits: HashMap<&str, &TraitsRow> = traits.iter().map(|t| (t.account_id.as_str(), t)).collect();
        let surveys: HashMap<&str, &SurveyRow> = surveys.iter().map(|s| (s.account_id.as_str(), s)).collect();
        let tickets: HashMap<&str, u64> = tickets.iter().map(|t| (t.account_id.as_str(), t.open_tickets)).collect();
        let inputs = windows
            .into_iter()
            .map(|window| {
                let id = window.account_id.as_str();
                let survey = surveys.get(id);
                AccountInputs {
                    traits: traits.get(id).and_then(|t| serde_json::from_str(&t.traits).ok()).unwrap_or_default(),
                    latest_nps: survey.and_then(|s| u8::try_from(s.latest_nps).ok()),
                    avg_csat: survey.map(|s| s.avg_csat).filter(|c| c.is_finite()),
                    open_tickets: tickets.get(id).copied().unwrap_or(0),
                    health_14d_ago: None,
                    window,
                }
            })
            .collect();
        Ok((inputs, features_seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClickHouseConfig;

    #[test]
    fn the_window_query_selects_the_catalogue_in_order() {
        let store = Store::new(&ClickHouseConfig::default());
        let sql = store.input_queries(chrono::Utc::now(), "usage-events", &[0]).sql().remove(0);
        let outer = &sql[..sql.find("FROM (").expect("the window query has a subquery")];
        let mut names: Vec<&str> = outer
            .split(" AS ")
            .skip(1)
            .map(|s| s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or_default())
            .collect();
        names.insert(0, "account_id");
        assert_eq!(names, WindowRow::COLUMNS);
    }
}
