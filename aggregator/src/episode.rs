//! The alert episode state machine, pure: which (account, rule) pairs fire, stay quiet or
//! resolve on one pass, given what each rule found (docs/architecture.md#alert-episodes).
//!
//! Alerts are edge-triggered: one `firing` record when an episode starts, one `resolved`
//! record when it ends. A condition must have held continuously for the rule's `for` (a
//! duration, measured from the first pass it held: its *pending* start) to fire, and not within
//! `cooldown` of the pair's last resolution. An episode's `alert_id` is chained from the pair's
//! previous episode ([`Alert::episode_id`]), never from the time of the pass: a firing record
//! re-sent after a failure carries the same id, so the notifier's ledger delivers it once.
//!
//! Deciding and committing are separate: [`Episodes::decide`] proposes the pass's records and
//! pending changes and changes nothing; [`Episodes::commit_pending`] applies the pending changes
//! once they are stored, [`Episodes::commit`] a record once it was published. A failed publish
//! commits no record, so the next pass proposes the same records with the same ids.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use schemas::alert::{Alert, AlertStatus};

use crate::model::{to_datetime, MetricsRow};
use crate::rules::{Finding, Rule};

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
    }

    /// Open episodes.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Pairs whose condition holds (with or without an open episode).
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The accounts with a rule's clock running: a condition holding (towards `for`, or while
    /// its episode is open) or an open episode's condition cleared (towards `resolve_after`).
    /// Time alone can change what their rules call for.
    pub fn timed_accounts(&self) -> std::collections::BTreeSet<&str> {
        self.pending.keys().chain(self.cleared_at.keys()).map(|(account, _)| account.as_str()).collect()
    }

    /// What `rule` calls for on `m`'s account at `now`, given what its condition found (`None`:
    /// it does not hold, or the rule does not apply). Changes nothing: see [`Self::commit`] and
    /// [`Self::commit_pending`].
    pub fn decide(&self, rule: &Rule, m: &MetricsRow, finding: Option<Finding>, now: DateTime<Utc>) -> Decision {
        let key = (m.account_id.clone(), rule.id.clone());
        let held_since = self.pending.get(&key).copied();
        let change = |since: u32, cleared: bool| Pending {
            account_id: m.account_id.clone(),
            rule_id: rule.id.clone(),
            since,
            cleared,
            at: to_datetime(now),
        };
        match finding {
            Some(finding) => {
                let since = held_since.unwrap_or_else(|| to_datetime(now));
                let pending = held_since.is_none().then(|| change(since, false));
                let held = now.timestamp() - since as i64;
                let cooling = self
                    .last_resolved
                    .get(&key)
                    .is_some_and(|&t| (now.timestamp() - t as i64) < rule.cooldown.as_secs() as i64);
                let due = held >= rule.for_duration.as_secs() as i64 && !cooling;
                let alert = (due && !self.open.contains_key(&key)).then(|| {
                    let previous = self.last_episode.get(&key).map(String::as_str);
                    firing(rule, m, finding, previous, now)
                });
                Decision { alert, pending }
            }
            None => {
                let alert = match (self.open.get(&key), rule.auto_resolve) {
                    (Some(episode), true) => {
                        // Quiet since this pass if it held until now, else since the recorded
                        // clear: an episode resolves once the condition stayed false for
                        // `resolve_after`, so a flicker does not close (and re-open) it.
                        let quiet_since = match held_since {
                            Some(_) => to_datetime(now),
                            None => self.cleared_at.get(&key).copied().unwrap_or_else(|| to_datetime(now)),
                        };
                        let quiet = now.timestamp() - quiet_since as i64;
                        (quiet >= rule.resolve_after.as_secs() as i64).then(|| resolved(rule, m, episode, now))
                    }
                    _ => None,
                };
                Decision { alert, pending: held_since.map(|since| change(since, true)) }
            }
        }
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
            _ => {} // lifecycle records are the console's, never proposed here
        }
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

