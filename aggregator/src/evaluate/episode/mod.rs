//! The alert episode state machine, pure: which (account, rule) pairs fire, stay quiet or
//! resolve on one pass, given what each rule found (docs/architecture.md#alert-episodes).
//!
//! Alerts are edge-triggered: one `firing` record when an episode starts, one `resolved`
//! record when it ends. A condition must have held continuously for the rule's `for` (a
//! duration, measured from its *pending* start) to fire, and not within `cooldown` of the pair's
//! last resolution.
//!
//! **One timeline.** A duration in whole days (`for = "2d"`, `resolve_after = "7d"`, `cooldown =
//! "14d"`) is judged on the data's UTC days, as the backtest replays them: held from Monday, due
//! on Wednesday, whatever the hours of the passes ([`passed`]). And a condition is not taken as
//! starting when this instance first sees it: the evaluator establishes from the stored history
//! since which day it has held (or, for an open episode, been clear) and hands that start to
//! [`Episodes::decide`] — so after a history import, a restart or a catch-up the alerts are those
//! the backtest would have open, with no waiting and no burst. A duration with a sub-day part
//! (`for = "36h"`) stays on the wall clock and is measured from the first pass that saw it. An episode's `alert_id` is chained from the pair's
//! previous episode ([`Alert::episode_id`]), never from the time of the pass: a firing record
//! re-sent after a failure carries the same id, so the notifier's ledger delivers it once.
//!
//! Deciding and committing are separate: [`Episodes::decide`] proposes the pass's records and
//! pending changes and changes nothing; [`Episodes::commit_pending`] applies the pending changes
//! once they are stored, [`Episodes::commit`] a record once it was published. A failed publish
//! commits no record, so the next pass proposes the same records with the same ids.
//!
//! The CSM workflow (docs/architecture.md#alert-workflow) reaches the machine as each episode's
//! [`Workflow`], applied before every pass ([`Episodes::apply_workflow`]): a *closed* episode is
//! over (no `resolved` record; its close time counts as its resolution for `cooldown`), and a
//! *snoozed* pair neither fires a new episode nor resolves its open one before the snooze ends —
//! its pending clock keeps running, so it fires on the first pass after if the condition holds.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::alert::{Alert, AlertAction, AlertStatus};

use crate::evaluate::rules::{Finding, Rule};
use crate::model::{to_datetime, MetricsRow};

/// An alert episode that fired and has not resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEpisode {
    pub alert_id: String,
    pub account_id: String,
    pub rule_id: String,
    /// Seconds since the epoch.
    pub fired_at: u32,
}

/// Per (account, rule) with any alert: the latest episode's id and when an episode last
/// resolved (0: never), as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeHistory {
    pub account_id: String,
    pub rule_id: String,
    pub last_alert_id: String,
    pub last_resolved: u32,
}

/// A pair's pending state: its rule's condition has held since `since` (seconds since the
/// epoch), or — `cleared` — stopped holding. A pass proposes one when the condition starts or
/// stops holding (only changes, so a stored row per change, not per pass); the recorded latest
/// state of each pair is restored at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub account_id: String,
    pub rule_id: String,
    pub since: u32,
    pub cleared: bool,
    /// When the change happened (for a clear: since when the condition no longer holds, which
    /// `resolve_after` is measured from).
    pub at: u32,
}

/// What the sink recorded, restored at start and after a rebalance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recorded {
    pub open: Vec<OpenEpisode>,
    pub history: Vec<EpisodeHistory>,
    /// Each pair's latest pending change: the pairs whose condition holds, and cleared ones
    /// (kept for open episodes: their `resolve_after` runs from the clear).
    pub pending: Vec<Pending>,
}

/// An episode's CSM workflow as the console recorded it (`alert_actions`), read before every
/// pass for the episodes the machine holds ([`Episodes::workflow_ids`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub alert_id: String,
    /// Seconds since the epoch; 0 when not snoozed (or the latest snooze was ended).
    pub snoozed_until: u32,
    /// When it was closed (seconds since the epoch), if it was.
    pub closed_at: Option<u32>,
}

/// What one pass proposes for one pair: a record to publish, a pending change to store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub alert: Option<Alert>,
    pub pending: Option<Pending>,
}

type Key = (String, String);

