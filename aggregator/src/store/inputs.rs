//! The queries one evaluation pass reads its inputs with, joined per account into
//! [`AccountInputs`]: the rolling windows (`store/windows.rs`: the last 64 days only), what an
//! account's whole history says (first day, last activity and login, last NPS), CSAT, open
//! tickets and traits. Only accounts of the partitions this instance owns are read.
//!
//! A live pass (windows ending today) reads the small per-account tables of migration 012,
//! kept up to date as events arrive; its cost does not grow with history. A pass as of an
//! earlier day (a backtest replaying the past) must not see what happened after that day, so it
//! reads first day, last activity, last NPS and ticket states from the history up to it instead.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::Row;
use serde::Deserialize;
use serde_json::{Map, Value};
use warehouse::columns::{literal, to_datetime};

use super::windows::{catalogue_query, members_query, sums_query};

use super::Store;
use crate::model::{AccountInputs, WindowRow};
use crate::AggregatorError;

/// What an account's history says, as of the pass's day: one per account a pass evaluates.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct LifetimeRow {
    pub account_id: String,
    /// Days since 1970-01-01.
    first_day: u16,
    /// 0 when never.
    last_seen: u32,
    last_login: u32,
    /// The last NPS answer + 1; 0 when never answered.
    latest_nps: u8,
    /// When events over an hour old were last stored for it (ClickHouse's clock): a backfill
    /// of its past, whatever live traffic arrives beside it; 0 when never, or as of an earlier day.
    last_backfilled: u32,
}

impl LifetimeRow {
    /// A row of an account whose events over an hour old were last stored at `last_backfilled`
    /// (0: never; for tests of what is done with it).
    #[cfg(test)]
    pub fn backfilled(account_id: &str, last_backfilled: u32) -> Self {
        Self {
            account_id: account_id.into(),
            first_day: 0,
            last_seen: 0,
            last_login: 0,
            latest_nps: 0,
            last_backfilled,
        }
    }

    /// Whether the account's history is still arriving at `clock` (ClickHouse's): events over
    /// an hour old stored within `settle_secs` — an import of its past, or the backlog of an
    /// outage — whether or not live traffic arrives beside them. Judged on half a history it
    /// would look idle and alert; it settles once no old event arrived for `settle_secs`.
    pub fn settling(&self, clock: u32, settle_secs: u32) -> bool {
        self.imported_within(clock, settle_secs)
    }

    /// Whether events over an hour old were stored for the account within `secs` of `clock`:
    /// past history, stored lately (an import's, when the import is still running elsewhere in
    /// the book). Told by the age of what arrived, not by the age of the account's newest event:
    /// an account whose SDK sends live traffic while its history is imported is importing too.
    pub fn imported_within(&self, clock: u32, secs: u32) -> bool {
        self.last_backfilled > 0 && self.last_backfilled.saturating_add(secs) > clock
    }
}

/// One account's window row from its three sources: the two window queries' rows (each
/// computes its own columns, the others are zero) and the lifetime row.
fn window_row(life: LifetimeRow, m: Option<WindowRow>, s: Option<WindowRow>) -> WindowRow {
    let mut w = m.unwrap_or_default();
    if let Some(s) = s {
        w.absorb(s);
    }
    (w.account_id, w.last_seen, w.last_login, w.first_day) =
        (life.account_id, life.last_seen, life.last_login, life.first_day);
    // An account with no row in a window query (no activity in 64 days) has every week at 0.
    let weeks = crate::model::baseline::BASELINE_WEEKS + 1;
    for v in [
        &mut w.weekly_user_days,
        &mut w.weekly_active_users,
        &mut w.weekly_logins,
        &mut w.weekly_features,
        &mut w.weekly_records,
        &mut w.recent_user_days,
    ] {
        if v.is_empty() {
            *v = vec![0; weeks];
        }
    }
    w
}

#[derive(Debug, Clone, Row, Deserialize)]
struct TraitsRow {
    account_id: String,
    traits: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct CsatRow {
    account_id: String,
    avg_csat: f64,
}

#[derive(Debug, Clone, Row, Deserialize)]
struct TicketRow {
    account_id: String,
    open_tickets: u64,
}

/// `account_id IN (accounts of these partitions)`; the topic is bound as the one `?`.
/// `keys` narrows the subquery to a chunk's range of accounts (its primary key): without it
/// every query of every chunk read the whole table (a million rows, `FINAL`).
fn owned(db: &str, partitions: &[i32], keys: &str) -> String {
    // Integers, so safe to inline; ClickHouse 18.16 rejects `IN [array]`, which is how a bound
    // slice would be rendered.
    let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
    format!(
        "{keys}account_id IN (SELECT account_id FROM {db}.account_partitions FINAL
                        WHERE {keys}kafka_topic = ? AND kafka_partition IN ({list}))"
    )
}

