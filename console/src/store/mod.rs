//! What the console reads from ClickHouse, and the `alert_actions` rows it writes. Every value
//! that comes from a customer (account ids, search text) is bound as a query parameter, never
//! pasted into SQL; sort keys come from a fixed list.

use clickhouse::Row;
use serde::Deserialize;

mod queries;

pub use queries::Store;

/// Rows per book page: the book is paged so a page costs the same for 100 or 100,000 accounts.
pub const PAGE_ROWS: u64 = 100;

/// How the book is sorted (a fixed list: the key never reaches SQL as text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Lowest health first: the accounts that need a CSM first.
    #[default]
    Health,
    Account,
    Renewal,
    Alerts,
    ActiveUsers,
}

impl Sort {
    pub const ALL: [(Sort, &'static str, &'static str); 5] = [
        (Sort::Health, "health", "health (worst first)"),
        (Sort::Account, "account", "account"),
        (Sort::Renewal, "renewal", "renewal (soonest first)"),
        (Sort::Alerts, "alerts", "open alerts"),
        (Sort::ActiveUsers, "users", "active users vs usual"),
    ];

    pub fn parse(s: &str) -> Self {
        Self::ALL.iter().find(|(_, key, _)| *key == s).map(|(sort, _, _)| *sort).unwrap_or_default()
    }

    pub fn key(self) -> &'static str {
        Self::ALL.iter().find(|(s, _, _)| *s == self).map(|(_, k, _)| *k).unwrap_or("health")
    }

    pub(crate) fn order_by(self) -> &'static str {
        match self {
            Self::Health => "isNull(score), score, account_id",
            Self::Account => "account_id",
            Self::Renewal => "isNull(days_to_renewal), days_to_renewal, account_id",
            Self::Alerts => "top_severity DESC, open_alerts DESC, isNull(score), score, account_id",
            Self::ActiveUsers => "isNull(wau_vs_usual), wau_vs_usual, account_id",
        }
    }
}

/// The book's filters, as the page's query string gives them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookFilter {
    /// Only this CSM's accounts (owner, case-insensitive).
    pub owner: Option<String>,
    pub band: Option<String>,
    pub stage: Option<String>,
    /// Account ids containing this text (case-insensitive).
    pub search: Option<String>,
    pub sort: Sort,
    pub page: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct BookRow {
    pub account_id: String,
    pub stage: String,
    pub owner: String,
    pub plan: String,
    pub score: Option<f64>,
    pub band: String,
    pub days_to_renewal: Option<i32>,
    pub wau: u64,
    pub wau_usual: Option<f64>,
    pub wau_vs_usual: Option<f64>,
    pub open_alerts: u64,
    /// 3 critical, 2 warning, 1 info, 0 none.
    pub top_severity: u8,
}

/// A page of the book and the counts of the whole filtered book.
#[derive(Debug, Clone, Default)]
pub struct BookPage {
    pub rows: Vec<BookRow>,
    pub total: u64,
    /// Accounts per band (green, yellow, red, none) of the filtered book.
    pub bands: Vec<(String, u64)>,
}

/// Episodes the inbox lists at most (the rest are counted): the queue's head is what gets worked.
pub const INBOX_ROWS: u64 = 200;

/// What the inbox lists: the rules' open episodes no CSM closed; only `user`'s (owner or
/// assignee, case-insensitive) when given; the ones snoozed past `now` only when `show_snoozed`.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub user: Option<String>,
    pub show_snoozed: bool,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The head of the inbox (at most [`INBOX_ROWS`], most severe and newest first) and its counts.
#[derive(Debug, Clone, Default)]
pub struct InboxPage {
    pub alerts: Vec<AlertView>,
    /// Episodes listed under the filter, of which `alerts` are the first.
    pub total: u64,
    /// Snoozed episodes in scope left out of the list (0 when they are shown).
    pub snoozed_hidden: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub(crate) struct InboxCounts {
    pub(crate) in_scope: u64,
    pub(crate) snoozed: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub(crate) struct BandCount {
    pub(crate) band: String,
    pub(crate) accounts: u64,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct ScorePoint {
    pub account_id: String,
    /// Days since 1970-01-01.
    pub day: u16,
    pub score: Option<f64>,
}

/// An episode as the inbox and the timeline show it: its latest rule record and its workflow.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct AlertView {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    pub fired_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub csm_owner: String,
    pub reason: String,
    pub metrics: String,
    /// Whether the rules still hold it open (no `resolved` record yet).
    pub open: u8,
    pub acknowledged_by: String,
    pub assignee: String,
    /// Seconds since the epoch; 0: not snoozed.
    pub snoozed_until: u32,
    pub snooze_note: String,
    pub closed: u8,
    pub close_reason: String,
}

/// One entry of an account's alert timeline: a rule record or a CSM action.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct TimelineRow {
    pub alert_id: String,
    pub rule_id: String,
    pub what: String,
    pub by: String,
    pub at: u32,
    pub detail: String,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub struct OutcomeRow {
    pub outcome: String,
    pub occurred_at: u32,
    pub source: String,
}

/// The firing record of an episode: what a lifecycle record repeats.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct FiringRow {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    pub severity: String,
    pub fired_at: u32,
    pub lifecycle_stage: String,
    pub health_score: Option<f64>,
    pub metrics: String,
    pub csm_owner: String,
    pub reason: String,
    pub open: u8,
}

#[derive(Debug, Clone, Row, Deserialize)]
pub(crate) struct TraitsRow {
    pub(crate) traits: String,
}
