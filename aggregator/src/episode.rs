//! The alert episode state machine, pure: which (account, rule) pairs fire, stay quiet or
//! resolve on one pass, given what each rule found (docs/architecture.md#alert-episodes).
//!
//! Alerts are edge-triggered: one `firing` record when an episode starts, one `resolved`
//! record when it ends. A condition must hold `for` consecutive passes without an open episode
//! to fire, and not within `cooldown` of the pair's last resolution. An episode's `alert_id` is
//! chained from the pair's previous episode ([`Alert::episode_id`]), never from the time of the
//! pass: a firing record re-sent after a failure carries the same id, so the notifier's ledger
//! delivers it once.
//!
//! Deciding and committing are separate: [`Episodes::decide`] proposes the pass's records (and
//! counts `for` streaks), [`Episodes::commit`] applies a record once it was published. A failed
//! publish commits nothing, so the next pass proposes the same records with the same ids.

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

type Key = (String, String);

/// The episode state of every (account, rule) pair this instance evaluates.
#[derive(Debug, Default)]
pub struct Episodes {
    /// Consecutive passes each pair's condition held without an open episode (`for`).
    streaks: HashMap<Key, u32>,
    /// When each pair's last episode resolved (`cooldown`).
    last_resolved: HashMap<Key, u32>,
    /// Each pair's latest episode id: the next episode's id is chained from it.
    last_episode: HashMap<Key, String>,
    /// Open episodes.
    open: HashMap<Key, OpenEpisode>,
}

impl Episodes {
    /// Replaces the recorded state (open episodes, last ids, last resolutions) with what the
    /// `alerts` table holds — after a start or a rebalance. `for` streaks are kept: they count
    /// this instance's own passes.
    pub fn restore(&mut self, open: Vec<OpenEpisode>, history: Vec<EpisodeHistory>) {
        self.open = open.into_iter().map(|e| ((e.account_id.clone(), e.rule_id.clone()), e)).collect();
        self.last_resolved = history
            .iter()
            .filter(|h| h.last_resolved > 0)
            .map(|h| ((h.account_id.clone(), h.rule_id.clone()), h.last_resolved))
            .collect();
        self.last_episode = history.into_iter().map(|h| ((h.account_id, h.rule_id), h.last_alert_id)).collect();
    }

    /// Open episodes.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// The record `rule` calls for on `m`'s account at `now`, given what its condition found
    /// (`None`: it does not hold, or the rule does not apply). Counts `for` streaks.
    pub fn decide(
        &mut self,
        rule: &Rule,
        m: &MetricsRow,
        finding: Option<Finding>,
        now: DateTime<Utc>,
    ) -> Option<Alert> {
        let key = (m.account_id.clone(), rule.id.clone());
        match (finding, self.open.get(&key)) {
            (Some(finding), None) => {
                let streak = self.streaks.entry(key.clone()).or_default();
                *streak += 1;
                let cooling = self
                    .last_resolved
                    .get(&key)
                    .is_some_and(|&t| (now.timestamp() - t as i64) < rule.cooldown.as_secs() as i64);
                if *streak >= rule.for_evaluations && !cooling {
                    let previous = self.last_episode.get(&key).map(String::as_str);
                    return Some(firing(rule, m, finding, previous, now));
                }
                None
            }
            (Some(_), Some(_)) => None,
            (None, open) => {
                let record = match (open, rule.auto_resolve) {
                    (Some(episode), true) => Some(resolved(rule, m, episode, now)),
                    _ => None,
                };
                self.streaks.remove(&key);
                record
            }
        }
    }

