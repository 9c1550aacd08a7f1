//! The metric catalogue: every column of `account_metrics`, in one list. From it follow the
//! window row the window queries fill ([`WindowRow`]), the metrics row the evaluator
//! writes ([`MetricsRow`]), the metrics a rule may name ([`Metric`], resolved once when the
//! rule file is loaded), the JSON names (the field names) and the table in docs/analysts.md
//! ([`doc_table`], held to the file by a test). See docs/architecture.md#the-metric-catalogue.
//!
//! Adding a metric is one entry below plus its SQL: a `count` needs its window's SQL in
//! `store/windows.rs` (one line: the expression and the count's name; both window queries read
//! into [`WindowRow`], so no other code names it) and its column in `account_metrics` (a
//! migration); a `metric` or `column` needs its derivation in `model/derive.rs` and the migration.

use serde::{Deserialize, Serialize};

use super::lifecycle::Stage;

/// What a catalogue entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Read by the window queries and copied unchanged; rules may name it.
    Count,
    /// Derived in the model; rules may name it.
    Metric,
    /// Derived or descriptive; not visible to rules.
    Column,
}

/// One entry of the catalogue.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub doc: &'static str,
    /// How a rule reads it; `None` for a [`Kind::Column`].
    read: Option<fn(&MetricsRow) -> Option<f64>>,
}

/// A metric's value as a rule sees it: a number, or nothing when the account gives no input.
trait AsMetric {
    fn as_metric(&self) -> Option<f64>;
}

impl AsMetric for u64 {
    fn as_metric(&self) -> Option<f64> {
        Some(*self as f64)
    }
}

impl AsMetric for u8 {
    fn as_metric(&self) -> Option<f64> {
        Some(f64::from(*self))
    }
}

impl AsMetric for Option<f64> {
    fn as_metric(&self) -> Option<f64> {
        *self
    }
}

macro_rules! impl_as_metric_for_option {
    ($($t:ty),*) => { $(impl AsMetric for Option<$t> {
        fn as_metric(&self) -> Option<f64> {
            self.map(f64::from)
        }
    })* };
}
impl_as_metric_for_option!(u8, u32, i32);

macro_rules! kind {
    (count) => {
        Kind::Count
    };
    (metric) => {
        Kind::Metric
    };
    (column) => {
        Kind::Column
    };
}

macro_rules! reader {
    (column, $name:ident) => {
        None
    };
    ($kind:ident, $name:ident) => {
        Some(|m: &MetricsRow| AsMetric::as_metric(&m.$name))
    };
}

macro_rules! copy_count {
    (count, $m:ident, $w:ident, $name:ident) => {
        $m.$name = $w.$name;
    };
    ($kind:ident, $m:ident, $w:ident, $name:ident) => {};
}

/// A window column's type: its value in the window query that does not compute it, and how the
/// two queries' values combine (`store/windows.rs`: each computes its own columns and leaves the
/// others at this zero, so a count is named once, in its SQL).
pub trait WindowColumn {
    /// The column's zero, as SQL of its ClickHouse type.
    const ZERO: &'static str;
    /// Takes in the other query's value of the column.
    fn absorb(&mut self, other: Self);
}

impl WindowColumn for u64 {
    const ZERO: &'static str = "toUInt64(0)";
    fn absorb(&mut self, other: Self) {
        *self += other;
    }
}

impl WindowColumn for u32 {
    const ZERO: &'static str = "toUInt32(0)";
    fn absorb(&mut self, other: Self) {
        *self = (*self).max(other);
    }
}

impl WindowColumn for u16 {
    const ZERO: &'static str = "toUInt16(0)";
    fn absorb(&mut self, other: Self) {
        *self = (*self).max(other);
    }
}

impl WindowColumn for Vec<String> {
    const ZERO: &'static str = "emptyArrayString()";
    fn absorb(&mut self, other: Self) {
        if self.is_empty() {
            *self = other;
        }
    }
}

impl WindowColumn for Vec<u64> {
    const ZERO: &'static str = "emptyArrayUInt64()";
    fn absorb(&mut self, other: Self) {
        if self.is_empty() {
            *self = other;
        }
    }
}

