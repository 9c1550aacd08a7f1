//! The history dimension of the evaluation bench: passes over books whose accounts have months
//! of daily activity behind them, so that the cost of a pass shows whether it grows with history.
//!
//! A year of events for 100,000 accounts is hundreds of millions of events; replaying them
//! through Kafka would take the bench hours. So the book is written straight into the tables an
//! evaluation pass reads, in the shape the materialized views give them (migration 012):
//!
//! - `account_daily`: one row per account and active day, every day of the history, with the
//!   sums (logins, events, feature uses, records, bytes) and the last activity. Its distinct-user
//!   and feature states stay empty: no pass reads them any more.
//! - `account_members`: one row per user (and per feature) of each account and 64-day epoch of
//!   the history, with a bit per active day: weekdays at a per-user rate (25 %, 75 % or 87.5 %),
//!   weekends rarely; logins on three active days in four.
//! - `account_lifetime`, `account_partitions` (4 partitions) and traits (seats, contract dates).
//!
//! Per-account randomness comes from ClickHouse's integer hashes, so a book is the same in every
//! run; generating 36.5 million account-days takes seconds, not hours.

use std::time::{Duration, Instant};

use aggregator::PassTimings;
use chrono::{NaiveDate, Utc};
use warehouse::Warehouse;

use crate::ToolsError;

/// One history case: `accounts` accounts with `days` days of activity each, evaluated by
/// `owners` instances (each owning an equal share of the 4 partitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub accounts: usize,
    pub days: u32,
    pub owners: usize,
}

impl std::str::FromStr for Case {
    type Err = String;

    /// `ACCOUNTS:DAYS:OWNERS`, e.g. `100000:365:1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("history case {s:?}: expected ACCOUNTS:DAYS:OWNERS, e.g. 100000:365:1");
        let parts: Vec<usize> = s.split(':').map(|p| p.trim().parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
        match parts[..] {
            [accounts, days, owners] if accounts > 0 && days > 0 && (1..=4).contains(&owners) => {
                Ok(Self { accounts, days: days as u32, owners })
            }
            _ => Err(bad()),
        }
    }
}

/// What one case measured: per owner, the pass's duration, the accounts it evaluated and its
/// phases; and how long writing the book took.
#[derive(Debug, Clone)]
pub struct Measured {
    pub case: Case,
    pub fill: Duration,
    pub passes: Vec<(Duration, usize, PassTimings)>,
    /// The pass after 1 % of the accounts sent events (one owner only).
    pub incremental: Option<(Duration, usize, PassTimings)>,
    /// The bench process's peak RSS during the slowest owner's pass (bytes): what an aggregator
    /// instance holds for the same pass, plus the bench's own little.
    pub peak_rss: u64,
}

impl Measured {
    /// The slowest owner's pass.
    pub fn slowest(&self) -> Duration {
        self.passes.iter().map(|p| p.0).max().unwrap_or_default()
    }
}

/// The partitions owner `i` of `owners` evaluates.
pub fn partitions_of(i: usize, owners: usize) -> Vec<i32> {
    (0..4).filter(|p| p % owners as i32 == i as i32).collect()
}

fn epoch(day: NaiveDate) -> i64 {
    day.signed_duration_since(NaiveDate::default()).num_days().div_euclid(64)
}

/// Per epoch from the first day's to the one after today's: the mask of its days inside the
/// history (`first..=today`) and of its weekdays. As ClickHouse `transform` arguments.
fn epoch_masks(first: NaiveDate, today: NaiveDate) -> (String, String, String) {
    let (from, to) = (epoch(first), epoch(today) + 1);
    let n = |d: NaiveDate| d.signed_duration_since(NaiveDate::default()).num_days();
    let (mut epochs, mut valid, mut weekdays) = (Vec::new(), Vec::new(), Vec::new());
    for e in from..=to {
        let (mut v, mut w) = (0u64, 0u64);
        for bit in 0..64 {
            let day = e * 64 + bit;
            if day >= n(first) && day <= n(today) {
                v |= 1 << bit;
            }
            // 1970-01-01 was a Thursday: day 0 is weekday 3 (Monday = 0).
            if (day + 3).rem_euclid(7) < 5 {
                w |= 1 << bit;
            }
        }
        epochs.push(e.to_string());
        valid.push(v.to_string());
        weekdays.push(w.to_string());
    }
    let list = |v: Vec<String>| format!("[{}]", v.join(", "));
    (list(epochs), list(valid), list(weekdays))
}

