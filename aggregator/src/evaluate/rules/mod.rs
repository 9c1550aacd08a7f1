//! Churn-risk rules from a TOML file: what to watch, for which lifecycle stages, how long it
//! must hold, how loud it is. Each rule looks at one account's [`MetricsRow`] and either finds a
//! risk — with the values it used and a sentence a CSM understands — or not.
//!
//! ```toml
//! [[rule]]
//! id = "usage_falling"
//! severity = "warning"                  # info | warning | critical
//! stages = ["growth", "renewal"]        # default: every stage
//! min_account_age_days = 30             # default 0 (age from contract_start)
//! for = "3d"                            # how long it must hold before firing; default: at once
//! cooldown = "7d"                       # no new episode within this after one resolved
//! auto_resolve = true                   # default true
//! when = { kind = "change", metric = "active_users", window = "7d", at_most_pct = -50, min_base = 3 }
//! ```
//! Condition kinds: `threshold` (metric, op `<` `<=` `>` `>=`, value), `change` (metric, window,
//! at_most_pct, min_base), `baseline` (metric, window 7d | 3d, at_most_pct, at_least_pct,
//! min_baseline: vs the account's own usual), `inactivity` (since = `login` | `activity`, days),
//! `all` / `any` (of): an `any` says the first of its branches that holds, with the values of all
//! that hold.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use schemas::alert::Severity;
use schemas::runtime::format::number;
use serde::Deserialize;

use crate::model::{epoch_day_plus, Metric, MetricsRow, Stage};
use crate::AggregatorError;

mod parse;

#[cfg(test)]
use parse::parse_duration;
pub use parse::parse_rules;

/// The rule set shipped with uptake (deploy/rules.toml), used when no file is configured.
pub const DEFAULT_RULES: &str = include_str!("../../../../deploy/rules.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
}

impl Op {
    fn holds(self, v: f64, t: f64) -> bool {
        match self {
            Self::Below => v < t,
            Self::AtMost => v <= t,
            Self::Above => v > t,
            Self::AtLeast => v >= t,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::Below => "below",
            Self::AtMost => "at most",
            Self::Above => "above",
            Self::AtLeast => "at least",
        }
    }
}

/// What an inactivity condition measures from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Since {
    Login,
    Activity,
}

impl Since {
    fn metric(self) -> Metric {
        let name = match self {
            Self::Login => "days_since_last_login",
            Self::Activity => "days_since_last_activity",
        };
        Metric::named(name).expect("recency metrics are in the catalogue")
    }
}

/// A validated condition; its metrics are resolved from their names when the file is loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold {
        metric: Metric,
        op: Op,
        value: f64,
    },
    /// `current`'s change (`change`) at most `at_most_pct`, with at least `min_base` in the
    /// previous window (`previous`, when the catalogue has it).
    Change {
        name: String,
        window: String,
        current: Metric,
        previous: Option<Metric>,
        change: Metric,
        at_most_pct: f64,
        min_base: f64,
    },
    /// `change` (the last complete `window` vs the account's usual, in %) at most `at_most_pct`
    /// and, when set, at least `at_least_pct` (a band: "falling, but not stopped"), on accounts
    /// whose usual week (`usual`) is at least `min_baseline` (docs/SIGNAL.md#baselines).
    Baseline {
        name: String,
        window: String,
        usual: Metric,
        change: Metric,
        at_most_pct: f64,
        at_least_pct: Option<f64>,
        min_baseline: f64,
    },
    /// No login (or no activity) for at least `days`.
    Inactivity {
        since: Since,
        days: u32,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    /// Empty: every stage.
    pub stages: Vec<Stage>,
    pub min_account_age_days: u32,
    /// How long the condition must have held continuously before an episode fires (`for`);
    /// zero: on the first pass it holds.
    pub for_duration: Duration,
    /// How long the condition must stay false before an open episode resolves (default: at
    /// once), so a declining account whose numbers flicker keeps one open alert.
    pub resolve_after: Duration,
    pub cooldown: Duration,
    pub auto_resolve: bool,
    pub when: Condition,
    /// Keeps an open episode from counting a day as quiet (`hold_while`): a slide outlasts the
    /// signs that first showed it — the usual it is measured against sinks towards the slide,
    /// the leavers' absences stop being unusual — and an alert that resolved while the account
    /// was still down would leave the CSM with nothing to work. Never fires an episode.
    pub hold_while: Option<Condition>,
    /// Resolves an open episode whose condition (and `hold_while`) no longer holds at once,
    /// without waiting for `resolve_after` (`resolve_when`): the account is plainly back. The
    /// wait is for a decline whose numbers flicker; an account whose week is back at its usual
    /// with no shortfall in evidence has not flickered, it has recovered — kept open for a week,
    /// a colleague's leave that is over stays on the CSM's desk (b8: 5 healthy accounts in 125
    /// open alerts at the end). Never fires an episode, never closes one whose condition holds.
    pub resolve_when: Option<Condition>,
}

