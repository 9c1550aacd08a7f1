//! Scoring a replay against recorded outcomes: did the rules alert on the accounts that later
//! churned or contracted, how early, and how often did they bother CSMs about healthy ones?
//! Pure (no I/O), so every definition is pinned by a unit test. The method and its edge cases
//! are documented in docs/analysts.md#scoring-rules-against-outcomes.
//!
//! Definitions, per rule and for the whole rule set (`all`), over the accounts the replay evaluated:
//! - a *positive* is an account with a `churned` or `contracted` outcome dated in
//!   (from, to + horizon]; its earliest such outcome counts;
//! - a firing record on day `d` *catches* a positive when `d` is in [outcome − horizon, outcome];
//! - recall = caught / positives; precision = alerted accounts that are caught positives /
//!   alerted accounts (account level: what a CSM acts on);
//! - lead time = outcome − first catching firing day, in days (median; p90 by nearest rank);
//! - healthy accounts have no churn/contract outcome at all; alerts per healthy account-month =
//!   their firing records / (healthy accounts × days in [from, to] / 30).
//!
//! A ratio without a denominator (no positives, nothing alerted, no healthy account) is `None`
//! (JSON `null`), never 0: "nothing to measure" is not "measured as bad".

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use schemas::alert::{Alert, AlertStatus};
use schemas::outcome::Outcome;
use serde::Serialize;
use warehouse::RecordedOutcome;

use super::Replay;
use crate::evaluate::rules::RuleSet;

/// Hex SHA-256 of a rule file's text: names the rule set a stored score belongs to
/// (`backtest_scores.rules_digest`), so a reader can tell whether it is the set in force.
pub fn rules_digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The rule id under which the whole rule set is scored.
pub const ALL_RULES: &str = "all";

/// The scored backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub horizon_days: u32,
    /// Accounts evaluated on any day = positives + healthy + lost_outside.
    pub accounts: usize,
    /// Accounts with a churn/contract outcome, but none in (from, to + horizon]: neither
    /// positives nor healthy (lost before the window, or long after it).
    pub lost_outside: usize,
    /// The whole rule set (`rule_id` = "all"), then each rule in rule-file order.
    pub overall: RuleScore,
    pub rules: Vec<RuleScore>,
}

/// One rule's (or the whole set's) figures. Counts add up: positives = caught + missed;
/// alerted = true_alarms + false_alarms; renewed ≤ healthy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleScore {
    pub rule_id: String,
    pub positives: usize,
    pub caught: usize,
    pub missed: usize,
    /// Accounts with at least one firing record in [from, to].
    pub alerted: usize,
    /// Alerted accounts that are caught positives.
    pub true_alarms: usize,
    pub false_alarms: usize,
    pub healthy: usize,
    /// Healthy accounts with a `renewed` outcome.
    pub renewed: usize,
    /// Firing records on healthy accounts.
    pub healthy_firings: usize,
    pub recall: Option<f64>,
    pub precision: Option<f64>,
    /// Lead times of the caught positives, in days, ascending.
    pub lead_days: Vec<i64>,
    pub lead_days_median: Option<f64>,
    pub lead_days_p90: Option<f64>,
    pub alerts_per_healthy_account_month: Option<f64>,
}

/// Scores `replay` (over `from`..=`to`) against `outcomes` with a `horizon_days` horizon.
pub fn score(
    replay: &Replay,
    outcomes: &[RecordedOutcome],
    rules: &RuleSet,
    from: NaiveDate,
    to: NaiveDate,
    horizon_days: u32,
) -> Score {
    let horizon = chrono::Days::new(u64::from(horizon_days));
    let evaluated: BTreeSet<&str> = replay.accounts.iter().map(String::as_str).collect();
    let mut lost: BTreeSet<&str> = BTreeSet::new();
    let mut renewed: BTreeSet<&str> = BTreeSet::new();
    // The earliest loss in (from, to + horizon] per evaluated account.
    let mut positives: BTreeMap<&str, NaiveDate> = BTreeMap::new();
    for o in outcomes.iter().filter(|o| evaluated.contains(o.account_id.as_str())) {
        let account = o.account_id.as_str();
        if o.outcome == Outcome::Renewed {
            renewed.insert(account);
            continue;
        }
        lost.insert(account);
        if o.on > from && o.on <= to + horizon {
            let first = positives.entry(account).or_insert(o.on);
            *first = (*first).min(o.on);
        }
    }
    let healthy: BTreeSet<&str> = evaluated.difference(&lost).copied().collect();
    let ctx = Context {
        positives: &positives,
        healthy: &healthy,
        renewed: renewed.intersection(&healthy).count(),
        horizon,
        month_fraction: ((to - from).num_days() + 1) as f64 / 30.0,
    };
    let firings: Vec<&Alert> = replay.alerts.iter().filter(|a| a.status == AlertStatus::Firing).collect();
    let overall = ctx.rule(ALL_RULES, firings.iter().copied());
    let rules =
        rules.rules().iter().map(|r| ctx.rule(&r.id, firings.iter().copied().filter(|a| a.rule_id == r.id))).collect();
    Score {
        from,
        to,
        horizon_days,
        accounts: evaluated.len(),
        lost_outside: lost.len() - positives.len(),
        overall,
        rules,
    }
}

