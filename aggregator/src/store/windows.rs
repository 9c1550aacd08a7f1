//! The SQL of the rolling windows: what a pass reads of the last 64 days, and nothing older
//! (docs/architecture.md#evaluation-cost).
//!
//! - Distinct users and features come from `account_members` (migration 012): one row per member
//!   and 64-day epoch with one bit per active day. Shifted so that bit 63 is the pass's day and
//!   bit 0 the day 63 days before, a member counts in a window when its mask meets the window's
//!   mask; user-days (the sum of each day's active users) are bit counts. One partition is read
//!   (`FINAL`: a member's unmerged rows are one row), whatever the history.
//! - Sums (logins, events, records, bytes) come from `account_daily`, days `d - 63 ..= d` only,
//!   merged in one level (`sumMergeIf`): no per-day grouping, no distinct-count states.
//!
//! Every window of the metric catalogue is named here once, as days before the pass's day: its
//! SQL and its name, in [`member_columns`] or [`sum_columns`]. Both queries return every column
//! of [`WindowRow`] (the other query's as their zero), so a new count needs no other code.

use chrono::NaiveDate;

use crate::model::baseline::BASELINE_WEEKS;
use crate::model::WindowRow;

/// Days a pass reads: today and the 63 days of the nine baseline weeks before it.
pub const WINDOW_DAYS: i64 = 64;

/// The epoch (`account_members.epoch`) holding the 64 days that end on `day`, and the shift
/// that puts `day` at bit 63.
pub fn epoch_and_shift(day: NaiveDate) -> (i64, u32) {
    let n = day.signed_duration_since(NaiveDate::default()).num_days();
    (n.div_euclid(64), (63 - n.rem_euclid(64)) as u32)
}

/// The mask of the days `from..=to` days before the pass's day (0 = the day itself).
pub fn days_ago(from: u32, to: u32) -> u64 {
    (63 - to..=63 - from).fold(0, |m, bit| m | 1 << bit)
}

/// The `account_daily` condition for the same days.
fn day_range(from: u32, to: u32) -> String {
    if from == to {
        format!("day = d - {from}")
    } else {
        format!("day >= d - {to} AND day <= d - {from}")
    }
}

/// The baseline weeks: week k = 0..=8 is the 7 days ending `7k + 1` days before the pass's day
/// (k = 0: the complete week ending yesterday), and the 3 days ending on the same day
/// (`model/baseline.rs`).
fn weeks(span: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..=BASELINE_WEEKS as u32).map(move |k| (7 * k + 1, 7 * k + span))
}

/// The bit count of a UInt64 expression (ClickHouse 18.16 has no `bitCount`): the classic
/// SWAR sum of adjacent bits, with no subtraction (which would turn the type signed).
fn popcount(x: &str) -> String {
    const M1: u64 = 0x5555_5555_5555_5555;
    const M2: u64 = 0x3333_3333_3333_3333;
    const M4: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const H: u64 = 0x0101_0101_0101_0101;
    let pairs = format!("(bitAnd({x}, {M1}) + bitAnd(bitShiftRight({x}, 1), {M1}))");
    let nibbles = format!("(bitAnd({pairs}, {M2}) + bitAnd(bitShiftRight({pairs}, 2), {M2}))");
    format!("bitShiftRight(bitAnd({nibbles} + bitShiftRight({nibbles}, 4), {M4}) * {H}, 56)")
}

/// Members of `kind` active in the days `from..=to` before the pass's day.
fn members(kind: &str, mask: &str, from: u32, to: u32) -> String {
    format!("countIf(member_kind = '{kind}' AND bitAnd({mask}, {}) != 0)", days_ago(from, to))
}

/// User-days in the days `from..=to` before the pass's day.
fn user_days(from: u32, to: u32) -> String {
    format!("sum({})", popcount(&format!("bitAnd(user_active, {})", days_ago(from, to))))
}

fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(", "))
}