/// The rules, loaded and validated once at start (docs/architecture.md#rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses and validates a rule file's text; every error names the rule and the field.
    pub fn parse(text: &str) -> Result<Self, AggregatorError> {
        Ok(Self { rules: parse_rules(text)? })
    }

    /// Reads and validates the rule file at `path`, or the shipped default set.
    pub fn load(path: Option<&Path>) -> Result<Self, AggregatorError> {
        match path {
            None => Self::parse(DEFAULT_RULES),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| AggregatorError::Config {
                    key: "rules_file".into(),
                    reason: format!("{}: {e}", p.display()),
                })?;
                Self::parse(&text)
            }
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// What a condition found: the values it read and a sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub metrics: BTreeMap<String, f64>,
    pub reason: String,
}

fn label(metric: &str, window: &str) -> String {
    match (metric, window) {
        ("active_users", "7d") => "Weekly active users".into(),
        ("active_users", "30d") => "Monthly active users".into(),
        ("latest_nps", _) => "Latest NPS".into(),
        ("active_user_days", _) => "Active user-days".into(),
        ("active_users", "") => "Weekly active users".into(),
        ("records", "") => "Records imported".into(),
        ("avg_csat_90d", _) => "Average CSAT (90 days)".into(),
        ("regular_users_lapsed_long", _) => "Regular users gone 12 days or more".into(),
        ("silence_evidence", _) => "Active user-days expected in the silence".into(),
        ("active_user_days_baseline", _) => "Usual active user-days a week".into(),
        ("stopped_days", _) => "Working days in a row at under a quarter of the usual".into(),
        _ => {
            let words = metric.replace('_', " ");
            let mut c = words.chars();
            let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
            if window.is_empty() {
                format!("{first}{}", c.as_str())
            } else {
                format!("{first}{} ({window})", c.as_str())
            }
        }
    }
}

/// Who and since when, for the metrics about people and the detector: a CSM acts on names and
/// dates, not on a count.
fn who(metric: &str, m: &MetricsRow) -> String {
    match metric {
        "regular_users_lapsed" | "regular_users_lapsed_pct" if !m.lapsed_users.is_empty() => {
            format!(": {} of {} regular users gone: {}", m.regular_users_lapsed, m.regular_users, m.lapsed_users)
        }
        "champion_days_absent" | "champion_lapsed" if !m.champion.is_empty() => match m.champion_days_absent {
            Some(days) => format!(": the heaviest user, {}, last seen {days} days ago", m.champion),
            None => String::new(),
        },
        "silence_evidence" if m.silent_days > 0 => {
            // Complete days, ending the day before the pass's: someone may have come in since,
            // on the pass's own day, so the sentence names the days it read. (At most 63: the
            // window holds 64 days.)
            let days = m.silent_days.min(63) as u16;
            let (from, to) = (epoch_day_plus(m.as_of.saturating_sub(days)), epoch_day_plus(m.as_of.saturating_sub(1)));
            format!(": nobody in from {from} to {to} ({days} days)")
        }
        "decline_evidence" => match m.decline_started {
            Some(day) => format!(": use below its usual since {}", epoch_day_plus(day)),
            None => String::new(),
        },
        _ => String::new(),
    }
}

impl Condition {
    /// The finding when the condition holds for `m`; `None` when it does not, or when an input
    /// it needs is missing (a rule never fires on data the account does not send).
    pub fn check(&self, m: &MetricsRow) -> Option<Finding> {
        self.find(m).map(Found::finish)
    }

    fn find(&self, m: &MetricsRow) -> Option<Found> {
        match self {
            Self::All(parts) => {
                let found = parts.iter().map(|c| c.find(m)).collect::<Option<Vec<_>>>()?;
                Some(merge(found))
            }
            // The sentence is the first branch that holds (the first that says more than a
            // qualifier): two branches that both hold mostly read the same values, and a CSM
            // reads one sentence. Every holding branch's values still go into the metrics.
            Self::Any(parts) => {
                let mut found: Vec<Found> = parts.iter().filter_map(|c| c.find(m)).collect();
                let said = found.iter().position(|f| !qualifier(f)).unwrap_or(0);
                let mut out = (!found.is_empty()).then(|| found.remove(said))?;
                for f in found {
                    for (metric, value) in f.metrics {
                        out.metrics.entry(metric).or_insert(value);
                    }
                }
                Some(out)
            }
            leaf => leaf.leaf(m).map(|f| Found { metrics: f.metrics, clauses: vec![f.reason] }),
        }
    }