/// Collects the `count` entries into [`WindowRow`], in catalogue order (the query's order).
macro_rules! window_row {
    ([$($acc:tt)*] [$($names:tt)*] [$(($cname:ident, $cty:ty))*] [$( $(#[doc = $idoc:literal])* $iname:ident : $ity:ty, )*]) => {
        /// The window aggregates of one account: the row both window queries return
        /// (`store/windows.rs`), combined with [`WindowRow::absorb`] (`store/inputs.rs`).
        #[derive(Debug, Clone, Default, clickhouse::Row, Deserialize)]
        pub struct WindowRow {
            pub account_id: String,
            $($acc)*
            $( $(#[doc = $idoc])* pub $iname: $ity, )*
        }

        impl WindowRow {
            /// The field names, counts first.
            pub const COLUMNS: &'static [&'static str] = &["account_id", $($names)* $( stringify!($iname), )*];

            /// Each column's zero ([`WindowColumn::ZERO`]), in [`WindowRow::COLUMNS`] order.
            pub const ZEROS: &'static [&'static str] =
                &["''", $( <$cty as WindowColumn>::ZERO, )* $( <$ity as WindowColumn>::ZERO, )*];

            /// Takes in the other window query's row of the same account.
            pub fn absorb(&mut self, other: Self) {
                $( WindowColumn::absorb(&mut self.$cname, other.$cname); )*
                $( WindowColumn::absorb(&mut self.$iname, other.$iname); )*
            }
        }
    };
    ([$($acc:tt)*] [$($names:tt)*] [$($cols:tt)*] $inputs:tt ($name:ident, $ty:ty, count, $doc:literal) $($rest:tt)*) => {
        window_row!([$($acc)* #[doc = $doc] pub $name: $ty,] [$($names)* stringify!($name),] [$($cols)* ($name, $ty)] $inputs $($rest)*);
    };
    ([$($acc:tt)*] [$($names:tt)*] [$($cols:tt)*] $inputs:tt ($name:ident, $ty:ty, $kind:ident, $doc:literal) $($rest:tt)*) => {
        window_row!([$($acc)*] [$($names)*] [$($cols)*] $inputs $($rest)*);
    };
}

macro_rules! catalogue {
    (
        window_inputs { $( $(#[doc = $idoc:literal])* $iname:ident : $ity:ty, )* }
        columns { $( $name:ident : $ty:ty, $kind:ident, $doc:literal; )* }
    ) => {
        window_row!([] [] [] [$( $(#[doc = $idoc])* $iname: $ity, )*] $( ($name, $ty, $kind, $doc) )*);

        /// One row of `account_metrics`.
        #[derive(Debug, Clone, Default, clickhouse::Row, Serialize, Deserialize, PartialEq)]
        pub struct MetricsRow {
            $( #[doc = $doc] pub $name: $ty, )*
        }

        impl MetricsRow {
            /// A row with the window's counts copied and everything else empty.
            pub fn from_window(w: &WindowRow) -> Self {
                let mut m = Self { account_id: w.account_id.clone(), ..Default::default() };
                $( copy_count!($kind, m, w, $name); )*
                m
            }
        }

        /// Every column of `account_metrics`, in order.
        pub const CATALOGUE: &[Column] = &[
            $( Column { name: stringify!($name), kind: kind!($kind), doc: $doc, read: reader!($kind, $name) }, )*
        ];
    };
}

catalogue! {
    window_inputs {
        /// Sum over the 30 days of each day's distinct active users (for average DAU).
        dau_sum_30d: u64,
        /// 0 when never.
        last_seen: u32,
        last_login: u32,
        /// First day with any row (days since 1970-01-01).
        first_day: u16,
        /// Per week k = 0..=8, newest first (k = 0: the 7 complete days ending yesterday), for the
        /// baselines (`model/baseline.rs`): user-days (sum of daily active users) …
        weekly_user_days: Vec<u64>,
        /// … distinct active users …
        weekly_active_users: Vec<u64>,
        /// … logins …
        weekly_logins: Vec<u64>,
        /// … distinct features used …
        weekly_features: Vec<u64>,
        /// … and records.
        weekly_records: Vec<u64>,
        /// User-days of the 3 complete days ending yesterday, and of the same 3 weekdays k weeks before.
        recent_user_days: Vec<u64>,
        /// The ids of the account's users with activity in the 64 days, and …
        user_ids: Vec<String>,
        /// … their activity masks in the same order (bit 63: the pass's day; `model/people.rs`).
        user_masks: Vec<u64>,
    }
    columns {
        account_id: String, column, "the customer account";
        as_of: u16, column, "the day the windows end on (ClickHouse `Date`)";
        computed_at: u32, column, "when computed";
        lifecycle_stage: Stage, column, "`onboarding` (first 90 days after `contract_start`, or after first seen), `renewal` (90 days or less before `renewal_date`, or past it), else `growth` (boundaries in config `[lifecycle]`)";
        days_since_start: Option<i32>, column, "days since `contract_start` (NULL when unknown)";
        days_to_renewal: Option<i32>, metric, "days until `renewal_date` (NULL when unknown)";
        plan: String, column, "the account's `plan` trait";
        csm_owner: String, column, "the account's CSM (`csm` trait)";
        seats: Option<u32>, column, "licensed seats (`seats` trait)";
        active_users_1d: u64, count, "distinct users with a login, feature use or data event on `as_of`";
        active_users_7d: u64, count, "the same over 7 days";
        active_users_30d: u64, count, "the same over 30 days";
        active_users_prev_7d: u64, count, "the same over the previous 7 days";
        active_users_prev_30d: u64, count, "the same over the previous 30 days";
        active_users_change_7d: Option<f64>, metric, "change in % vs the previous 7 days (NULL without a previous base)";
        active_users_change_30d: Option<f64>, metric, "change in % vs the previous 30 days (NULL without a previous base, and until the book's history covers 60 days†)";
        logins_7d: u64, count, "logins in 7 days";
        logins_30d: u64, count, "logins in 30 days";
        login_users_7d: u64, count, "distinct users who logged in, 7 days";
        login_users_30d: u64, count, "distinct users who logged in, 30 days";
        events_7d: u64, count, "events of every kind, 7 days";
        events_prev_7d: u64, count, "events of every kind, the previous 7 days";
        events_change_7d: Option<f64>, metric, "change in % of events vs the previous 7 days";
        events_30d: u64, count, "events of every kind, 30 days";
        events_per_active_user_7d: Option<f64>, metric, "depth of use: events ÷ active users, 7 days";
        features_used_7d: u64, count, "distinct features used, 7 days";
        features_used_30d: u64, count, "distinct features used, 30 days";
        feature_breadth_30d: Option<f64>, metric, "features used ÷ the catalogue (config `metrics.feature_catalogue`, else every feature any account used in the 64 days ending on `as_of`); NULL until the book's history covers 30 days†";
        records_30d: u64, count, "data records accumulated in 30 days (value / ROI)";
        records_prev_30d: u64, count, "the same, the previous 30 days";
        records_change_30d: Option<f64>, metric, "change in % of records vs the previous 30 days (NULL until the book's history covers 60 days†)";
        bytes_30d: u64, count, "data bytes accumulated in 30 days";
        bytes_prev_30d: u64, count, "the same, the previous 30 days";
        bytes_change_30d: Option<f64>, metric, "change in % of bytes vs the previous 30 days (NULL until the book's history covers 60 days†)";
        stickiness_30d: Option<f64>, metric, "average daily active users over 30 days ÷ 30-day active users (NULL until the book's history covers 30 days†)";
        seat_utilisation: Option<f64>, metric, "30-day active users ÷ licensed `seats` (NULL until the book's history covers 30 days†)";
        active_user_days_7d: u64, metric, "user-days in the 7 complete days ending yesterday: the sum of each day's active users (how much the product is used, not only by how many)";
        active_user_days_baseline: Option<f64>, metric, "the account's usual week of user-days: the median of up to 8 complete weeks before the current one (NULL with fewer than 3 weeks of history)";
        active_user_days_vs_baseline: Option<f64>, metric, "`active_user_days_7d` vs its baseline, in % (−30 = 30 % below the usual)";
        active_user_days_z: Option<f64>, metric, "how unusual `active_user_days_7d` is for this account: its distance from the baseline in units of the account's own week-to-week spread (robust: 1.4826 × MAD of the earlier weeks, at least √baseline); −2 = unusually low";
        active_user_days_3d_vs_baseline: Option<f64>, metric, "user-days of the 3 complete days ending yesterday vs the same three weekdays of the earlier weeks (median), in %";
        active_user_days_momentum: Option<f64>, metric, "`active_user_days_3d_vs_baseline` − `active_user_days_vs_baseline`, in points: below 0 the fall is steepening (a slide goes −5 to −20, a sudden stop or the first days of a holiday −40 and lower), above 0 use is coming back";
        active_user_days_3d_z: Option<f64>, metric, "the same 3 days in units of their own spread (as `active_user_days_z`)";
        active_users_baseline: Option<f64>, metric, "the usual weekly active users (median of the earlier weeks)";
        active_users_vs_baseline: Option<f64>, metric, "weekly active users of the 7 complete days ending yesterday vs the usual, in %";
        logins_baseline: Option<f64>, metric, "the usual weekly logins";
        logins_vs_baseline: Option<f64>, metric, "logins of the 7 complete days ending yesterday vs the usual, in %";
        features_used_baseline: Option<f64>, metric, "the usual number of distinct features used in a week";
        features_used_vs_baseline: Option<f64>, metric, "distinct features used in the 7 complete days ending yesterday vs the usual, in %";
        records_baseline: Option<f64>, metric, "the usual weekly records imported";
        records_vs_baseline: Option<f64>, metric, "records of the 7 complete days ending yesterday vs the usual, in %";
        baseline_weeks: Option<u8>, column, "how many earlier weeks the baselines are the median of (NULL: under 3 weeks of history, no baseline)";
        last_seen: Option<u32>, column, "last activity (NULL = never)";
        last_login: Option<u32>, column, "last login (NULL = never)";
        days_since_last_activity: Option<u32>, metric, "recency of any activity (NULL = never)";
        days_since_last_login: Option<u32>, metric, "recency of logins (NULL = never)";
        latest_nps: Option<u8>, metric, "the last NPS answer";
        avg_csat_90d: Option<f64>, metric, "mean CSAT of the answers of the 90 UTC days ending on `as_of`";
        open_tickets: u64, metric, "tickets whose latest status is `opened`";
        health_score: Option<f64>, metric, "0–100 (see below)";
        health_band: String, column, "`red` (< 40) / `yellow` / `green` (≥ 70)";
        health_deployment: Option<f64>, column, "component, 0–100 (NULL = no input, weight shared by the others)";
        health_adoption: Option<f64>, column, "component, 0–100";
        health_trend: Option<f64>, column, "component, 0–100";
        health_value: Option<f64>, column, "component, 0–100";
        health_experience: Option<f64>, column, "component, 0–100";
        health_weakest: String, column, "the component that pulls the score down most";
        health_cap: String, column, "why the score is capped, if it is: `inactive` (no activity for `health.inactive_red_days`: red) or `falling_usage` (user-days `health.falling_usage_pct` or more below the usual: at most yellow)";
        health_score_14d_ago: Option<f64>, column, "the health score 14 days before `as_of` (from `account_health_daily`)";
        health_change_14d: Option<f64>, metric, "health points gained (+) or lost (−) in 14 days";
        regular_users: u64, metric, "users active in at least 6 of every 8 weeks of their history before their latest absence (docs/SIGNAL.md#users)";
        regular_users_lapsed: u64, metric, "regular users absent far longer than their own weekday habit makes likely (under a 1 in 1,000 chance, and at least 5 complete days), not counting a group away together";
        regular_users_lapsed_pct: Option<f64>, metric, "`regular_users_lapsed` ÷ `regular_users`, in % (NULL without regular users)";
        regular_users_lapsed_long: u64, metric, "lapsed regular users (as `regular_users_lapsed`) gone 12 complete days or more: longer than most people's leave, which comes in blocks of one or two weeks";
        lapsed_users: String, column, "who has lapsed, longest gone first: `user (Name <email>, N days)` with the name and email of their identify traits where known, else `user (N days)`; at most 5 named";
        users_away_together: u64, metric, "regular users away as a group: at least 3 and 30 % of the regular users absent 2–14 days and last seen within 2 days of each other while the others came in as usual (a team's holiday, an offsite) — each absence unlikely under its own habit, or 40 % of them gone together for 3 days or more where their habits make that many far from likely (part-timers) — and with them those last seen with the group whose sparser habit does not yet make the absence unlikely (who count towards the 30 % when that many absent together is under 1 in 100,000): not lapsed. Only after a usual week (the team in on at least 90 % of its expected days in the 7 before the group was last seen: a fade is no group); members still away after 14 days count towards it while as many of it are back";
        champion: String, column, "the heaviest user (most active days in the 8 weeks before the current one; one gone 12 days or more is weighed by the share of days they came in before they went)";
        champion_days_absent: Option<u32>, metric, "complete days since the champion was last seen (0: yesterday or today)";
        champion_lapsed: Option<u8>, metric, "1 when the champion is a lapsed regular user (as above), else 0; NULL without a champion";
        new_users_7d: u64, metric, "users first seen in the 7 days ending on `as_of` (0 while the account is under 8 days old)";
        decline_evidence: Option<f64>, metric, "the decline detector's statistic: a one-sided CUSUM of Poisson log-likelihood ratios of daily active users against each weekday's usual in the 4 weeks before its 28-day run (7 ≈ odds of 1,000 to 1 that use fell to 70 % of the usual, or to half of it, whichever is likelier), each day's divided by how much more those 4 weeks swung than chance when that is 1.5 times or more (a seasonal account); NULL under 5 weeks of history";
        silent_days: u64, metric, "complete days ending yesterday on which nobody was active (0: someone came in yesterday); the pass's own day is not complete and does not count, where `days_since_last_activity` counts from the last event, today's included";
        silence_evidence: Option<f64>, metric, "how unlikely the account's current silence is by chance: when nobody has come in on the complete days ending yesterday, the active user-days each weekday's usual (the 4 weeks before the silence) expected on them, = −ln of the Poisson chance of none (6 ≈ 1 in 400); book-wide closures and days usually under half a user count for nothing; 0 until 3 such days are silent; NULL without 4 weeks of history before the silence";
        stopped_days: Option<u32>, metric, "working days in a row, ending yesterday, on which the account's active users were at most a quarter of their weekday's usual (the 4 weeks before the last 14 days, or the 2–3 whole weeks a younger history holds before them): a stop, trickle and all. Weekends (weekdays usually under a quarter of the busiest) and days usually under half a user neither count nor end the run, so an account's own closure of two working days never reaches 3; a book-wide closure counts only when nobody at all came in; NULL under 3 weeks of history";
        decline_started: Option<u16>, column, "the day the detector's current accumulation began (NULL when `decline_evidence` is 0)";
        decline_score: Option<f64>, metric, "the decline score: the probability, 0–1, that the account is in a decline that has begun, from a tree ensemble over this row's complete-day metrics (the detector, the people metrics, the baselines) trained on books whose truth is known (docs/SIGNAL.md#the-decline-score); NULL without `active_user_days_baseline`";
        book_closures_3d: u8, metric, "book-wide closures among the 3 complete days ending yesterday (as `book_closures_7d`), for rules on the 3-day window";
        book_closures_7d: u8, metric, "book-wide closures (a public holiday: the whole book's active users at most half that weekday's usual; a fifth in a book of 8–19 accounts, none under 8) among the 7 complete days ending yesterday; the detector and the lapse statistic skip those days, a 7-day window cannot";
        group_away_days_7d: u8, metric, "days among the 7 complete days ending yesterday on which regular users were away as a group (as `users_away_together`, which counts those away now): a team's week away lowers a 7-day window for a week after it is back, and rules on the window read it as no decline";
    }
}

/// A metric a rule may name, resolved once from its name when the rule file is loaded.
#[derive(Debug, Clone, Copy)]
pub struct Metric(&'static Column);

impl PartialEq for Metric {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Metric {
    /// The rule-visible metric called `name`.
    pub fn named(name: &str) -> Option<Self> {
        CATALOGUE.iter().find(|c| c.name == name && c.read.is_some()).map(Metric)
    }

    /// Every rule-visible metric, in catalogue order.
    pub fn all() -> impl Iterator<Item = Self> {
        CATALOGUE.iter().filter(|c| c.read.is_some()).map(Metric)
    }

    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Its value for `m`; `None` when the account gives no input.
    pub fn read(self, m: &MetricsRow) -> Option<f64> {
        self.0.read.and_then(|f| f(m))
    }
}

/// The `account_metrics` table of docs/analysts.md, rendered from the catalogue.
pub fn doc_table() -> String {
    let mut out = String::from("| column | rules | meaning |\n|---|---|---|\n");
    for c in CATALOGUE {
        let rules = if c.read.is_some() { "✓" } else { "" };
        out.push_str(&format!("| `{}` | {rules} | {} |\n", c.name, c.doc));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_copied_and_rules_read_them() {
        let w = WindowRow { account_id: "acme".into(), active_users_7d: 4, bytes_prev_30d: 9, ..Default::default() };
        let m = MetricsRow::from_window(&w);
        assert_eq!((m.account_id.as_str(), m.active_users_7d, m.bytes_prev_30d), ("acme", 4, 9));
        assert_eq!(Metric::named("active_users_7d").unwrap().read(&m), Some(4.0));
        assert_eq!(Metric::named("seat_utilisation").unwrap().read(&m), None);
        assert!(Metric::named("plan").is_none(), "a column, not a metric");
    }

    #[test]
    fn the_window_row_lists_the_counts_then_the_inputs() {
        assert_eq!(WindowRow::COLUMNS.first(), Some(&"account_id"));
        assert_eq!(
            &WindowRow::COLUMNS[WindowRow::COLUMNS.len() - 12..WindowRow::COLUMNS.len() - 8],
            ["dau_sum_30d", "last_seen", "last_login", "first_day"]
        );
        let counts = CATALOGUE.iter().filter(|c| c.kind == Kind::Count).count();
        assert_eq!(WindowRow::COLUMNS.len(), 1 + counts + 12);
    }

    #[test]
    fn the_analysts_guide_shows_the_catalogue() {
        let guide = include_str!("../../../docs/analysts.md");
        assert!(guide.contains(&doc_table()), "docs/analysts.md is stale: paste `aggregator metrics-doc` into it");
    }
}