    /// Applies a record [`Self::decide`] proposed, once it was published.
    pub fn commit(&mut self, alert: &Alert, now: DateTime<Utc>) {
        let key = (alert.account_id.clone(), alert.rule_id.clone());
        match alert.status {
            AlertStatus::Firing => {
                self.streaks.remove(&key);
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
                self.open.remove(&key);
                self.last_resolved.insert(key, to_datetime(now));
            }
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
for = 2
cooldown = "15d"
when = { kind = "inactivity", since = "login", days = 7 }

[[rule]]
id = "sticky"
severity = "info"
auto_resolve = false
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

    /// One pass of `rule` at `at`: decide, then commit what was proposed (a successful publish).
    fn pass(e: &mut Episodes, rule: &Rule, days: u32, at: &str) -> Option<Alert> {
        let m = row(days);
        let finding = rule.when.check(&m);
        let alert = e.decide(rule, &m, finding, t(at));
        if let Some(a) = &alert {
            e.commit(a, t(at));
        }
        alert
    }

    fn status(a: Option<Alert>) -> Option<AlertStatus> {
        a.map(|a| a.status)
    }

    #[test]
    fn for_holds_the_first_passes_back() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z")), None, "first pass of `for = 2`");
        let fired = pass(&mut e, quiet, 8, "2026-03-09T18:00:00Z").unwrap();
        assert_eq!((fired.status, fired.reason.as_str()), (AlertStatus::Firing, "No login for 8 days"));
        assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-10T18:00:00Z")), None, "same episode: no second firing");
        assert_eq!(e.open_count(), 1);
    }

    #[test]
    fn a_clear_pass_breaks_the_streak() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z")), None);
        assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-09T18:00:00Z")), None, "a login");
        assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-16T18:00:00Z")), None, "the streak starts again");
        assert_eq!(status(pass(&mut e, quiet, 8, "2026-03-17T18:00:00Z")), Some(AlertStatus::Firing));
    }

    #[test]
    fn auto_resolve_closes_the_episode_with_its_id() {
        let rules = rules();
        let (quiet, sticky) = (&rules[0], &rules[1]);
        let mut e = Episodes::default();
        pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
        let fired = pass(&mut e, quiet, 8, "2026-03-09T18:00:00Z").unwrap();
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
        let first = pass(&mut e, quiet, 8, "2026-03-09T18:00:00Z").unwrap();
        pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z").unwrap();
        for (days, at) in [(8, "2026-03-20T18:00:00Z"), (9, "2026-03-21T18:00:00Z"), (14, "2026-03-26T18:00:00Z")] {
            assert_eq!(status(pass(&mut e, quiet, days, at)), None, "{at}: inside the 15-day cooldown");
        }
        let second = pass(&mut e, quiet, 16, "2026-03-28T18:00:00Z").unwrap();
        assert_eq!(second.status, AlertStatus::Firing, "past the cooldown (resolved 03-12 18:00 + 15 d)");
        assert_ne!(second.alert_id, first.alert_id, "a new episode, a new id");
        assert_eq!(
            second.alert_id,
            Alert::episode_id("quiet-co", "quiet", Some(&first.alert_id)),
            "chained from the first"
        );
    }

    #[test]
    fn an_unpublished_firing_is_proposed_again_with_the_same_id() {
        let quiet = &rules()[0];
        let mut e = Episodes::default();
        pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
        let m = row(8);
        // Publishing failed: nothing committed.
        let first = e.decide(quiet, &m, quiet.when.check(&m), t("2026-03-09T18:00:00Z")).unwrap();
        let again = e.decide(quiet, &m, quiet.when.check(&m), t("2026-03-09T18:00:30Z")).unwrap();
        assert_eq!(again.alert_id, first.alert_id);
        assert_eq!(e.open_count(), 0);
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
        e.restore(vec![open], vec![history]);
        assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-11T18:00:00Z")), None, "a restart does not re-fire");
        let resolved = pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z").unwrap();
        assert_eq!((resolved.alert_id.as_str(), resolved.fired_at), ("a1", t("2026-03-09T18:00:00Z")));
        // After the cooldown, the next episode is chained from the restored one.
        pass(&mut e, quiet, 16, "2026-03-28T18:00:00Z");
        let next = pass(&mut e, quiet, 17, "2026-03-29T18:00:00Z").unwrap();
        assert_eq!(next.alert_id, Alert::episode_id("quiet-co", "quiet", Some("a1")));
    }
}
