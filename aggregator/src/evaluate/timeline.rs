//! One timeline for the live evaluator and the backtest: when a pass sees a rule's condition in a
//! state this instance did not see it in before (holding, or clear while its episode is open), it
//! establishes from the stored history since which UTC day the condition has been in that state,
//! so `for` and `resolve_after` in days count from there, not from the pass
//! (docs/architecture.md#one-timeline).
//!
//! The history is judged exactly as a replay judges it: the account's metrics computed as of the
//! end of each earlier day ([`Evaluator::rows_on`], the backtest's own path), the rule applied to
//! them. Going back stops at the first day in the other state, at the rule's duration (further
//! back changes nothing: the duration has passed), or, for a clear, at the day its episode fired.
//!
//! Cost: only pairs whose state changed are looked at, and each (account, day) is computed once
//! per UTC day ([`Answers`]); a pass right after the previous day's end-of-day pass (a replay, a
//! health backfill) already knows that day and reads nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};

use schemas::alert::{Alert, AlertStatus};

use super::episode::{whole_days, Episodes, Lookback, Pending};
use super::rules::{Finding, Rule, RuleSet};
use super::sink::AlertSink;
use super::Evaluator;
use crate::model::{to_datetime, MetricsRow};
use crate::store::Changed;
use crate::AggregatorError;

/// The most accounts one query names in its `IN` list (a lookup, a replay, an incremental
/// pass): ClickHouse refuses a query text over `max_query_size` (256 KiB by default), and a
/// chunk of 20,000 ids, named twice in a statement, is past it.
pub const LISTED_MAX: usize = 2_000;

/// The last second of `day` (UTC): when a replay evaluates it, and the time a condition found
/// in the history of `day` is taken to have started.
pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time")).and_utc()
}

/// Which rules held for each account at the end of each earlier day (`None`: the account had no
/// history yet), as computed today; dropped when the live passes' day changes, so an answer is
/// never older than a day. Per rule: whether it held for an account without an open episode,
/// and for one with (`hold_while` too).
#[derive(Debug, Default)]
pub(super) struct Answers {
    today: Option<NaiveDate>,
    held: HashMap<(NaiveDate, String), Option<Vec<Held>>>,
}

/// Whether a rule held for an account on a day: (with no open episode, with one open).
type Held = (bool, bool);

/// One pair whose start is being established.
struct Ask {
    /// Index of the row (account) and of the rule.
    row: usize,
    rule: usize,
    holds: bool,
    lookback: Lookback,
    /// The earliest day found in the same state so far.
    start: NaiveDate,
    done: bool,
}

/// The findings of every rule on every row (`None`: the condition does not hold, or the rule
/// does not apply), by row and rule, with the episodes `episodes` has open held by `hold_while`.
pub(super) fn findings_of(rules: &RuleSet, rows: &[MetricsRow], episodes: &Episodes) -> Vec<Vec<Option<Finding>>> {
    rows.iter()
        .map(|m| rules.rules().iter().map(|r| r.check(m, episodes.is_open(&m.account_id, &r.id))).collect())
        .collect()
}

/// The pairs of `rows` × rules whose start `episodes` needs from the history.
fn lookups(
    episodes: &Episodes,
    rules: &RuleSet,
    rows: &[MetricsRow],
    findings: &[Vec<Option<Finding>>],
    today: NaiveDate,
) -> Vec<Ask> {
    let mut asks = Vec::new();
    for (row, m) in rows.iter().enumerate() {
        for (rule, r) in rules.rules().iter().enumerate() {
            let holds = findings[row][rule].is_some();
            if let Some(lookback) = episodes.needs_history(r, &m.account_id, holds) {
                asks.push(Ask { row, rule, holds, lookback, start: today, done: false });
            }
        }
    }
    asks
}

/// What a warm-up does with an open episode its replay does not end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsupported {
    /// Resolves it: an import's history arrived after it was opened on half of it.
    Resolve,
    /// Keeps it: after a restart the records are the state, and only new firings are in doubt.
    Keep,
}

/// What the live pass stores and publishes for accounts whose imported history just settled,
/// instead of deciding them afresh ([`Evaluator::warm_up`]).
pub(super) struct WarmUp {
    /// Firing records, at the pass, of the episodes the replay has open at its end.
    pub alerts: Vec<Alert>,
    /// Each pair's pending state at the replay's end.
    pub pending: Vec<Pending>,
    /// The clears among `pending`: applied again once their episodes' firing records are
    /// committed (a clear counts only for an open episode).
    pub cleared: Vec<Pending>,
}

