//! Per-account rolling metrics: the queries over the daily rollup, traits, surveys and tickets,
//! and how their results become one `account_metrics` row with lifecycle stage and health score.
//!
//! Distinct counts over a window merge the daily uniqExact states (never sum daily counts);
//! sums over a window add daily sums. Only accounts of the partitions this instance owns are read.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::health::{self, HealthConfig, Inputs, LifecycleConfig, Stage};
use crate::rules::change_pct;
use crate::store::{to_datetime, Store};
use crate::AggregatorError;

/// The window aggregates of one account.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct WindowRow {
    pub account_id: String,
    pub active_users_1d: u64,
    pub active_users_7d: u64,
    pub active_users_30d: u64,
    pub active_users_prev_7d: u64,
    pub active_users_prev_30d: u64,
    pub logins_7d: u64,
    pub logins_30d: u64,
    pub login_users_7d: u64,
    pub login_users_30d: u64,
    pub events_7d: u64,
    pub events_prev_7d: u64,
    pub events_30d: u64,
    pub features_used_7d: u64,
    pub features_used_30d: u64,
    pub records_30d: u64,
    pub records_prev_30d: u64,
    pub bytes_30d: u64,
    pub bytes_prev_30d: u64,
    /// Sum over the 30 days of each day's distinct active users (for average DAU).
    pub dau_sum_30d: u64,
    /// 0 when never.
    pub last_seen: u32,
    pub last_login: u32,
    /// First day with any row (days since 1970-01-01).
    pub first_day: u16,
}

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

/// Everything the metrics of one account are computed from.
#[derive(Debug, Clone)]
pub struct AccountInputs {
    pub window: WindowRow,
    pub traits: Map<String, Value>,
    pub latest_nps: Option<u8>,
    pub avg_csat: Option<f64>,
    pub open_tickets: u64,
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
                    toUInt16(min(day)) AS first_day
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
                    window,
                }
            })
            .collect();
        Ok((inputs, features_seen))
    }
}

/// One row of `account_metrics`.
#[derive(Debug, Clone, Default, Row, Serialize, Deserialize, PartialEq)]
pub struct MetricsRow {
    pub account_id: String,
    /// Days since 1970-01-01 (ClickHouse `Date`).
    pub as_of: u16,
    pub computed_at: u32,
    pub lifecycle_stage: String,
    pub days_since_start: Option<i32>,
    pub days_to_renewal: Option<i32>,
    pub plan: String,
    pub csm_owner: String,
    pub seats: Option<u32>,
    pub active_users_1d: u64,
    pub active_users_7d: u64,
    pub active_users_30d: u64,
    pub active_users_prev_7d: u64,
    pub active_users_prev_30d: u64,
    pub active_users_change_7d: Option<f64>,
    pub active_users_change_30d: Option<f64>,
    pub logins_7d: u64,
    pub logins_30d: u64,
    pub login_users_7d: u64,
    pub login_users_30d: u64,
    pub events_7d: u64,
    pub events_prev_7d: u64,
    pub events_change_7d: Option<f64>,
    pub events_30d: u64,
    pub events_per_active_user_7d: Option<f64>,
    pub features_used_7d: u64,
    pub features_used_30d: u64,
    pub feature_breadth_30d: Option<f64>,
    pub records_30d: u64,
    pub records_prev_30d: u64,
    pub records_change_30d: Option<f64>,
    pub bytes_30d: u64,
    pub bytes_prev_30d: u64,
    pub bytes_change_30d: Option<f64>,
    pub stickiness_30d: Option<f64>,
    pub seat_utilisation: Option<f64>,
    pub last_seen: Option<u32>,
    pub last_login: Option<u32>,
    pub days_since_last_activity: Option<u32>,
    pub days_since_last_login: Option<u32>,
    pub latest_nps: Option<u8>,
    pub avg_csat_90d: Option<f64>,
    pub open_tickets: u64,
    pub health_score: Option<f64>,
    pub health_band: String,
    pub health_deployment: Option<f64>,
    pub health_adoption: Option<f64>,
    pub health_trend: Option<f64>,
    pub health_value: Option<f64>,
    pub health_experience: Option<f64>,
    pub health_weakest: String,
}

/// What turns inputs into metrics beyond the inputs themselves.
pub struct Model<'a> {
    pub lifecycle: &'a LifecycleConfig,
    pub health: &'a HealthConfig,
    /// Features in the product's catalogue (0: unknown, breadth left out).
    pub catalogue: u64,
}

fn epoch_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Days since the epoch, as ClickHouse `Date` stores them.
pub fn date_number(d: NaiveDate) -> u16 {
    (d - epoch_day()).num_days().clamp(0, u16::MAX as i64) as u16
}