/// The `resolved` record that closes `episode`.
fn resolved(rule: &Rule, m: &MetricsRow, episode: &OpenEpisode, now: DateTime<Utc>) -> Alert {
    let what = if rule.description.is_empty() { rule.id.as_str() } else { rule.description.as_str() };
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
        reason: format!("No longer true: {what}"),
        action: None,
        console_url: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;
    use crate::rules::RuleSet;

    const RULES: &str = r#"
[[rule]]
id = "quiet"
description = "No login for a week"
severity = "critical"
for = "3d"
cooldown = "15d"
when = { kind = "inactivity", since = "login", days = 7 }

[[rule]]
id = "sticky"
severity = "info"
auto_resolve = false
when = { kind = "inactivity", since = "login", days = 7 }

[[rule]]
id = "patient"
severity = "warning"
resolve_after = "3d"
when = { kind = "inactivity", since = "login", days = 7 }
"#;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn rules() -> Vec<Rule> {
        RuleSet::parse(RULES).unwrap().rules().to_vec()
    }

    fn row(days_since_login: u32) -> MetricsRow {
        MetricsRow {
            account_id: "quiet-co".into(),
            lifecycle_stage: Stage::Growth,
            days_since_last_login: Some(days_since_login),
            ..Default::default()
        }
    }

    /// What `rule` decides on an account `days` without a login, at `at` (nothing committed).
    fn decide(e: &Episodes, rule: &Rule, days: u32, at: &str) -> Decision {
        let m = row(days);
        e.decide(rule, &m, rule.when.check(&m), t(at))
    }

    /// One successful pass of `rule` at `at`: decide, then commit what was proposed (the pending
    /// change stored, the record published).
    fn pass(e: &mut Episodes, rule: &Rule, days: u32, at: &str) -> Option<Alert> {
        let d = decide(e, rule, days, at);
        e.commit_pending(d.pending.as_slice());
        if let Some(a) = &d.alert {
            e.commit(a, t(at));
        }
        d.alert
    }

    fn status(a: Option<Alert>) -> Option<AlertStatus> {
        a.map(|a| a.status)
    }

    fn pending(since: &str, cleared: bool) -> Pending {
        Pending {
            account_id: "quiet-co".into(),
            rule_id: "quiet".into(),
            since: to_datetime(t(since)),
            cleared,
            at: to_datetime(t(since)),
        }
    }

    #[test]
    fn resolve_after_keeps_a_flickering_episode_open() {
        let patient = &rules()[2];
        let mut e = Episodes::default();
        let fired = pass(&mut e, patient, 8, "2026-03-09T18:00:00Z").unwrap();
        assert_eq!(fired.status, AlertStatus::Firing);
        // A login on 03-10 clears the condition, but for less than three days: still open.
        assert_eq!(status(pass(&mut e, patient, 0, "2026-03-10T18:00:00Z")), None);
        assert_eq!(status(pass(&mut e, patient, 1, "2026-03-12T18:00:00Z")), None, "quiet for 2 days");
        // It holds again before the three days: the clear is forgotten, still the same episode.
        assert_eq!(status(pass(&mut e, patient, 8, "2026-03-13T12:00:00Z")), None);
        assert_eq!(e.open_count(), 1);
        assert_eq!(status(pass(&mut e, patient, 0, "2026-03-14T18:00:00Z")), None, "cleared again: the clock restarts");
        assert_eq!(status(pass(&mut e, patient, 1, "2026-03-17T17:59:59Z")), None, "a second short");
        let resolved = pass(&mut e, patient, 1, "2026-03-17T18:00:00Z").unwrap();
        assert_eq!((resolved.status, resolved.alert_id), (AlertStatus::Resolved, fired.alert_id));
    }

    #[test]
    fn a_restored_clear_of_an_open_episode_keeps_counting() {
        let patient = &rules()[2];
        let mut e = Episodes::default();
        let open = OpenEpisode {
            alert_id: "a1".into(),
            account_id: "quiet-co".into(),
            rule_id: "patient".into(),
            fired_at: to_datetime(t("2026-03-09T18:00:00Z")),
        };
        let cleared = Pending {
            rule_id: "patient".into(),
            at: to_datetime(t("2026-03-10T18:00:00Z")),
            ..pending("2026-03-02T18:00:00Z", true)
        };
        e.restore(Recorded { open: vec![open], history: Vec::new(), pending: vec![cleared] });
        assert_eq!(status(pass(&mut e, patient, 1, "2026-03-12T18:00:00Z")), None);
        assert_eq!(
            status(pass(&mut e, patient, 1, "2026-03-13T18:00:00Z")),
            Some(AlertStatus::Resolved),
            "3 days after the recorded clear"
        );
    }

    #[test]
    fn for_fires_exactly_when_the_condition_held_that_long() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z")), None, "held since now");
        assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-10T18:00:00Z")), None, "held 2 days");
        assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-11T17:59:59Z")), None, "a second short of 3 days");
        let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
        assert_eq!((fired.status, fired.reason.as_str()), (AlertStatus::Firing, "No login for 10 days"));
        assert_eq!(fired.fired_at, t("2026-03-11T18:00:00Z"));
        assert_eq!(status(pass(&mut e, quiet, 11, "2026-03-12T18:00:00Z")), None, "same episode: no second firing");
        assert_eq!(e.open_count(), 1);
    }

    #[test]
    fn only_changes_of_the_pending_state_are_proposed() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        let first = decide(&e, quiet, 7, "2026-03-08T18:00:00Z");
        assert_eq!(first.pending, Some(pending("2026-03-08T18:00:00Z", false)), "starts holding");
        e.commit_pending(first.pending.as_slice());
        assert_eq!(decide(&e, quiet, 8, "2026-03-09T18:00:00Z").pending, None, "still holding: nothing to store");
        let clear = decide(&e, quiet, 0, "2026-03-10T18:00:00Z");
        let cleared_now =
            Pending { at: to_datetime(t("2026-03-10T18:00:00Z")), ..pending("2026-03-08T18:00:00Z", true) };
        assert_eq!(clear.pending, Some(cleared_now), "stops holding (since kept, when it stopped)");
        e.commit_pending(clear.pending.as_slice());
        assert_eq!(e.pending_count(), 0);
        assert_eq!(decide(&e, quiet, 0, "2026-03-11T18:00:00Z"), Decision::default(), "still clear: nothing");
    }

    #[test]
    fn a_clear_pass_restarts_the_clock() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z")), None);
        assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-10T18:00:00Z")), None, "a login");
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-17T18:00:00Z")), None, "holds again: the clock restarts");
        assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-19T18:00:00Z")), None, "9 days since 03-08, 2 held");
        assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-20T18:00:00Z")), Some(AlertStatus::Firing));
    }

    #[test]
    fn without_for_a_rule_fires_on_the_first_pass_it_holds() {
        let sticky = &rules()[1];
        let mut e = Episodes::default();
        assert_eq!(status(pass(&mut e, sticky, 6, "2026-03-08T18:00:00Z")), None);
        assert_eq!(status(pass(&mut e, sticky, 7, "2026-03-09T18:00:00Z")), Some(AlertStatus::Firing));
    }

    #[test]
    fn auto_resolve_closes_the_episode_with_its_id() {
        let rules = rules();
        let (quiet, sticky) = (&rules[0], &rules[1]);
        let mut e = Episodes::default();
        pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
        let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
        let resolved = pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z").unwrap();
        assert_eq!(resolved.status, AlertStatus::Resolved);
        assert_eq!(resolved.alert_id, fired.alert_id, "firing and resolved share the episode id");
        assert_eq!(resolved.fired_at, fired.fired_at);
        assert_eq!(resolved.reason, "No longer true: No login for a week");
        assert_eq!(e.open_count(), 0);

        assert_eq!(status(pass(&mut e, sticky, 8, "2026-03-09T18:00:00Z")), Some(AlertStatus::Firing));
        assert_eq!(status(pass(&mut e, sticky, 0, "2026-03-12T18:00:00Z")), None, "auto_resolve = false");
        assert_eq!(e.open_count(), 1);
    }

    #[test]
    fn cooldown_holds_the_next_episode_back() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
        let first = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
        pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z").unwrap();
        for (days, at) in [(8, "2026-03-20T18:00:00Z"), (9, "2026-03-21T18:00:00Z"), (14, "2026-03-26T18:00:00Z")] {
            assert_eq!(status(pass(&mut e, quiet, days, at)), None, "{at}: inside the 15-day cooldown");
        }
        let second = pass(&mut e, quiet, 16, "2026-03-28T18:00:00Z").unwrap();
        assert_eq!(second.status, AlertStatus::Firing, "past the cooldown (resolved 03-12 18:00 + 15 d), held 8 d");
        assert_ne!(second.alert_id, first.alert_id, "a new episode, a new id");
        assert_eq!(
            second.alert_id,
            Alert::episode_id("quiet-co", "quiet", Some(&first.alert_id)),
            "chained from the first"
        );
    }

    #[test]
    fn an_uncommitted_pass_changes_nothing() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        // Storing the pending start failed: the pass did not happen, the clock starts later.
        let lost = decide(&e, quiet, 7, "2026-03-07T18:00:00Z");
        assert_eq!(lost.pending, Some(pending("2026-03-07T18:00:00Z", false)));
        pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
        assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-10T18:00:00Z")), None, "held 2 days, not 3");
        // Publishing failed: nothing committed, the same record is proposed again.
        let first = decide(&e, quiet, 10, "2026-03-11T18:00:00Z").alert.unwrap();
        let again = decide(&e, quiet, 10, "2026-03-11T18:00:30Z").alert.unwrap();
        assert_eq!(again.alert_id, first.alert_id);
        assert_eq!(e.open_count(), 0);
    }

    #[test]
    fn a_restored_pending_start_is_honoured() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        let other = Pending { rule_id: "sticky".into(), ..pending("2026-03-01T18:00:00Z", true) };
        e.restore(Recorded { pending: vec![pending("2026-03-08T18:00:00Z", false), other], ..Default::default() });
        assert_eq!(e.pending_count(), 1, "a cleared pair is not pending");
        let d = decide(&e, quiet, 10, "2026-03-11T17:59:59Z");
        assert_eq!(d, Decision::default(), "not yet, and the start is already stored");
        assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z")), Some(AlertStatus::Firing), "since + 3 d");
    }

    #[test]
    fn restored_state_is_neither_re_fired_nor_forgotten() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        let open = OpenEpisode {
            alert_id: "a1".into(),
            account_id: "quiet-co".into(),
            rule_id: "quiet".into(),
            fired_at: to_datetime(t("2026-03-09T18:00:00Z")),
        };
        let history = EpisodeHistory {
            account_id: "quiet-co".into(),
            rule_id: "quiet".into(),
            last_alert_id: "a1".into(),
            last_resolved: 0,
        };
        let held = pending("2026-03-06T18:00:00Z", false);
        e.restore(Recorded { open: vec![open], history: vec![history], pending: vec![held] });
        assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-11T18:00:00Z")), None, "a restart does not re-fire");
        let resolved = pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z").unwrap();
        assert_eq!((resolved.alert_id.as_str(), resolved.fired_at), ("a1", t("2026-03-09T18:00:00Z")));
        // After the cooldown, the next episode is chained from the restored one.
        pass(&mut e, quiet, 13, "2026-03-25T18:00:00Z");
        let next = pass(&mut e, quiet, 16, "2026-03-28T18:00:00Z").unwrap();
        assert_eq!(next.alert_id, Alert::episode_id("quiet-co", "quiet", Some("a1")));
    }
}