impl<S: AlertSink> Evaluator<S> {
    /// Since when each pair of `rows` × rules that needs it has been in its current state
    /// (`findings[row][rule]`), keyed by (row, rule): the end of the first day of the run, for
    /// [`super::episode::Episodes::decide`]'s `started`. Pairs in their state only since today
    /// are left out (they start at the pass).
    pub(super) async fn history_starts(
        &mut self,
        rows: &[MetricsRow],
        findings: &[Vec<Option<Finding>>],
        now: DateTime<Utc>,
    ) -> Result<HashMap<(usize, usize), u32>, AggregatorError> {
        let today = now.date_naive();
        if today.pred_opt().is_some_and(|yesterday| self.day_end_known == Some(yesterday)) {
            return Ok(HashMap::new());
        }
        if self.answers.today != Some(today) {
            self.answers = Answers { today: Some(today), held: HashMap::new() };
        }
        let asks = lookups(&self.episodes, &self.rules, rows, findings, today);
        self.resolve_starts(rows, asks, today).await
    }

    /// Goes back day by day from `today` until each of `asks` is answered.
    async fn resolve_starts(
        &mut self,
        rows: &[MetricsRow],
        mut asks: Vec<Ask>,
        today: NaiveDate,
    ) -> Result<HashMap<(usize, usize), u32>, AggregatorError> {
        let deepest = asks.iter().map(|a| a.lookback.days).max().unwrap_or(0);
        for back in 1..=deepest {
            let day = today - Days::new(back.into());
            let day_end = to_datetime(end_of_day(day));
            for a in &mut asks {
                a.done |= back > a.lookback.days || a.lookback.not_before.is_some_and(|t| day_end < t);
            }
            let wanted: BTreeSet<&str> =
                asks.iter().filter(|a| !a.done).map(|a| rows[a.row].account_id.as_str()).collect();
            self.answer(day, wanted.into_iter().map(str::to_owned).collect()).await?;
            for a in asks.iter_mut().filter(|a| !a.done) {
                let held = &self.answers.held[&(day, rows[a.row].account_id.clone())];
                // Only a clear has a `not_before`: an open episode's, which `hold_while` holds too.
                let open = a.lookback.not_before.is_some();
                match held.as_ref().map(|rules| if open { rules[a.rule].1 } else { rules[a.rule].0 }) {
                    Some(h) if h == a.holds => a.start = day,
                    _ => a.done = true,
                }
            }
        }
        Ok(asks
            .into_iter()
            .filter(|a| a.start < today)
            .map(|a| ((a.row, a.rule), to_datetime(end_of_day(a.start))))
            .collect())
    }