/// The first of `keys` present in `traits`, as text (numbers too).
fn trait_str(traits: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match traits.get(*k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A date trait: `YYYY-MM-DD` or an RFC 3339 date-time.
fn trait_date(traits: &Map<String, Value>, keys: &[&str]) -> Option<NaiveDate> {
    let s = trait_str(traits, keys)?;
    s.parse::<NaiveDate>().ok().or_else(|| DateTime::parse_from_rfc3339(&s).ok().map(|t| t.date_naive()))
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// The metrics row of one account at `now`: derived ratios and changes, the time-based metrics
/// (which change even when no event arrives), lifecycle stage and health.
pub fn metrics_row(i: &AccountInputs, now: DateTime<Utc>, model: &Model<'_>) -> MetricsRow {
    let w = &i.window;
    let today = now.date_naive();
    let since = |t: u32| (t > 0).then(|| ((now.timestamp() - t as i64).max(0) / 86_400) as u32);
    let start = trait_date(&i.traits, &["contract_start", "contractStart", "start_date"]);
    let renewal = trait_date(&i.traits, &["renewal_date", "renewalDate", "contract_end"]);
    let first_seen = epoch_day() + chrono::Days::new(w.first_day as u64);
    let stage = health::stage(model.lifecycle, today, start.or(Some(first_seen)), renewal);
    let seats = trait_str(&i.traits, &["seats", "licensed_seats", "licenses"]).and_then(|s| s.parse::<u32>().ok());
    let seat_utilisation = seats.and_then(|s| ratio(w.active_users_30d, s as u64));
    let feature_breadth = ratio(w.features_used_30d, model.catalogue);
    let records_change = change_pct(w.records_prev_30d, w.records_30d);
    let active_change = change_pct(w.active_users_prev_7d, w.active_users_7d);
    let inputs = Inputs {
        seat_utilisation,
        feature_breadth,
        // Two silent weeks after use earlier in the month is use that stopped, not "no trend":
        // without this a dormant account kept a green score (seen in the loadgen demo).
        active_users_change_pct: active_change.or(
            (w.active_users_7d == 0 && w.active_users_prev_7d == 0 && w.active_users_30d > 0).then_some(-100.0),
        ),
        records_30d: (w.records_30d > 0 || w.records_prev_30d > 0).then_some(w.records_30d),
        records_change_pct: records_change,
        latest_nps: i.latest_nps,
        avg_csat: i.avg_csat,
        open_tickets: i.open_tickets,
    };
    let h = health::score(model.health, stage, &inputs);
    MetricsRow {
        account_id: w.account_id.clone(),
        as_of: date_number(today),
        computed_at: to_datetime(now),
        lifecycle_stage: stage.as_str().to_owned(),
        days_since_start: start.map(|s| (today - s).num_days() as i32),
        days_to_renewal: renewal.map(|r| (r - today).num_days() as i32),
        plan: trait_str(&i.traits, &["plan"]).unwrap_or_default(),
        csm_owner: trait_str(&i.traits, &["csm", "csm_owner", "csm_email"]).unwrap_or_default(),
        seats,
        active_users_1d: w.active_users_1d,
        active_users_7d: w.active_users_7d,
        active_users_30d: w.active_users_30d,
        active_users_prev_7d: w.active_users_prev_7d,
        active_users_prev_30d: w.active_users_prev_30d,
        active_users_change_7d: active_change,
        active_users_change_30d: change_pct(w.active_users_prev_30d, w.active_users_30d),
        logins_7d: w.logins_7d,
        logins_30d: w.logins_30d,
        login_users_7d: w.login_users_7d,
        login_users_30d: w.login_users_30d,
        events_7d: w.events_7d,
        events_prev_7d: w.events_prev_7d,
        events_change_7d: change_pct(w.events_prev_7d, w.events_7d),
        events_30d: w.events_30d,
        events_per_active_user_7d: ratio(w.events_7d, w.active_users_7d),
        features_used_7d: w.features_used_7d,
        features_used_30d: w.features_used_30d,
        feature_breadth_30d: feature_breadth,
        records_30d: w.records_30d,
        records_prev_30d: w.records_prev_30d,
        records_change_30d: records_change,
        bytes_30d: w.bytes_30d,
        bytes_prev_30d: w.bytes_prev_30d,
        bytes_change_30d: change_pct(w.bytes_prev_30d, w.bytes_30d),
        // Average DAU over 30 days ÷ MAU: how many days a month the typical user comes back.
        stickiness_30d: (w.active_users_30d > 0).then(|| w.dau_sum_30d as f64 / 30.0 / w.active_users_30d as f64),
        seat_utilisation,
        last_seen: (w.last_seen > 0).then_some(w.last_seen),
        last_login: (w.last_login > 0).then_some(w.last_login),
        days_since_last_activity: since(w.last_seen),
        days_since_last_login: since(w.last_login),
        latest_nps: i.latest_nps,
        avg_csat_90d: i.avg_csat,
        open_tickets: i.open_tickets,
        health_score: h.score,
        health_band: h.band.to_owned(),
        health_deployment: h.components[0],
        health_adoption: h.components[1],
        health_trend: h.components[2],
        health_value: h.components[3],
        health_experience: h.components[4],
        health_weakest: h.weakest.unwrap_or_default().to_owned(),
    }
}

impl MetricsRow {
    pub fn stage(&self) -> Option<Stage> {
        Stage::parse(&self.lifecycle_stage)
    }
}
