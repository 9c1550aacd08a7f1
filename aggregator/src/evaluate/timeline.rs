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

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};

use super::episode::Lookback;
use super::rules::Finding;
use super::sink::AlertSink;
use super::Evaluator;
use crate::model::{metrics_row, to_datetime, MetricsRow, Model};
use crate::store::Changed;
use crate::AggregatorError;

/// The last second of `day` (UTC): when a replay evaluates it, and the time a condition found
/// in the history of `day` is taken to have started.
pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time")).and_utc()
}

/// Which rules held for each account at the end of each earlier day (`None`: the account had no
/// history yet), as computed today; dropped when the day changes (the windows moved).
#[derive(Debug, Default)]
pub(super) struct Answers {
    today: Option<NaiveDate>,
    held: HashMap<(NaiveDate, String), Option<Vec<bool>>>,
}

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
        let mut asks = Vec::new();
        for (row, m) in rows.iter().enumerate() {
            for (rule, r) in self.rules.rules().iter().enumerate() {
                let holds = findings[row][rule].is_some();
                if let Some(lookback) = self.episodes.needs_history(r, &m.account_id, holds) {
                    asks.push(Ask { row, rule, holds, lookback, start: today, done: false });
                }
            }
        }
        if self.answers.today != Some(today) {
            self.answers = Answers { today: Some(today), held: HashMap::new() };
        }
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
                match held.as_ref().map(|rules| rules[a.rule]) {
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

    /// Fills [`Answers`] for `accounts` on `day` (those not answered yet), in chunks.
    async fn answer(&mut self, day: NaiveDate, accounts: Vec<String>) -> Result<(), AggregatorError> {
        let missing: Vec<String> =
            accounts.into_iter().filter(|a| !self.answers.held.contains_key(&(day, a.clone()))).collect();
        for chunk in missing.chunks(self.chunk) {
            let rows = self.rows_on(day, chunk.to_vec()).await?;
            let mut by_account: HashMap<&str, Vec<bool>> = HashMap::new();
            for m in &rows {
                let held = self.rules.rules().iter().map(|r| r.applies(m) && r.when.check(m).is_some()).collect();
                by_account.insert(m.account_id.as_str(), held);
            }
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
        for i in &mut inputs {
            i.health_14d_ago = past.get(&i.window.account_id).copied();
        }
        let features = match self.feature_catalogue {
            0 => self.store.features_seen(at).await?,
            configured => configured,
        };
        let model = Model { lifecycle: &self.lifecycle, health: &self.health, catalogue: features };
        Ok(inputs.iter().map(|i| metrics_row(i, at, &model)).collect())
    }
}