/// The accounts an incremental pass evaluates: those with events stored at or after `since`
/// (ClickHouse's clock, `account_lifetime.last_stored`), and `accounts`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changed {
    pub since: u32,
    pub accounts: Vec<String>,
}

impl Changed {
    /// Exactly `accounts` (none stored since a time: `since` is the end of `DateTime`).
    pub fn only(accounts: Vec<String>) -> Self {
        Self { since: u32::MAX, accounts }
    }

    /// The condition on `account_id`; `keys` as for [`owned`].
    fn condition(&self, db: &str, keys: &str) -> String {
        let quoted: Vec<String> = self.accounts.iter().map(literal).collect();
        let listed = if quoted.is_empty() { "0".to_owned() } else { format!("account_id IN ({})", quoted.join(", ")) };
        format!(
            "(account_id IN (SELECT account_id FROM {db}.account_lifetime WHERE {keys}1 GROUP BY account_id
                             HAVING maxMerge(last_stored) >= toDateTime({}, 'UTC'))
              OR {listed})",
            self.since
        )
    }
}

/// Which sources a pass reads: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Windows ending today: the per-account state tables.
    Live,
    /// Windows ending on an earlier day: the history up to that day.
    AsOf,
}

impl History {
    /// `Live` for a pass at or after the start of today (UTC).
    pub fn of(now: DateTime<Utc>) -> Self {
        if now.date_naive() >= Utc::now().date_naive() {
            Self::Live
        } else {
            Self::AsOf
        }
    }
}

/// The queries for one pass, with every argument bound.
pub struct InputQueries {
    pub lifetime: clickhouse::query::Query,
    pub members: clickhouse::query::Query,
    pub sums: clickhouse::query::Query,
    pub traits: clickhouse::query::Query,
    pub csat: clickhouse::query::Query,
    pub tickets: clickhouse::query::Query,
    pub catalogue: clickhouse::query::Query,
}

impl InputQueries {
    /// The SQL texts, in order (for `aggregator sql`, which the modern-ClickHouse check runs).
    pub fn sql(&self) -> Vec<String> {
        [&self.lifetime, &self.members, &self.sums, &self.traits, &self.csat, &self.tickets, &self.catalogue]
            .iter()
            .map(|q| q.sql_display().to_string())
            .collect()
    }
}

/// First day, last activity and login, last NPS (+ 1): from `account_lifetime` when live, with
/// when it was last backfilled (`account_backfills`); else from the history up to `day` (the NPS
/// from the survey events up to `now`), never backfilled.
fn lifetime_query(db: &str, own: &str, day: NaiveDate, history: History) -> String {
    match history {
        History::Live => format!(
            "SELECT account_id, first_day, last_seen, last_login, latest_nps, last_backfilled
             FROM (SELECT account_id, toUInt16(minMerge(first_day)) AS first_day,
                        toUInt32(maxMerge(last_seen)) AS last_seen, toUInt32(maxMerge(last_login)) AS last_login,
                        argMaxMerge(latest_nps) AS latest_nps
                   FROM {db}.account_lifetime
                   WHERE {own}
                   GROUP BY account_id
                   HAVING first_day <= toUInt16(toDate('{day}', 'UTC'))) AS life
             ANY LEFT JOIN
                  (SELECT account_id, toUInt32(maxMerge(last_backfilled)) AS last_backfilled
                   FROM {db}.account_backfills
                   WHERE {own}
                   GROUP BY account_id) AS backfills
             USING account_id
             ORDER BY account_id"
        ),
        History::AsOf => format!(
            "SELECT account_id, first_day, last_seen, last_login, latest_nps, toUInt32(0) AS last_backfilled
             FROM (SELECT account_id, toUInt16(min(day)) AS first_day,
                        toUInt32(maxMerge(last_seen)) AS last_seen, toUInt32(maxMerge(last_login)) AS last_login
                   FROM {db}.account_daily
                   WHERE day <= toDate('{day}', 'UTC') AND {own}
                   GROUP BY account_id) AS daily
             ANY LEFT JOIN
                  (SELECT account_id,
                        argMaxIf(toUInt8(assumeNotNull(nps) + 1), timestamp, isNotNull(nps)) AS latest_nps
                   FROM {db}.events
                   WHERE kind = 'survey' AND timestamp <= toDateTime(?, 'UTC') AND {own}
                   GROUP BY account_id) AS surveys
             USING account_id
             ORDER BY account_id"
        ),
    }
}