    /// What a single condition (not a combination) finds, in its own words.
    fn leaf(&self, m: &MetricsRow) -> Option<Finding> {
        match self {
            Self::Threshold { metric, op, value } => {
                let v = metric.read(m)?;
                op.holds(v, *value).then(|| Finding {
                    metrics: BTreeMap::from([(metric.name().to_owned(), v)]),
                    reason: format!(
                        "{} is {} ({} {}){}",
                        label(metric.name(), ""),
                        number(v),
                        op.words(),
                        number(*value),
                        who(metric.name(), m)
                    ),
                })
            }
            Self::Change { name, window, current, previous, change: change_metric, at_most_pct, min_base } => {
                let cur = current.read(m)?;
                let prev = previous.and_then(|p| p.read(m));
                let change = change_metric.read(m)?;
                if change > *at_most_pct || prev.is_some_and(|p| p < *min_base) {
                    return None;
                }
                let mut metrics =
                    BTreeMap::from([(current.name().to_owned(), cur), (change_metric.name().to_owned(), change)]);
                let span = window.trim_end_matches('d');
                let reason = match prev {
                    Some(p) => {
                        metrics.insert(previous.expect("read above").name().to_owned(), p);
                        let verb = if change < 0.0 { "fell" } else { "rose" };
                        format!(
                            "{} {verb} {:.0} % ({} → {}) vs the previous {span} days",
                            label(name, window),
                            change.abs(),
                            number(p),
                            number(cur)
                        )
                    }
                    None => format!("{} changed {:.0} % vs the previous {span} days", label(name, window), change),
                };
                Some(Finding { metrics, reason })
            }
            Self::Baseline { name, window, usual, change, at_most_pct, at_least_pct, min_baseline } => {
                let base = usual.read(m)?;
                let c = change.read(m)?;
                if base < *min_baseline || c > *at_most_pct || at_least_pct.is_some_and(|low| c < low) {
                    return None;
                }
                let span = window.trim_end_matches('d');
                // The weekly usual in numbers; a 3-day window is compared with the same weekdays
                // of earlier weeks, whose usual is not a number worth a CSM's attention.
                let numbers = if span == "7" {
                    let now = base * (1.0 + c / 100.0);
                    format!(
                        " ({} vs a usual {} a week)",
                        number((now * 10.0).round() / 10.0),
                        number((base * 10.0).round() / 10.0)
                    )
                } else {
                    String::new()
                };
                Some(Finding {
                    metrics: BTreeMap::from([(usual.name().to_owned(), base), (change.name().to_owned(), c)]),
                    reason: format!(
                        "{} {:.0} % below this account's usual over the last {span} days{numbers}",
                        label(name, ""),
                        -c
                    ),
                })
            }
            Self::Inactivity { since: from, days } => {
                let login = *from == Since::Login;
                let what = if login { "login" } else { "activity" };
                let metric = from.metric();
                match metric.read(m) {
                    Some(d) if d >= *days as f64 => Some(Finding {
                        metrics: BTreeMap::from([(metric.name().to_owned(), d)]),
                        reason: format!("No {what} for {} days", number(d)),
                    }),
                    Some(_) => None,
                    // Never: only a login rule can say so (activity always has a first event).
                    None => login.then(|| Finding { metrics: BTreeMap::new(), reason: "No login recorded yet".into() }),
                }
            }
            // Combinations are `find`'s.
            Self::All(_) | Self::Any(_) => None,
        }
    }
}

/// What a condition found, before it becomes one sentence: the values it read, and the words
/// of each single condition that speaks, in order. Kept apart until the end so that people
/// named twice are named once however the conditions nest.
struct Found {
    metrics: BTreeMap<String, f64>,
    clauses: Vec<String>,
}

impl Found {
    /// One sentence: later clauses read as its continuation.
    fn finish(self) -> Finding {
        let clauses: Vec<String> = self
            .clauses
            .into_iter()
            .enumerate()
            .map(|(i, c)| match c.chars().next() {
                Some(first) if i > 0 => first.to_lowercase().collect::<String>() + &c[first.len_utf8()..],
                _ => c,
            })
            .collect();
        Finding { metrics: self.metrics, reason: clauses.join(" and ") }
    }
}