    /// The accounts of `today_rows`, whose imported history just settled, replayed as a backtest
    /// replays them — each day's end from as far back as the rules' longest `for` +
    /// `resolve_after` + `cooldown` and their longest `resolve_after` + `cooldown` more (in days;
    /// 44 for the shipped rules), starting from no state with the first day's starts taken from
    /// the history, then the pass itself at `now` — in a state of their own. What that replay
    /// ends with is what the live state takes over: its pending starts and clears, its
    /// cooldowns, and its open episodes, fired now. So right after an import the open alerts
    /// are the backtest's, also those whose condition cleared lately but not for
    /// `resolve_after` yet, or came back after a day's pause.
    pub(super) async fn warm_up(
        &mut self,
        today_rows: &[MetricsRow],
        now: DateTime<Utc>,
        unsupported: Unsupported,
    ) -> Result<WarmUp, AggregatorError> {
        let today = now.date_naive();
        let ids: Vec<String> = today_rows.iter().map(|m| m.account_id.clone()).collect();
        // An episode the backtest still has open fired within a rule's `for` + `resolve_after`
        // before the end, or kept open by a condition that cleared for less than
        // `resolve_after` at a time; `cooldown` more days also see the episodes that hold the
        // next one back. And one more episode's `resolve_after` + `cooldown` before that: the
        // episode whose cooldown held back one that opens inside those days. A replay starting
        // inside it (its condition already cleared, its resolution days away) knows nothing of
        // it, opens the held-back one and keeps it to the end (a second book: one account in
        // 125, open live and not in the backtest).
        let days_of = |d| whole_days(d).unwrap_or(0);
        let longest = |f: &dyn Fn(&Rule) -> u32| self.rules.rules().iter().map(f).max().unwrap_or(0);
        let depth = longest(&|r| days_of(r.for_duration) + days_of(r.resolve_after) + days_of(r.cooldown))
            + longest(&|r| days_of(r.resolve_after) + days_of(r.cooldown));
        let mut replay = Episodes::default();
        let mut fired: HashMap<(String, String), Alert> = HashMap::new();
        for back in (0..=depth.max(1)).rev() {
            let day = today - Days::new(back.into());
            let (at, rows) = match back {
                0 => (now, today_rows.to_vec()),
                _ => (end_of_day(day), self.rows_on(day, ids.clone()).await?),
            };
            let findings = findings_of(&self.rules, &rows, &replay);
            let started = match back == depth.max(1) {
                true => self.resolve_starts(&rows, lookups(&replay, &self.rules, &rows, &findings, day), day).await?,
                false => HashMap::new(),
            };
            for (i, (m, found)) in rows.iter().zip(findings).enumerate() {
                for (r, (rule, finding)) in self.rules.rules().iter().zip(found).enumerate() {
                    let d = replay.decide(rule, m, finding, started.get(&(i, r)).copied(), at);
                    replay.commit_pending(d.pending.as_slice());
                    if let Some(alert) = d.alert {
                        replay.commit(&alert, at);
                        if alert.status == AlertStatus::Firing {
                            fired.insert((alert.account_id.clone(), alert.rule_id.clone()), alert);
                        }
                    }
                }
            }
        }
        self.episodes.adopt_cooldowns(&replay);
        let (pending, open) = replay.final_state();
        let alerts: Vec<Alert> = open
            .iter()
            .filter(|e| !self.episodes.is_open(&e.account_id, &e.rule_id))
            .filter_map(|e| fired.remove(&(e.account_id.clone(), e.rule_id.clone())))
            .map(|a| Alert {
                alert_id: Alert::episode_id(
                    &a.account_id,
                    &a.rule_id,
                    self.episodes.last_episode(&a.account_id, &a.rule_id),
                ),
                fired_at: now,
                ..a
            })
            .collect();
        // An account warmed up again (its history kept arriving after it first settled: a
        // partition that lagged behind the rest of an import) may hold episodes opened on half
        // its history; what the replay of the whole one does not have open is resolved, so the
        // live state ends as the backtest's does.
        let still_open: HashSet<(&str, &str)> =
            open.iter().map(|e| (e.account_id.as_str(), e.rule_id.as_str())).collect();
        let resolutions: Vec<Alert> = today_rows
            .iter()
            .filter(|_| unsupported == Unsupported::Resolve)
            .flat_map(|m| self.rules.rules().iter().map(move |rule| (m, rule)))
            .filter(|(m, rule)| !still_open.contains(&(m.account_id.as_str(), rule.id.as_str())))
            .filter_map(|(m, rule)| self.episodes.resolution(rule, m, now))
            .collect();
        let alerts = alerts.into_iter().chain(resolutions).collect();
        let cleared = pending.iter().filter(|p| p.cleared).cloned().collect();
        Ok(WarmUp { alerts, pending, cleared })
    }

    /// Fills [`Answers`] for `accounts` on `day` (those not answered yet), in chunks.
    async fn answer(&mut self, day: NaiveDate, accounts: Vec<String>) -> Result<(), AggregatorError> {
        let missing: Vec<String> =
            accounts.into_iter().filter(|a| !self.answers.held.contains_key(&(day, a.clone()))).collect();
        for chunk in missing.chunks(self.chunk.min(LISTED_MAX)) {
            let rows = self.rows_on(day, chunk.to_vec()).await?;
            let held = |m: &MetricsRow| -> Vec<Held> {
                let rules = self.rules.rules().iter();
                rules
                    .map(|r| {
                        let alone = r.check(m, false).is_some();
                        (alone, alone || r.check(m, true).is_some())
                    })
                    .collect()
            };
            let mut by_account: HashMap<&str, Vec<Held>> =
                rows.iter().map(|m| (m.account_id.as_str(), held(m))).collect();
            for account in chunk {
                let held = by_account.remove(account.as_str());
                self.answers.held.insert((day, account.clone()), held);
            }
        }
        Ok(())
    }

    /// The metrics of `accounts` as a replay computes them at the end of `day` (an earlier day:
    /// from the history up to it), with the health history and feature catalogue of that day.
    pub(super) async fn rows_on(
        &self,
        day: NaiveDate,
        accounts: Vec<String>,
    ) -> Result<Vec<MetricsRow>, AggregatorError> {
        let at = end_of_day(day);
        let partitions = self.ownership.partitions();
        let only = Changed::only(accounts);
        let lifetimes = self.store.pass_accounts(at, &self.events_topic, &partitions, Some(&only)).await?;
        if lifetimes.is_empty() {
            return Ok(Vec::new());
        }
        let mut inputs = self.store.inputs_of(at, &self.events_topic, &partitions, Some(&only), lifetimes).await?;
        let past = self.sink.health_on(day - Days::new(14)).await?;
        let features = self.catalogue_size(at).await?;
        let book = self.book_on(at).await?;
        Ok(self.metrics_rows(&mut inputs, &past, features, book, at))
    }
}