/// Tickets whose latest status (as of `now`) is `opened`.
fn tickets_query(db: &str, own: &str, history: History) -> String {
    let states = match history {
        History::Live => format!(
            "SELECT account_id, ticket_id, argMaxMerge(status) AS status FROM {db}.ticket_state
             WHERE {own} GROUP BY account_id, ticket_id"
        ),
        History::AsOf => format!(
            "SELECT account_id, ticket_id, argMax(ticket_status, timestamp) AS status FROM {db}.events
             WHERE kind = 'support_ticket' AND timestamp <= toDateTime(?, 'UTC') AND {own}
             GROUP BY account_id, ticket_id"
        ),
    };
    format!(
        "SELECT account_id, toUInt64(countIf(status = 'opened')) AS open_tickets FROM ({states})
         GROUP BY account_id"
    )
}

impl Store {
    /// The queries for windows ending on `now`'s day, over the accounts of `partitions` of `topic`
    /// (only those `changed`, if given; only those from `range.0` to `range.1`, if given: a
    /// range of the primary keys, so each chunk of a pass reads its own part of the tables).
    pub fn input_queries(
        &self,
        now: DateTime<Utc>,
        topic: &str,
        partitions: &[i32],
        history: History,
        changed: Option<&Changed>,
        range: Option<(&str, &str)>,
    ) -> InputQueries {
        let db = &self.database().to_string();
        let keys = range.map_or(String::new(), |(first, last)| {
            format!("account_id >= {} AND account_id <= {} AND ", literal(first), literal(last))
        });
        let mut own = owned(db, partitions, &keys);
        if let Some(changed) = changed {
            own = format!("{own} AND {}", changed.condition(db, &keys));
        }
        let day = now.date_naive();
        let query = |sql: &str| self.client().query(sql);
        // Both histories name the owned accounts twice: the second for the join's right side.
        let mut lifetime = query(&lifetime_query(db, &own, day, history)).bind(topic);
        let mut tickets = query(&tickets_query(db, &own, history));
        if history == History::Live {
            lifetime = lifetime.bind(topic);
        } else {
            lifetime = lifetime.bind(to_datetime(now)).bind(topic);
            tickets = tickets.bind(to_datetime(now));
        }
        InputQueries {
            lifetime,
            members: query(&members_query(db, &own, day)).bind(topic),
            sums: query(&sums_query(db, &own, day)).bind(topic),
            traits: query(&format!(
                "SELECT account_id, argMax(traits, updated_at) AS traits FROM {db}.accounts WHERE {own} GROUP BY account_id"
            ))
            .bind(topic),
            // The mean of the answers of the 90 days ending on the pass's day.
            csat: query(&format!(
                "SELECT account_id, sumMerge(csat_sum) / sumMerge(answers) AS avg_csat
                 FROM {db}.account_csat_daily
                 WHERE day > toDate('{day}', 'UTC') - 90 AND day <= toDate('{day}', 'UTC') AND {own}
                 GROUP BY account_id"
            ))
            .bind(topic),
            tickets: tickets.bind(topic),
            catalogue: query(&catalogue_query(db, day)),
        }
    }