/// Whether a finding only qualifies the others (how unusual, how steep, nobody away as a group,
/// no public holiday in the window, how large the account's usual week is) and so stays out of
/// the sentence a CSM reads; its values are still in the alert's metrics.
fn qualifier(f: &Found) -> bool {
    !f.metrics.is_empty()
        && f.metrics.keys().all(|k| {
            k.ends_with("_z")
                || k.ends_with("_momentum")
                || k == "users_away_together"
                || k == "group_away_days_7d"
                || k == "active_user_days_baseline"
                || k.starts_with("book_closures_")
        })
}

fn merge(found: Vec<Found>) -> Found {
    let mut metrics = BTreeMap::new();
    let mut clauses: Vec<String> = Vec::new();
    let all_qualifiers = found.iter().all(qualifier);
    for f in found {
        let said = all_qualifiers || !qualifier(&f);
        metrics.extend(f.metrics);
        if !said {
            continue;
        }
        for mut c in f.clauses {
            // People named by two conditions (the lapsed count and their share, the champion's
            // lapse and its length) are named once: the list is the long part of the sentence.
            if let Some(at) = c.find(": ") {
                if clauses.iter().any(|said| said.ends_with(&c[at..])) {
                    c.truncate(at);
                }
            }
            clauses.push(c);
        }
    }
    Found { metrics, clauses }
}

impl Condition {
    fn metrics(&self, out: &mut Vec<Metric>) {
        match self {
            Self::Threshold { metric, .. } => out.push(*metric),
            Self::Change { current, previous, change, .. } => {
                out.extend([Some(*current), *previous, Some(*change)].into_iter().flatten())
            }
            Self::Baseline { usual, change, .. } => out.extend([*usual, *change]),
            Self::Inactivity { since, .. } => out.push(since.metric()),
            Self::All(parts) | Self::Any(parts) => parts.iter().for_each(|p| p.metrics(out)),
        }
    }

    /// The current values of every metric the condition reads (for resolved alerts).
    pub fn values(&self, m: &MetricsRow) -> BTreeMap<String, f64> {
        let mut metrics = Vec::new();
        self.metrics(&mut metrics);
        metrics.into_iter().filter_map(|metric| metric.read(m).map(|v| (metric.name().to_owned(), v))).collect()
    }

    /// The condition in words, for people reading the rule set (the console's Rules page).
    pub fn describe(&self) -> String {
        match self {
            Self::Threshold { metric, op, value } => format!("{} {} {}", metric.name(), op.words(), number(*value)),
            Self::Change { name, window, at_most_pct, min_base, .. } => format!(
                "{name} over {window} changed by at most {} % vs the previous {window} (from at least {})",
                number(*at_most_pct),
                number(*min_base)
            ),
            Self::Baseline { name, window, at_most_pct, at_least_pct, min_baseline, .. } => {
                let floor = at_least_pct.map(|p| format!(" and at least {} %", number(p))).unwrap_or_default();
                format!(
                    "{name} over {window} at most {} %{floor} vs the account's usual (usual at least {})",
                    number(*at_most_pct),
                    number(*min_baseline)
                )
            }
            Self::Inactivity { since, days } => {
                let what = if *since == Since::Login { "login" } else { "activity" };
                format!("no {what} for at least {days} days")
            }
            Self::All(parts) => parts.iter().map(|p| format!("({})", p.describe())).collect::<Vec<_>>().join(" and "),
            Self::Any(parts) => parts.iter().map(|p| format!("({})", p.describe())).collect::<Vec<_>>().join(" or "),
        }
    }
}

impl Rule {
    /// What the rule finds on `m` (`None`: it does not hold, or does not apply), given whether
    /// its episode on the account is `open`: an open one also holds while `hold_while` does.
    pub fn check(&self, m: &MetricsRow, open: bool) -> Option<Finding> {
        if !self.applies(m) {
            return None;
        }
        self.when.check(m).or_else(|| {
            let hold = self.hold_while.as_ref().filter(|_| open)?;
            hold.check(m).map(|f| Finding { reason: format!("Still: {}", f.reason), ..f })
        })
    }

    /// Whether `resolve_when` holds on `m` (its sentence): an open episode clear of its
    /// condition resolves now.
    pub fn recovered(&self, m: &MetricsRow) -> Option<String> {
        self.resolve_when.as_ref()?.check(m).map(|f| f.reason)
    }

    /// Whether the rule applies to `m` at all: its stage and the account's age.
    pub fn applies(&self, m: &MetricsRow) -> bool {
        let stage_ok = self.stages.is_empty() || self.stages.contains(&m.lifecycle_stage);
        let age_ok =
            self.min_account_age_days == 0 || m.days_since_start.is_some_and(|d| d >= self.min_account_age_days as i32);
        stage_ok && age_ok
    }
}

#[cfg(test)]
mod tests;