/// The episode state of every (account, rule) pair this instance evaluates.
#[derive(Debug, Default)]
pub struct Episodes {
    /// Since when each pair's condition has held, as stored (`for`).
    pending: HashMap<Key, u32>,
    /// When each pair's last episode resolved (`cooldown`).
    last_resolved: HashMap<Key, u32>,
    /// Each pair's latest episode id: the next episode's id is chained from it.
    last_episode: HashMap<Key, String>,
    /// Open episodes.
    open: HashMap<Key, OpenEpisode>,
    /// Open episodes whose condition no longer holds: since when (`resolve_after`).
    cleared_at: HashMap<Key, u32>,
    /// Pairs whose latest episode a CSM snoozed: that episode's id and the snooze's end.
    snoozed: HashMap<Key, (String, u32)>,
}

impl Episodes {
    /// Replaces the whole state with what the sink recorded — after a start or a rebalance.
    /// The pending starts are replaced too: this instance's own are stored before they are
    /// applied ([`Self::commit_pending`]), so the recorded ones include them.
    pub fn restore(&mut self, recorded: Recorded) {
        let Recorded { open, history, pending } = recorded;
        self.open = open.into_iter().map(|e| ((e.account_id.clone(), e.rule_id.clone()), e)).collect();
        self.last_resolved = history
            .iter()
            .filter(|h| h.last_resolved > 0)
            .map(|h| ((h.account_id.clone(), h.rule_id.clone()), h.last_resolved))
            .collect();
        self.last_episode = history.into_iter().map(|h| ((h.account_id, h.rule_id), h.last_alert_id)).collect();
        self.cleared_at = pending
            .iter()
            .filter(|p| p.cleared)
            .map(|p| ((p.account_id.clone(), p.rule_id.clone()), p.at))
            .filter(|(key, _)| self.open.contains_key(key))
            .collect();
        self.pending =
            pending.into_iter().filter(|p| !p.cleared).map(|p| ((p.account_id, p.rule_id), p.since)).collect();
        // Read again with the open episodes' workflow before the next pass.
        self.snoozed.clear();
    }