/// `state` (this epoch's days) and `prev` (the previous epoch's) as one mask, bit 63 = the
/// pass's day.
fn shifted(state: &str, prev: &str, shift: u32) -> String {
    let current = format!("bitShiftLeft(finalizeAggregation({state}), {shift})");
    if shift == 0 {
        return current;
    }
    format!("bitOr({current}, bitShiftRight(finalizeAggregation({prev}), {}))", 64 - shift)
}

/// The window columns computed from `account_members`: distinct users and features and
/// user-days, as (SQL, name).
fn member_columns() -> Vec<(String, &'static str)> {
    vec![
        (members("user", "active", 0, 0), "active_users_1d"),
        (members("user", "active", 0, 6), "active_users_7d"),
        (members("user", "active", 0, 29), "active_users_30d"),
        (members("user", "active", 7, 13), "active_users_prev_7d"),
        (members("user", "active", 30, 59), "active_users_prev_30d"),
        (members("user", "login", 0, 6), "login_users_7d"),
        (members("user", "login", 0, 29), "login_users_30d"),
        (members("feature", "active", 0, 6), "features_used_7d"),
        (members("feature", "active", 0, 29), "features_used_30d"),
        (user_days(0, 29), "dau_sum_30d"),
        (array(weeks(7).map(|(f, t)| user_days(f, t))), "weekly_user_days"),
        (array(weeks(7).map(|(f, t)| members("user", "active", f, t))), "weekly_active_users"),
        (array(weeks(7).map(|(f, t)| members("feature", "active", f, t))), "weekly_features"),
        (array(weeks(3).map(|(f, t)| user_days(f, t))), "recent_user_days"),
        ("groupArrayIf(member, member_kind = 'user')".to_owned(), "user_ids"),
        ("groupArrayIf(user_active, member_kind = 'user')".to_owned(), "user_masks"),
    ]
}

/// The window columns computed from `account_daily`: sums over days, as (SQL, name).
fn sum_columns() -> Vec<(String, &'static str)> {
    let sum = |state: &str, from: u32, to: u32| format!("sumMergeIf({state}, {})", day_range(from, to));
    vec![
        (sum("logins", 0, 6), "logins_7d"),
        (sum("logins", 0, 29), "logins_30d"),
        (sum("events", 0, 6), "events_7d"),
        (sum("events", 7, 13), "events_prev_7d"),
        (sum("events", 0, 29), "events_30d"),
        (sum("records", 0, 29), "records_30d"),
        (sum("records", 30, 59), "records_prev_30d"),
        (sum("bytes", 0, 29), "bytes_30d"),
        (sum("bytes", 30, 59), "bytes_prev_30d"),
        (array(weeks(7).map(|(f, t)| sum("logins", f, t))), "weekly_logins"),
        (array(weeks(7).map(|(f, t)| sum("records", f, t))), "weekly_records"),
    ]
}

