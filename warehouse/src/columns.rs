//! How uptake's values are encoded in ClickHouse columns: `DateTime` as seconds since the epoch in
//! a UInt32, `Date` as days since the epoch in a UInt16. Row types and the services' own reads use
//! these so no column is encoded two ways.

use chrono::{DateTime, NaiveDate, Utc};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_seconds_round_trip_and_clamp() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        assert_eq!(epoch_day_plus(date_number(d)), d);
        assert_eq!(date_number(NaiveDate::from_ymd_opt(1960, 1, 1).unwrap()), 0);
        assert_eq!(to_datetime(DateTime::from_timestamp(-5, 0).unwrap()), 0);
        assert_eq!(to_datetime(DateTime::from_timestamp(1_700_000_000, 0).unwrap()), 1_700_000_000);
    }
}