    /// The episodes whose workflow the next pass needs: the open ones and the snoozed ones
    /// (sorted). Only these are read, so the query's cost follows the open episodes, not the
    /// history of actions.
    pub fn workflow_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .open
            .values()
            .map(|e| e.alert_id.clone())
            .chain(self.snoozed.values().map(|(id, _)| id.clone()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Applies the recorded workflow of episodes [`Self::workflow_ids`] named, before a pass at
    /// `now`: a closed episode leaves the open set without a `resolved` record, its close time
    /// becoming the pair's last resolution (`cooldown`); a snooze is remembered until it ends.
    /// An episode with no actions is absent from `workflows` and keeps its state. Returns how
    /// many open episodes were closed.
    pub fn apply_workflow(&mut self, workflows: &[Workflow], now: DateTime<Utc>) -> usize {
        let pair_of: HashMap<&str, Key> = self
            .open
            .iter()
            .map(|(key, e)| (e.alert_id.as_str(), key.clone()))
            .chain(self.snoozed.iter().map(|(key, (id, _))| (id.as_str(), key.clone())))
            .collect();
        let mut closed = 0;
        let mut changes = Vec::new();
        for w in workflows {
            if let Some(key) = pair_of.get(w.alert_id.as_str()) {
                changes.push((key.clone(), w));
            }
        }
        for (key, w) in changes {
            if let Some(at) = w.closed_at {
                if self.open.get(&key).is_some_and(|e| e.alert_id == w.alert_id) {
                    self.open.remove(&key);
                    self.cleared_at.remove(&key);
                    closed += 1;
                }
                let last = self.last_resolved.entry(key.clone()).or_insert(at);
                *last = (*last).max(at);
                self.snoozed.remove(&key);
            } else if w.snoozed_until > 0 {
                self.snoozed.insert(key, (w.alert_id.clone(), w.snoozed_until));
            } else {
                self.snoozed.remove(&key);
            }
        }
        // A run-out snooze of a pair with no open episode has nothing more to hold back.
        let open = &self.open;
        self.snoozed.retain(|key, (_, until)| *until as i64 > now.timestamp() || open.contains_key(key));
        closed
    }

    /// When the snooze of the pair's open `episode` ended, if it has by `now` and no
    /// `snooze_ended` record was committed for it yet.
    fn ended_snooze(&self, key: &Key, episode: &OpenEpisode, now: DateTime<Utc>) -> Option<u32> {
        let (id, until) = self.snoozed.get(key)?;
        (*id == episode.alert_id && *until as i64 <= now.timestamp()).then_some(*until)
    }

    /// Whether a CSM snoozed the pair's episode past `now`.
    fn snoozed_at(&self, key: &Key, now: DateTime<Utc>) -> bool {
        self.snoozed.get(key).is_some_and(|(_, until)| *until as i64 > now.timestamp())
    }

    /// Open episodes.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Pairs whose condition holds (with or without an open episode).
    #[cfg(test)]
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The accounts with a rule's clock running: a condition holding (towards `for`, or while
    /// its episode is open) or an open episode's condition cleared (towards `resolve_after`).
    /// Time alone can change what their rules call for.
    pub fn timed_accounts(&self) -> std::collections::BTreeSet<&str> {
        self.pending.keys().chain(self.cleared_at.keys()).map(|(account, _)| account.as_str()).collect()
    }

    /// Whether what the pass at hand must establish from the stored history before it decides
    /// `rule` for `account`, given whether its condition `holds` now: since when it has held
    /// (a condition this instance did not see holding, with a `for` in days) or, for an open
    /// episode it saw holding, since when it has been clear (a `resolve_after` in days). The
    /// answer is the `started` of [`Self::decide`]; `None`: nothing to establish.
    pub fn needs_history(&self, rule: &Rule, account: &str, holds: bool) -> Option<Lookback> {
        let key = (account.to_owned(), rule.id.clone());
        let pending = self.pending.contains_key(&key);
        if holds && !pending {
            return whole_days(rule.for_duration).map(|days| Lookback { days, not_before: None });
        }
        let episode = self.open.get(&key).filter(|_| !holds && pending && rule.auto_resolve)?;
        whole_days(rule.resolve_after).map(|days| Lookback { days, not_before: Some(episode.fired_at) })
    }

    /// What `rule` calls for on `m`'s account at `now`, given what its condition found (`None`:
    /// it does not hold, or the rule does not apply). `started`: when the condition's current
    /// state began, as the stored history shows it ([`Self::needs_history`]; `None`: at `now`).
    /// Changes nothing: see [`Self::commit`] and [`Self::commit_pending`].
    pub fn decide(
        &self,
        rule: &Rule,
        m: &MetricsRow,
        finding: Option<Finding>,
        started: Option<u32>,
        now: DateTime<Utc>,
    ) -> Decision {
        let key = (m.account_id.clone(), rule.id.clone());
        let held_since = self.pending.get(&key).copied();
        let started = started.unwrap_or_else(|| to_datetime(now));
        let change = |since: u32, cleared: bool, at: u32| Pending {
            account_id: m.account_id.clone(),
            rule_id: rule.id.clone(),
            since,
            cleared,
            at,
        };
        match finding {
            Some(finding) => {
                let since = held_since.unwrap_or(started);
                let pending = held_since.is_none().then(|| change(since, false, to_datetime(now)));
                let cooling = self.last_resolved.get(&key).is_some_and(|&t| !passed(rule.cooldown, t, now));
                // A snooze holds the firing back, not the clock: it fires on the first pass after.
                let due = passed(rule.for_duration, since, now) && !cooling && !self.snoozed_at(&key, now);
                let alert = match self.open.get(&key) {
                    Some(episode) => self
                        .ended_snooze(&key, episode, now)
                        .map(|until| snooze_ended(rule, m, episode, until, finding.reason.clone(), now)),
                    None => due.then(|| {
                        let previous = self.last_episode.get(&key).map(String::as_str);
                        firing(rule, m, finding, previous, now)
                    }),
                };
                Decision { alert, pending }
            }
            None => {
                let alert = match (self.open.get(&key), rule.auto_resolve) {
                    // A snoozed episode stays open: resolving it would let it re-fire (and notify)
                    // inside the snooze. It resolves on the first pass after, if still quiet.
                    (Some(_), true) if self.snoozed_at(&key, now) => None,
                    (Some(episode), true) => {
                        // Quiet since this pass if it held until now, else since the recorded
                        // clear: an episode resolves once the condition stayed false for
                        // `resolve_after`, so a flicker does not close (and re-open) it.
                        let quiet_since = match held_since {
                            Some(_) => started,
                            None => self.cleared_at.get(&key).copied().unwrap_or_else(|| to_datetime(now)),
                        };
                        match passed(rule.resolve_after, quiet_since, now) {
                            true => Some(resolved(rule, m, episode, now, None)),
                            false => rule.recovered(m).map(|back| resolved(rule, m, episode, now, Some(back))),
                        }
                    }
                    _ => None,
                };
                // Still open after its snooze (not yet quiet for `resolve_after`, or a rule that
                // does not auto-resolve): the CSM hears that the snooze is over.
                let alert = alert.or_else(|| {
                    let episode = self.open.get(&key)?;
                    let until = self.ended_snooze(&key, episode, now)?;
                    let reason = format!("No longer true, but not resolved yet: {}", what(rule));
                    Some(snooze_ended(rule, m, episode, until, reason, now))
                });
                Decision { alert, pending: held_since.map(|since| change(since, true, started)) }
            }
        }
    }

    /// What a replay of an account's last days left (`evaluate::timeline`'s warm-up), for the
    /// live state to take over: each pair's pending change to store — the start of a condition
    /// holding, or the clear of an open episode's condition (since when) — and the open
    /// episodes. Cooldowns are taken over with [`Self::adopt_cooldowns`].
    pub fn final_state(&self) -> (Vec<Pending>, Vec<OpenEpisode>) {
        let held = self.pending.iter().map(|((account, rule), &since)| Pending {
            account_id: account.clone(),
            rule_id: rule.clone(),
            since,
            cleared: false,
            at: since,
        });
        let cleared = self.cleared_at.iter().map(|((account, rule), &at)| Pending {
            account_id: account.clone(),
            rule_id: rule.clone(),
            since: at,
            cleared: true,
            at,
        });
        (held.chain(cleared).collect(), self.open.values().cloned().collect())
    }

    /// Takes over the later of each pair's last resolution in `replayed` and in this state.
    pub fn adopt_cooldowns(&mut self, replayed: &Episodes) {
        for (key, &at) in &replayed.last_resolved {
            let last = self.last_resolved.entry(key.clone()).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// The `resolved` record of the pair's open episode, when it has one that a CSM has not
    /// snoozed past `now` and `rule` resolves on its own: for an episode the history no longer
    /// supports (a replay of it, [`super::timeline`], ends without it open).
    pub fn resolution(&self, rule: &Rule, m: &MetricsRow, now: DateTime<Utc>) -> Option<Alert> {
        let key = (m.account_id.clone(), rule.id.clone());
        let episode = self.open.get(&key).filter(|_| rule.auto_resolve && !self.snoozed_at(&key, now))?;
        Some(resolved(rule, m, episode, now, None))
    }

    /// Whether the pair has an open episode.
    pub fn is_open(&self, account: &str, rule: &str) -> bool {
        self.open.contains_key(&(account.to_owned(), rule.to_owned()))
    }

    /// The pair's latest recorded episode id, which its next episode's id is chained from.
    pub fn last_episode(&self, account: &str, rule: &str) -> Option<&str> {
        self.last_episode.get(&(account.to_owned(), rule.to_owned())).map(String::as_str)
    }

    /// Applies pending changes [`Self::decide`] proposed, once they are stored.
    pub fn commit_pending(&mut self, changes: &[Pending]) {
        for p in changes {
            let key = (p.account_id.clone(), p.rule_id.clone());
            if p.cleared {
                self.pending.remove(&key);
                if self.open.contains_key(&key) {
                    self.cleared_at.insert(key, p.at);
                }
            } else {
                self.cleared_at.remove(&key);
                self.pending.insert(key, p.since);
            }
        }
    }

    /// Applies a record [`Self::decide`] proposed, once it was published.
    pub fn commit(&mut self, alert: &Alert, now: DateTime<Utc>) {
        let key = (alert.account_id.clone(), alert.rule_id.clone());
        match alert.status {
            AlertStatus::Firing => {
                self.last_episode.insert(key.clone(), alert.alert_id.clone());
                let episode = OpenEpisode {
                    alert_id: alert.alert_id.clone(),
                    account_id: alert.account_id.clone(),
                    rule_id: alert.rule_id.clone(),
                    fired_at: to_datetime(alert.fired_at),
                };
                self.open.insert(key, episode);
            }
            AlertStatus::Resolved => {
                self.cleared_at.remove(&key);
                self.open.remove(&key);
                self.last_resolved.insert(key, to_datetime(now));
            }
            // Told once: the next workflow read shows the snooze ended (its `alert_actions` row).
            AlertStatus::SnoozeEnded => {
                self.snoozed.remove(&key);
            }
            _ => {} // the other lifecycle records are the console's, never proposed here
        }
    }
}

/// How far back the stored history must be read for one pair: up to `days` days before the
/// pass's day, and (for a clear) not before its episode fired (seconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookback {
    pub days: u32,
    pub not_before: Option<u32>,
}

/// `d` in days, when it is a positive whole number of them.
pub fn whole_days(d: std::time::Duration) -> Option<u32> {
    let secs = d.as_secs();
    (secs > 0 && secs.is_multiple_of(86_400) && d.subsec_nanos() == 0).then_some((secs / 86_400) as u32)
}

/// Whether `d` has passed from `from` (seconds since the epoch) to `now`. A duration in whole
/// days counts the UTC days between the two (the data's days, which the backtest steps through:
/// a condition held from Monday with `for = "2d"` is due on Wednesday at any hour); any other
/// duration counts seconds.
pub fn passed(d: std::time::Duration, from: u32, now: DateTime<Utc>) -> bool {
    match whole_days(d) {
        Some(days) => now.timestamp().div_euclid(86_400) - (from as i64).div_euclid(86_400) >= days as i64,
        None => now.timestamp() - from as i64 >= d.as_secs() as i64,
    }
}

/// The `firing` record that opens an episode of `rule` for `m`'s account, after the episode
/// `previous` (the pair's latest, if any).
fn firing(rule: &Rule, m: &MetricsRow, finding: Finding, previous: Option<&str>, now: DateTime<Utc>) -> Alert {
    Alert {
        alert_id: Alert::episode_id(&m.account_id, &rule.id, previous),
        account_id: m.account_id.clone(),
        rule_id: rule.id.clone(),
        severity: rule.severity,
        status: AlertStatus::Firing,
        fired_at: now,
        resolved_at: None,
        lifecycle_stage: Some(m.lifecycle_stage.as_str().to_owned()),
        health_score: m.health_score,
        metrics: finding.metrics,
        csm_owner: Some(m.csm_owner.clone()).filter(|c| !c.is_empty()),
        reason: finding.reason,
        action: None,
        console_url: None,
    }
}

/// The rule in words: its description, else its id.
fn what(rule: &Rule) -> &str {
    if rule.description.is_empty() {
        rule.id.as_str()
    } else {
        rule.description.as_str()
    }
}

/// The `snooze_ended` lifecycle record of `episode`, whose snooze ran out at `until` while it is
/// still open. Its action id is derived from the episode and the snooze's end, so a re-send after
/// a failure carries the same id (the notifier's ledger delivers it once).
fn snooze_ended(
    rule: &Rule,
    m: &MetricsRow,
    episode: &OpenEpisode,
    until: u32,
    reason: String,
    now: DateTime<Utc>,
) -> Alert {
    let name = format!("{}\u{1f}snooze_ended\u{1f}{until}", episode.alert_id);
    let action = AlertAction {
        action_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string(),
        by: "uptake".into(),
        at: now,
        note: None,
        snoozed_until: None,
        assignee: None,
        close_reason: None,
    };
    Alert {
        status: AlertStatus::SnoozeEnded,
        resolved_at: None,
        metrics: rule.when.values(m),
        reason,
        action: Some(action),
        ..resolved(rule, m, episode, now, None)
    }
}

/// The `resolved` record that closes `episode`; `back`: the sentence of the rule's
/// `resolve_when`, when that closed it before its `resolve_after`.
fn resolved(rule: &Rule, m: &MetricsRow, episode: &OpenEpisode, now: DateTime<Utc>, back: Option<String>) -> Alert {
    let what = what(rule);
    let reason = match back {
        Some(back) => format!("Back to its usual ({back}), no longer true: {what}"),
        None => format!("No longer true: {what}"),
    };
    Alert {
        alert_id: episode.alert_id.clone(),
        account_id: m.account_id.clone(),
        rule_id: rule.id.clone(),
        severity: rule.severity,
        status: AlertStatus::Resolved,
        fired_at: DateTime::from_timestamp(episode.fired_at as i64, 0).unwrap_or(now),
        resolved_at: Some(now),
        lifecycle_stage: Some(m.lifecycle_stage.as_str().to_owned()),
        health_score: m.health_score,
        metrics: rule.when.values(m),
        csm_owner: Some(m.csm_owner.clone()).filter(|c| !c.is_empty()),
        reason,
        action: None,
        console_url: None,
    }
}

#[cfg(test)]
mod tests;
