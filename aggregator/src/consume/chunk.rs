//! Splitting a batch into INSERTs that each touch few enough ClickHouse partitions.
//!
//! `events` is `PARTITION BY toYYYYMM(timestamp)` (and `account_daily`, filled from the same
//! insert by a materialized view, by the month of the event's day). Current ClickHouse refuses an
//! INSERT whose rows fall into more than `max_partitions_per_insert_block` (100) partitions
//! (error 252); ClickHouse 18.16 has no such limit. A history import (`/v1/import`) easily spans
//! 150 months, so one batch must become several INSERTs.
//!
//! The partition key is evaluated in the *server's* timezone (the column has none), which we do
//! not know: a row 3 hours before the end of a UTC month lies in the next month on a server in
//! UTC+5. So each row counts for every month it can fall into under any timezone (UTC-12 to
//! UTC+14): usually one, two within 14 hours of a month boundary. A chunk whose possible months
//! stay within the limit is within it on any server.

use std::collections::BTreeSet;
use std::ops::Range;

use chrono::{DateTime, Datelike};

/// Westmost and eastmost UTC offsets in use (Baker Island, Line Islands).
const MAX_WEST_SECS: i64 = 12 * 3600;
const MAX_EAST_SECS: i64 = 14 * 3600;

/// `YYYYMM` of a DateTime (seconds since the epoch) shifted by `offset` seconds.
fn month(secs: i64, offset: i64) -> u32 {
    let t = DateTime::from_timestamp(secs + offset, 0).unwrap_or_default();
    t.year() as u32 * 100 + t.month()
}

/// The `toYYYYMM` partitions a row stamped `timestamp` can fall into, whatever the server's
/// timezone: one month, or the two months around a boundary.
pub fn possible_partitions(timestamp: u32) -> [u32; 2] {
    let t = i64::from(timestamp);
    [month(t, -MAX_WEST_SECS), month(t, MAX_EAST_SECS)]
}

/// Orders `rows` by timestamp and cuts them into consecutive ranges, each of whose rows fall into
/// at most `max_partitions` partitions (see [`possible_partitions`]). A range of one row is
/// always allowed: a single row touches a single partition.
pub fn plan<T>(rows: &mut [T], timestamp: impl Fn(&T) -> u32, max_partitions: usize) -> Vec<Range<usize>> {
    rows.sort_unstable_by_key(&timestamp); // unstable: no scratch buffer per batch
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut months = BTreeSet::new();
    for (i, row) in rows.iter().enumerate() {
        let possible = possible_partitions(timestamp(row));
        let added = possible.iter().filter(|m| !months.contains(*m)).count();
        if i > start && months.len() + added > max_partitions {
            chunks.push(start..i);
            start = i;
            months.clear();
        }
        months.extend(possible);
    }
    if start < rows.len() {
        chunks.push(start..rows.len());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, m: u32, d: u32, h: u32) -> u32 {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp() as u32
    }

    /// Distinct `toYYYYMM` values of `rows` on a server whose timezone is `offset_h` from UTC.
    fn server_partitions(rows: &[u32], offset_h: i64) -> usize {
        rows.iter().map(|&t| month(i64::from(t), offset_h * 3600)).collect::<BTreeSet<_>>().len()
    }

    #[test]
    fn no_insert_chunk_spans_more_than_100_partitions() {
        // A history import: 150 consecutive months, several rows each, some right at the month
        // boundaries, shuffled as they arrive from Kafka.
        let mut rows = Vec::new();
        for i in 0..150u32 {
            let (y, m) = (2014 + (i / 12) as i32, i % 12 + 1);
            rows.extend([at(y, m, 1, 0), at(y, m, 15, 12), at(y, m, 28, 23), at(y, m, 1, 3)]);
        }
        rows.reverse();
        let total = rows.len();
        let chunks = plan(&mut rows, |t| *t, 100);
        assert!(chunks.len() >= 2, "150 months need at least two INSERTs");
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), total, "every row in exactly one chunk");
        assert!(chunks.windows(2).all(|w| w[0].end == w[1].start) && chunks[0].start == 0);
        for c in &chunks {
            for offset_h in -12..=14 {
                let n = server_partitions(&rows[c.clone()], offset_h);
                assert!(n <= 100, "a chunk spans {n} partitions on a UTC{offset_h:+} server");
            }
        }
    }

    #[test]
    fn a_recent_batch_stays_one_insert_and_a_tiny_limit_still_makes_progress() {
        let mut rows: Vec<u32> = (0..1000).map(|i| at(2026, 6, 10, 0) + i * 60).collect();
        assert_eq!(plan(&mut rows, |t| *t, 100), vec![0..1000]);
        // Limit 1 with rows near a boundary (two possible months each): one row per chunk at worst.
        let mut rows = vec![at(2026, 6, 30, 23), at(2026, 7, 1, 1), at(2026, 7, 15, 0)];
        let chunks = plan(&mut rows, |t| *t, 1);
        assert_eq!(chunks, vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn boundary_rows_count_for_both_months() {
        assert_eq!(possible_partitions(at(2026, 6, 30, 23)), [202606, 202607]);
        assert_eq!(possible_partitions(at(2026, 7, 1, 2)), [202606, 202607]);
        assert_eq!(possible_partitions(at(2026, 7, 15, 0)), [202607, 202607]);
    }
}