/// What every rule's figures are measured against.
struct Context<'a> {
    positives: &'a BTreeMap<&'a str, NaiveDate>,
    healthy: &'a BTreeSet<&'a str>,
    renewed: usize,
    horizon: chrono::Days,
    /// Days in [from, to] / 30.
    month_fraction: f64,
}

impl Context<'_> {
    fn rule<'a>(&self, rule_id: &str, firings: impl Iterator<Item = &'a Alert>) -> RuleScore {
        let mut alerted: BTreeSet<&str> = BTreeSet::new();
        let mut first_catch: BTreeMap<&str, NaiveDate> = BTreeMap::new();
        let mut healthy_firings = 0;
        for a in firings {
            let (account, day) = (a.account_id.as_str(), a.fired_at.date_naive());
            alerted.insert(account);
            if self.healthy.contains(account) {
                healthy_firings += 1;
            }
            if let Some((&key, &outcome)) = self.positives.get_key_value(account) {
                if day <= outcome && day >= outcome - self.horizon {
                    let first = first_catch.entry(key).or_insert(day);
                    *first = (*first).min(day);
                }
            }
        }
        let mut lead_days: Vec<i64> =
            first_catch.iter().map(|(account, day)| (self.positives[account] - *day).num_days()).collect();
        lead_days.sort_unstable();
        let (positives, caught) = (self.positives.len(), first_catch.len());
        let true_alarms = alerted.iter().filter(|a| first_catch.contains_key(*a)).count();
        let healthy = self.healthy.len();
        RuleScore {
            rule_id: rule_id.to_owned(),
            positives,
            caught,
            missed: positives - caught,
            alerted: alerted.len(),
            true_alarms,
            false_alarms: alerted.len() - true_alarms,
            healthy,
            renewed: self.renewed,
            healthy_firings,
            recall: ratio(caught, positives),
            precision: ratio(true_alarms, alerted.len()),
            lead_days_median: median(&lead_days),
            lead_days_p90: nearest_rank(&lead_days, 0.9),
            lead_days,
            alerts_per_healthy_account_month: (healthy > 0)
                .then(|| healthy_firings as f64 / (healthy as f64 * self.month_fraction)),
        }
    }
}

fn ratio(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// The middle value of `sorted`; the mean of the two middle ones for an even count.
fn median(sorted: &[i64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2] as f64),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0),
    }
}

/// The `q` quantile by nearest rank: the ⌈q·n⌉-th smallest value (an observed lead time).
fn nearest_rank(sorted: &[i64], q: f64) -> Option<f64> {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted.get(rank - 1).map(|v| *v as f64)
}

/// `days`, `90d` → days, for `--horizon`.
pub fn parse_days(s: &str) -> Result<u32, String> {
    s.trim().trim_end_matches('d').parse().map_err(|_| format!("{s:?} is not a number of days like 90d"))
}

impl Score {
    /// The table for people: one line for the whole rule set, then one per rule.
    pub fn table(&self) -> String {
        let o = &self.overall;
        let mut out = format!(
            "Scored backtest {} .. {}, horizon {} days: {} accounts = {} churned/contracted in the window \
             + {} healthy ({} renewed) + {} lost outside the window\n\n",
            self.from, self.to, self.horizon_days, self.accounts, o.positives, o.healthy, o.renewed, self.lost_outside
        );
        out.push_str(&format!(
            "{:<28} {:>9} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} {:>11} {:>8} {:>20}\n",
            "rule",
            "positives",
            "caught",
            "missed",
            "recall",
            "precision",
            "alerted",
            "false",
            "lead median",
            "lead p90",
            "alerts/healthy/month"
        ));
        for r in std::iter::once(o).chain(&self.rules) {
            out.push_str(&format!(
                "{:<28} {:>9} {:>6} {:>6} {:>6} {:>9} {:>7} {:>6} {:>11} {:>8} {:>20}\n",
                r.rule_id,
                r.positives,
                r.caught,
                r.missed,
                fixed(r.recall, 2),
                fixed(r.precision, 2),
                r.alerted,
                r.false_alarms,
                fixed(r.lead_days_median, 1),
                fixed(r.lead_days_p90, 1),
                fixed(r.alerts_per_healthy_account_month, 3),
            ));
        }
        out
    }
}

fn fixed(v: Option<f64>, places: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.places$}"))
}

#[cfg(test)]
mod tests;
