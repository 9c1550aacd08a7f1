//! The book's daily totals (`model::book`): active users summed over every account, and how many
//! accounts had any, for the 64 days ending on the pass's day, and whether it holds older days.
//! Read from the daily rollup (`account_daily`), bounded by those 64 days (the older days by one
//! row) whatever the history's length, and over the whole database rather than an instance's
//! partitions: a holiday is a property of the book, and every instance, and a replay of the same
//! day, reads the same closures. So is an import: whether any account of the book still has its
//! past arriving ([`Store::book_importing`]).

use chrono::{DateTime, Days, Utc};

use super::Store;
use crate::model::book::BookDay;
use crate::AggregatorError;

impl Store {
    /// The book's totals of the 64 days ending on `now`'s day (index d = d days before it), and
    /// whether it holds anything older than them.
    pub async fn book_days(&self, now: DateTime<Utc>) -> Result<([BookDay; 64], bool), AggregatorError> {
        let today = now.date_naive();
        let rows: Vec<(u16, u64, u64, u64)> = self.book_days_query(now).fetch_all().await?;
        let mut out = [BookDay::default(); 64];
        for (day, users, accounts, seen) in rows {
            let d = (today - crate::model::epoch_day_plus(day)).num_days();
            if let Some(slot) = usize::try_from(d).ok().and_then(|d| out.get_mut(d)) {
                *slot = BookDay { users, accounts, seen };
            }
        }
        let older: u64 = self.book_older_query(now).fetch_one().await?;
        Ok((out, older > 0))
    }

    /// The query of [`Self::book_days`]'s days (also in `aggregator sql`, for the
    /// current-ClickHouse check): per day, active users summed over accounts, the accounts with
    /// any, and the accounts with any event at all (traits, surveys and tickets too).
    pub fn book_days_query(&self, now: DateTime<Utc>) -> clickhouse::query::Query {
        let today = now.date_naive();
        let first = today - Days::new(63);
        // Per account and day first: a user active in two accounts counts in both, as they do
        // in each account's own figures.
        self.query(
            "SELECT toUInt16(d) AS day, sum(n) AS users, toUInt64(countIf(n > 0)) AS accounts,
                    toUInt64(count()) AS seen FROM (
                 SELECT account_id, day AS d, uniqExactMerge(active_users) AS n FROM {db}.account_daily
                 WHERE day >= toDate(?, 'UTC') AND day <= toDate(?, 'UTC')
                 GROUP BY account_id, day)
             GROUP BY d ORDER BY d",
        )
        .bind(first.format("%Y-%m-%d").to_string())
        .bind(today.format("%Y-%m-%d").to_string())
    }

    /// The query of [`Self::book_days`]'s "anything older": one row at most, so it reads the
    /// first granule of an older month's partition, whatever the history's length.
    pub fn book_older_query(&self, now: DateTime<Utc>) -> clickhouse::query::Query {
        let first = now.date_naive() - Days::new(63);
        self.query(
            "SELECT toUInt64(count()) FROM (
                 SELECT 1 FROM {db}.account_daily WHERE day < toDate(?, 'UTC') LIMIT 1)",
        )
        .bind(first.format("%Y-%m-%d").to_string())
    }

    /// Whether any account of the whole book, whichever instance owns it, is still importing
    /// at `clock` (ClickHouse's): events over an hour old stored for it within `settle_secs`
    /// (`LifetimeRow::settling`, over every partition).
    pub async fn book_importing(&self, clock: u32, settle_secs: u32) -> Result<bool, AggregatorError> {
        let n: u64 = self.book_importing_query(clock, settle_secs).fetch_one().await?;
        Ok(n > 0)
    }

    /// The query of [`Self::book_importing`] (also in `aggregator sql`). One row per account ever
    /// backfilled: run only in the hours after an instance's own import (`evaluate/settle.rs`).
    pub fn book_importing_query(&self, clock: u32, settle_secs: u32) -> clickhouse::query::Query {
        self.query(
            "SELECT toUInt64(count()) FROM (
                 SELECT account_id FROM {db}.account_backfills
                 GROUP BY account_id
                 HAVING toUInt32(maxMerge(last_backfilled)) > 0
                    AND toUInt32(maxMerge(last_backfilled)) + ? > ?)",
        )
        .bind(settle_secs)
        .bind(clock)
    }
}