/// The SELECT list of a window query: every column of [`WindowRow`] after `account_id`, in its
/// order (the row is read by position), computed where `computed` names it, else its zero.
fn select_window(computed: &[(String, &'static str)]) -> String {
    let columns = WindowRow::COLUMNS.iter().zip(WindowRow::ZEROS).skip(1).map(|(name, zero)| {
        let sql = computed.iter().find(|(_, n)| n == name).map_or(*zero, |(sql, _)| sql.as_str());
        format!("{sql} AS {name}")
    });
    columns.collect::<Vec<_>>().join(",\n            ")
}

/// Distinct users and features and user-days of every window, per account of `own`, for the
/// windows ending on `day`: a [`WindowRow`] with the [`member_columns`].
pub fn members_query(db: &str, own: &str, day: NaiveDate) -> String {
    let (epoch, shift) = epoch_and_shift(day);
    format!(
        "SELECT account_id,
            {}
         FROM (SELECT account_id, member_kind, member, active, login,
                      if(member_kind = 'user', active, toUInt64(0)) AS user_active
               FROM (SELECT account_id, member_kind, member,
                            {} AS active,
                            {} AS login
                     FROM {db}.account_members FINAL
                     WHERE epoch = {epoch} AND {own}))
         GROUP BY account_id",
        select_window(&member_columns()),
        shifted("active", "active_prev", shift),
        shifted("login", "login_prev", shift),
    )
}

/// Sums over the windows ending on `day`, from the daily rollup's last 64 days: a [`WindowRow`]
/// with the [`sum_columns`].
pub fn sums_query(db: &str, own: &str, day: NaiveDate) -> String {
    format!(
        "WITH toDate('{day}', 'UTC') AS d
         SELECT account_id,
            {}
         FROM {db}.account_daily
         WHERE day >= d - {} AND day <= d AND {own}
         GROUP BY account_id",
        select_window(&sum_columns()),
        WINDOW_DAYS - 1,
    )
}

/// The number of distinct features any account used in the 64 days ending on `day`.
pub fn catalogue_query(db: &str, day: NaiveDate) -> String {
    let (epoch, shift) = epoch_and_shift(day);
    format!(
        "SELECT toUInt64(uniqExact(member)) FROM {db}.account_members
         WHERE epoch = {epoch} AND member_kind = 'feature' AND {} != 0",
        shifted("active", "active_prev", shift)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_pass_day_is_bit_63_of_its_epoch_mask() {
        // 2026-11-24 is day 20781 since 1970-01-01: epoch 324, bit 45 (as ClickHouse's
        // `intDiv(toUInt16(day), 64)` and `% 64` have it).
        let n = day("2026-11-24").signed_duration_since(NaiveDate::default()).num_days();
        let (epoch, shift) = epoch_and_shift(day("2026-11-24"));
        assert_eq!((n, epoch, shift), (20781, 324, 63 - 45));
        // A day's bit in its own epoch, shifted, lands on bit 63.
        assert_eq!((1u64 << (n % 64)) << shift, 1 << 63);
    }

    #[test]
    fn windows_are_days_before_the_pass_day() {
        assert_eq!(days_ago(0, 0), 1 << 63);
        assert_eq!(days_ago(0, 6).count_ones(), 7);
        assert_eq!(days_ago(0, 6).leading_ones(), 7);
        assert_eq!(days_ago(57, 63), 0x7f, "week 8 is bits 0..=6");
        let weeks: Vec<_> = weeks(7).collect();
        assert_eq!((weeks[0], weeks[8]), ((1, 7), (57, 63)));
        // The nine weeks tile the 63 days before the pass's day, no overlap.
        let all = weeks.iter().fold(0u64, |m, &(f, t)| {
            assert_eq!(m & days_ago(f, t), 0);
            m | days_ago(f, t)
        });
        assert_eq!(all, !(1 << 63));
    }

    #[test]
    fn the_queries_read_one_epoch_and_64_days() {
        let d = day("2026-11-24");
        let (epoch, _) = epoch_and_shift(d);
        let members = members_query("db", "1", d);
        assert!(members.contains(&format!("WHERE epoch = {epoch} AND")), "{members}");
        assert!(members.contains("FINAL"));
        let sums = sums_query("db", "1", d);
        assert!(sums.contains("WHERE day >= d - 63 AND day <= d"), "{sums}");
    }

    /// What makes "a count is one catalogue entry plus its SQL" hold: every window column but the
    /// account's lifetime (read by the lifetime query) is computed by exactly one window query,
    /// and the queries compute nothing the row lacks.
    #[test]
    fn every_window_column_is_computed_by_exactly_one_query() {
        let lifetime = ["account_id", "last_seen", "last_login", "first_day"];
        let (m, s) = (member_columns(), sum_columns());
        for name in WindowRow::COLUMNS.iter().filter(|c| !lifetime.contains(c)) {
            let n = m.iter().chain(&s).filter(|(_, c)| c == name).count();
            assert_eq!(n, 1, "{name} is computed by {n} window queries");
        }
        for (_, name) in m.iter().chain(&s) {
            assert!(WindowRow::COLUMNS.contains(name), "{name} is not a column of WindowRow");
        }
        let members = members_query("db", "1", day("2026-11-24"));
        assert!(
            members.contains("toUInt64(0) AS logins_7d") && members.contains("emptyArrayUInt64() AS weekly_logins")
        );
        assert!(members.contains("toUInt32(0) AS last_seen"), "{members}");
    }
}