/// Writes the book of `case` (accounts `h-0` … on `topic`'s 4 partitions, activity from
/// `days - 1` days ago to today) into `store`'s migrated, empty database.
pub async fn fill(store: &Warehouse, topic: &str, case: Case) -> Result<Duration, ToolsError> {
    let started = Instant::now();
    let (db, n, days) = (store.database(), case.accounts, case.days);
    let today = Utc::now().date_naive();
    let first = today - chrono::Duration::days(i64::from(days) - 1);
    let (epochs, valid, weekdays) = epoch_masks(first, today);
    let run = |sql: String| async move {
        let table = sql.split_whitespace().nth(2).unwrap_or_default().to_owned();
        store.client().query(&sql).execute().await.map_err(|e| ToolsError::Setup(format!("writing {table}: {e}")))
    };
    run(format!(
        "INSERT INTO {db}.account_partitions
         SELECT concat('h-', toString(number)), '{topic}', toInt32(number % 4), now() FROM numbers({n})"
    ))
    .await?;
    run(format!(
        "INSERT INTO {db}.accounts
         SELECT concat('h-', toString(number)), now(),
                concat('{{\"seats\":', toString(5 + number % 46),
                       ',\"contract_start\":\"', toString(toDate('{first}') - 30 - number % 400),
                       '\",\"renewal_date\":\"', toString(toDate('{today}') + 1 + number % 365), '\"}}')
         FROM numbers({n})"
    ))
    .await?;
    // Active users per account and day: a share of the seats, a quarter of it at weekends.
    run(format!(
        "INSERT INTO {db}.account_daily (account_id, day, logins, events, feature_uses, records, bytes, last_seen, last_login)
         SELECT concat('h-', toString(a)), day,
                arrayReduce('sumState', [toUInt64(users)]), arrayReduce('sumState', [toUInt64(users * 6 + 2)]),
                arrayReduce('sumState', [toUInt64(users * 5)]), arrayReduce('sumState', [toUInt64(records)]),
                arrayReduce('sumState', [toUInt64(records * 512)]),
                arrayReduce('maxState', [toDateTime(toUInt32(day) * 86400 + 32400)]),
                arrayReduce('maxState', [toDateTime(toUInt32(day) * 86400 + 32400)])
         FROM (SELECT number % {n} AS a, intDiv(number, {n}) AS t, toDate('{today}') - t AS day,
                      toUInt32((5 + a % 46) * (0.25 + 0.35 * (intHash32(a) % 100) / 100)
                               * if(toDayOfWeek(day) >= 6, 0.25, 1)
                               * (0.8 + 0.4 * (intHash32(a * 7919 + t) % 100) / 100)) AS users,
                      intHash32(a * 31 + t) % 500 AS records
               FROM numbers({rows}))
         WHERE users > 0",
        rows = n as u64 * u64::from(days),
    ))
    .await?;
    // Users u < seats and features f < 4 + a % 16 of each account, per epoch: this epoch's
    // bits and (as the view writes them) the previous epoch's.
    let (epoch_count, first_epoch) = (epochs.split(", ").count() as u64, epoch(first));
    let mask = |e: &str| {
        let h = |mul: u32| format!("intHash64(k + {e} * {mul})");
        format!(
            "bitAnd(bitAnd(multiIf(m % 3 = 0, bitOr(bitOr({h3}, {h5}), {h7}), m % 3 = 1, bitOr({h3}, {h5}), bitAnd({h3}, {h5})),
                           bitOr(transform({e}, {epochs}, {weekdays}, toUInt64(0)), bitAnd(bitAnd({h11}, {h13}), {h17}))),
                    transform({e}, {epochs}, {valid}, toUInt64(0)))",
            h3 = h(3), h5 = h(5), h7 = h(7), h11 = h(11), h13 = h(13), h17 = h(17),
        )
    };
    for (kind, per_account, count, salt) in [("user", 50u64, "5 + a % 46", 1), ("feature", 20, "4 + a % 16", 2)] {
        // Logins on three active days in four; features have none.
        let login = |mask: &str, e: &str| match kind {
            "user" => format!("bitAnd({mask}, bitOr(intHash64(k * 2 + {e}), intHash64(k * 3 + {e})))"),
            _ => "toUInt64(0)".to_owned(),
        };
        run(format!(
            "INSERT INTO {db}.account_members
             SELECT toUInt16(e), concat('h-', toString(a)), '{kind}', concat('{prefix}', toString(m)),
                    arrayReduce('groupBitOrState', [cur]), arrayReduce('groupBitOrState', [prev]),
                    arrayReduce('groupBitOrState', [{login_cur}]), arrayReduce('groupBitOrState', [{login_prev}])
             FROM (SELECT a, m, e, e_prev, k, {cur} AS cur, {prev} AS prev
                   FROM (SELECT number % {n} AS a, intDiv(number, {n}) % {per_account} AS m,
                                toUInt64({first_epoch} + intDiv(number, {n} * {per_account})) AS e,
                                toUInt64(e - 1) AS e_prev, a * 1000003 + m * 1009 + {salt} AS k
                         FROM numbers({rows})
                         WHERE m < {count}))
             WHERE bitOr(cur, prev) != 0",
            prefix = &kind[..1],
            cur = mask("e"),
            prev = mask("e_prev"),
            login_cur = login("cur", "e"),
            login_prev = login("prev", "e_prev"),
            rows = n as u64 * per_account * epoch_count,
        ))
        .await?;
    }
    run(format!(
        "INSERT INTO {db}.account_lifetime (account_id, first_day, last_seen, last_login)
         SELECT concat('h-', toString(number)), arrayReduce('minState', [toDate('{first}')]),
                arrayReduce('maxState', [toDateTime(toUInt32(toDate('{today}')) * 86400 + 32400)]),
                arrayReduce('maxState', [toDateTime(toUInt32(toDate('{today}')) * 86400 + 32400)])
         FROM numbers({n})"
    ))
    .await?;
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_read_from_the_command_line() {
        assert_eq!("100000:365:1".parse(), Ok(Case { accounts: 100_000, days: 365, owners: 1 }));
        assert!("100000:365".parse::<Case>().is_err());
        assert!("10:30:5".parse::<Case>().unwrap_err().contains("ACCOUNTS:DAYS:OWNERS"));
    }

    #[test]
    fn owners_split_the_four_partitions() {
        assert_eq!(partitions_of(0, 1), [0, 1, 2, 3]);
        assert_eq!((partitions_of(0, 4), partitions_of(3, 4)), (vec![0], vec![3]));
        assert_eq!((partitions_of(0, 2), partitions_of(1, 2)), (vec![0, 2], vec![1, 3]));
    }

    #[test]
    fn epoch_masks_cover_exactly_the_history() {
        let today: NaiveDate = "2026-11-24".parse().unwrap();
        let first = today - chrono::Duration::days(364);
        let (epochs, valid, weekdays) = epoch_masks(first, today);
        let valid: Vec<u64> = valid.trim_matches(['[', ']']).split(", ").map(|v| v.parse().unwrap()).collect();
        assert_eq!(epochs.split(", ").count(), valid.len());
        assert_eq!(valid.iter().map(|v| v.count_ones()).sum::<u32>(), 365);
        assert_eq!(*valid.last().unwrap(), 0, "the epoch after today's has no day of the history");
        let weekdays: Vec<u64> = weekdays.trim_matches(['[', ']']).split(", ").map(|v| v.parse().unwrap()).collect();
        // 2026-11-24 (a Tuesday) is bit 45 of its epoch; 2026-11-22 (a Sunday) bit 43.
        let today_epoch = weekdays[weekdays.len() - 2];
        assert_eq!((today_epoch >> 45 & 1, today_epoch >> 43 & 1), (1, 0));
    }
}
