//! The book's daily totals (`model::book`): active users summed over every account, and how many
//! accounts had any, for the 64 days ending on the pass's day. Read from the daily rollup
//! (`account_daily`), bounded by those 64 days whatever the history's length, and over the whole
//! database rather than an instance's partitions: a holiday is a property of the book, and every
//! instance, and a replay of the same day, reads the same closures.

use chrono::{DateTime, Days, Utc};

use super::Store;
use crate::model::book::BookDay;
use crate::AggregatorError;

impl Store {
    /// The book's totals of the 64 days ending on `now`'s day: index d = d days before it.
    pub async fn book_days(&self, now: DateTime<Utc>) -> Result<[BookDay; 64], AggregatorError> {
        let today = now.date_naive();
        let rows: Vec<(u16, u64, u64)> = self.book_days_query(now).fetch_all().await?;
        let mut out = [BookDay::default(); 64];
        for (day, users, accounts) in rows {
            let d = (today - crate::model::epoch_day_plus(day)).num_days();
            if let Some(slot) = usize::try_from(d).ok().and_then(|d| out.get_mut(d)) {
                *slot = BookDay { users, accounts };
            }
        }
        Ok(out)
    }

    /// The query of [`Self::book_days`] (also in `aggregator sql`, for the current-ClickHouse check).
    pub fn book_days_query(&self, now: DateTime<Utc>) -> clickhouse::query::Query {
        let today = now.date_naive();
        let first = today - Days::new(63);
        // Per account and day first: a user active in two accounts counts in both, as they do
        // in each account's own figures.
        self.query(
            "SELECT toUInt16(d) AS day, sum(n) AS users, toUInt64(count()) AS accounts FROM (
                 SELECT account_id, day AS d, uniqExactMerge(active_users) AS n FROM {db}.account_daily
                 WHERE day >= toDate(?, 'UTC') AND day <= toDate(?, 'UTC')
                 GROUP BY account_id, day)
             WHERE n > 0 GROUP BY d ORDER BY d",
        )
        .bind(first.format("%Y-%m-%d").to_string())
        .bind(today.format("%Y-%m-%d").to_string())
    }
}