    /// The accounts of `partitions` of `topic` a pass at `now` evaluates (only those `changed`,
    /// if given), in account order, with what their history says.
    pub async fn pass_accounts(
        &self,
        now: DateTime<Utc>,
        topic: &str,
        partitions: &[i32],
        changed: Option<&Changed>,
    ) -> Result<Vec<LifetimeRow>, AggregatorError> {
        // Between a rebalance's revoke and its assign an instance owns nothing, and `IN ()` is
        // a syntax error (seen by the cluster drill: a warm-up replay during a takeover).
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.input_queries(now, topic, partitions, History::of(now), changed, None).lifetime.fetch_all().await?)
    }

    /// The number of distinct features any account used in the 64 days ending on `now`'s day.
    pub async fn features_seen(&self, now: DateTime<Utc>) -> Result<u64, AggregatorError> {
        Ok(self.client().query(&catalogue_query(&self.database().to_string(), now.date_naive())).fetch_one().await?)
    }

    /// The inputs of `accounts` (a run of [`Self::pass_accounts`] with the same `changed`, in
    /// order) for windows ending on `now`'s day.
    pub async fn inputs_of(
        &self,
        now: DateTime<Utc>,
        topic: &str,
        partitions: &[i32],
        changed: Option<&Changed>,
        accounts: Vec<LifetimeRow>,
    ) -> Result<Vec<AccountInputs>, AggregatorError> {
        let (Some(first), Some(last)) = (accounts.first(), accounts.last()) else {
            return Ok(Vec::new());
        };
        let range = Some((first.account_id.as_str(), last.account_id.as_str()));
        let q = self.input_queries(now, topic, partitions, History::of(now), changed, range);
        let members: Vec<WindowRow> = q.members.fetch_all().await?;
        let sums: Vec<WindowRow> = q.sums.fetch_all().await?;
        let traits: Vec<TraitsRow> = q.traits.fetch_all().await?;
        let csat: Vec<CsatRow> = q.csat.fetch_all().await?;
        let tickets: Vec<TicketRow> = q.tickets.fetch_all().await?;

        // Indexed by account: a linear search per account made a 100k-account pass quadratic
        // (24 s, found by `bench`).
        let mut members: HashMap<String, WindowRow> = members.into_iter().map(|m| (m.account_id.clone(), m)).collect();
        let mut sums: HashMap<String, WindowRow> = sums.into_iter().map(|s| (s.account_id.clone(), s)).collect();
        let traits: HashMap<&str, &TraitsRow> = traits.iter().map(|t| (t.account_id.as_str(), t)).collect();
        let csat: HashMap<&str, f64> = csat.iter().map(|c| (c.account_id.as_str(), c.avg_csat)).collect();
        let tickets: HashMap<&str, u64> = tickets.iter().map(|t| (t.account_id.as_str(), t.open_tickets)).collect();
        let inputs = accounts
            .into_iter()
            .map(|life| {
                let id = life.account_id.clone();
                let latest_nps = life.latest_nps.checked_sub(1);
                let window = window_row(life, members.remove(&id), sums.remove(&id));
                AccountInputs {
                    traits: traits
                        .get(id.as_str())
                        .and_then(|t| serde_json::from_str(&t.traits).ok())
                        .unwrap_or_default(),
                    latest_nps,
                    avg_csat: csat.get(id.as_str()).copied().filter(|c| c.is_finite()),
                    open_tickets: tickets.get(id.as_str()).copied().unwrap_or(0),
                    health_14d_ago: None,
                    window,
                }
            })
            .collect();
        Ok(inputs)
    }

    /// The latest identify traits of each of `users` (their ids) that has any, to name them in
    /// alerts. Only the few users a pass names are asked for, and the `users` table is ordered
    /// by `user_id`, so the lookup reads little whatever the book's size.
    pub async fn user_traits(&self, users: &[String]) -> Result<HashMap<String, Map<String, Value>>, AggregatorError> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String)> = self.user_traits_query(users).fetch_all().await?;
        Ok(rows.into_iter().filter_map(|(user, traits)| Some((user, serde_json::from_str(&traits).ok()?))).collect())
    }

    /// The query of [`Self::user_traits`].
    pub fn user_traits_query(&self, users: &[String]) -> clickhouse::query::Query {
        let listed: Vec<String> = users.iter().map(literal).collect();
        self.query(&format!(
            "SELECT user_id, argMax(traits, updated_at) AS traits FROM {{db}}.users
             WHERE user_id IN ({}) GROUP BY user_id",
            listed.join(", ")
        ))
    }

    /// The inputs of every account of `partitions` of `topic` (only those `changed`, if given),
    /// for windows ending on `now`'s day, and the number of features seen in 64 days — in one
    /// piece (a pass reads them in chunks: [`Self::pass_accounts`], [`Self::inputs_of`]).
    pub async fn account_inputs(
        &self,
        now: DateTime<Utc>,
        topic: &str,
        partitions: &[i32],
        changed: Option<&Changed>,
    ) -> Result<(Vec<AccountInputs>, u64), AggregatorError> {
        let accounts = self.pass_accounts(now, topic, partitions, changed).await?;
        let inputs = self.inputs_of(now, topic, partitions, changed, accounts).await?;
        Ok((inputs, self.features_seen(now).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warehouse::{ClickHouseConfig, Warehouse};

    #[test]
    fn a_window_row_takes_every_count_from_its_source() {
        let life = LifetimeRow {
            account_id: "a".into(),
            first_day: 7,
            last_seen: 9,
            last_login: 8,
            latest_nps: 0,
            last_backfilled: 0,
        };
        let m = WindowRow { active_users_7d: 3, weekly_features: vec![1; 9], ..Default::default() };
        let s = WindowRow { bytes_prev_30d: 5, weekly_records: vec![2; 9], ..Default::default() };
        let w = window_row(life.clone(), Some(m), Some(s));
        assert_eq!((w.first_day, w.last_seen, w.active_users_7d, w.bytes_prev_30d), (7, 9, 3, 5));
        assert_eq!((w.weekly_features[8], w.weekly_records[8], w.weekly_logins.len()), (1, 2, 9));
        // An account with no activity in the 64 days still gets a row: no use at all.
        let idle = window_row(life, None, None);
        assert_eq!((idle.active_users_30d, idle.weekly_user_days), (0, vec![0; 9]));
    }

    #[test]
    fn an_account_is_settling_while_old_events_are_still_being_stored() {
        let (clock, settle) = (10_000, 300);
        let settling = |backfilled| LifetimeRow::backfilled("a", backfilled).settling(clock, settle);
        assert!(settling(9_900), "old events stored 100 s ago, whatever live traffic came since");
        assert!(!settling(9_600), "no old event stored for 400 s: settled, though live traffic goes on");
        assert!(!settling(0), "only recent events ever stored: live traffic");
        assert!(!LifetimeRow::backfilled("a", 9_999).settling(clock, 0), "settle_ms = 0: judged at once");
    }

    #[test]
    fn a_live_pass_reads_no_raw_history_and_a_past_one_nothing_after_its_day() {
        let store = Store::new(Warehouse::new(&ClickHouseConfig::default()));
        let live = store.input_queries(Utc::now(), "usage-events", &[0], History::Live, None, None).sql().join("\n");
        assert!(!live.contains(".events"), "a live pass reads the state tables, not the events: {live}");
        let at: DateTime<Utc> = "2026-06-30T18:00:00Z".parse().unwrap();
        let past = store.input_queries(at, "usage-events", &[0], History::AsOf, None, None).sql().join("\n");
        assert!(past.contains(&format!("timestamp <= toDateTime({}, 'UTC')", to_datetime(at))), "{past}");
        assert!(!past.contains("ticket_state") && !past.contains("account_lifetime"));
        assert_eq!(History::of(at), History::AsOf);
        assert_eq!(History::of(Utc::now()), History::Live);
    }

    #[test]
    fn an_incremental_pass_reads_only_changed_accounts_and_quotes_their_ids() {
        let changed = Changed { since: 1_800_000_000, accounts: vec!["o'brien\\co".into()] };
        let cond = changed.condition("db", "");
        assert!(cond.contains("maxMerge(last_stored) >= toDateTime(1800000000, 'UTC')"), "{cond}");
        assert!(cond.contains(r"account_id IN ('o\'brien\\co')"), "{cond}");
        // A `?` in an id is not taken for a placeholder: the topic still binds where it belongs.
        let odd = Changed { since: 0, accounts: vec!["a?b".into()] };
        let store = Store::new(Warehouse::new(&ClickHouseConfig::default()));
        let q = store.input_queries(Utc::now(), "usage-events", &[0], History::Live, Some(&odd), Some(("a?", "b?")));
        for sql in q.sql() {
            assert!(!sql.contains("kafka_topic = ?"), "every placeholder bound: {sql}");
            assert!(sql.contains("account_id >= 'a?'") || !sql.contains("kafka_topic"), "{sql}");
        }
        let store = Store::new(Warehouse::new(&ClickHouseConfig::default()));
        for q in store.input_queries(Utc::now(), "usage-events", &[0], History::Live, Some(&changed), None).sql() {
            assert!(
                q.contains("last_stored") || q.contains("uniqExact(member)"),
                "every query but the catalogue is limited: {q}"
            );
        }
    }
}
