//! How uptake's values are encoded in ClickHouse columns: `DateTime` as seconds since the epoch in
//! a UInt32, `Date` as days since the epoch in a UInt16. Row types and the services' own reads use
//! these so no column is encoded two ways.
//!
//! [`literal`] writes a value into SQL text where it cannot be bound to a `?`.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

fn epoch_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Days since the epoch, as ClickHouse `Date` stores them.
pub fn date_number(d: NaiveDate) -> u16 {
    (d - epoch_day()).num_days().clamp(0, u16::MAX as i64) as u16
}

/// The date of a ClickHouse `Date` day number.
pub fn epoch_day_plus(day: u16) -> NaiveDate {
    epoch_day() + chrono::Days::new(day as u64)
}

/// Seconds since the epoch, as ClickHouse `DateTime` (a UInt32) stores them.
pub fn to_datetime(t: DateTime<Utc>) -> u32 {
    t.timestamp().clamp(0, u32::MAX as i64) as u32
}

/// `value` as a ClickHouse literal, for a condition that a query repeats (a pass's accounts
/// appear in its outer query and in each subquery), where `?` placeholders, bound in order, would
/// have to be counted by hand. The client's own serializer writes it — the one `Query::bind`
/// uses, not a second escaping of ours — and every `?` in it is doubled, because the query it is
/// pasted into is parsed for placeholders again and `??` is the client's escape for a literal `?`
/// (an account id `a?b` otherwise shifted every later bound value by one).
pub fn literal(value: impl Serialize) -> String {
    // A client only to render with: it is never connected.
    static RENDER: LazyLock<clickhouse::Client> = LazyLock::new(clickhouse::Client::default);
    RENDER.query("?").bind(value).sql_display().to_string().replace('?', "??")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_is_escaped_by_the_client_and_survives_being_parsed_again() {
        let id = literal("o'brien\\co?");
        assert_eq!(id, r"'o\'brien\\co??'");
        // Pasted into a query with a placeholder after it, the bound value still lands there.
        let q = clickhouse::Client::default().query(&format!("SELECT {id}, ?")).bind(7u8);
        assert_eq!(q.sql_display().to_string(), r"SELECT 'o\'brien\\co?', 7");
        assert_eq!(literal(12u32), "12");
    }

    #[test]
    fn days_and_seconds_round_trip_and_clamp() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(epoch_day_plus(date_number(d)), d);
        assert_eq!(date_number(NaiveDate::from_ymd_opt(1960, 1, 1).unwrap()), 0);
        assert_eq!(to_datetime(DateTime::from_timestamp(-5, 0).unwrap()), 0);
        assert_eq!(to_datetime(DateTime::from_timestamp(1_700_000_000, 0).unwrap()), 1_700_000_000);
    }
}
