use super::*;
use crate::evaluate::rules::RuleSet;
use crate::model::Stage;

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
    e.decide(rule, &m, rule.when.check(&m), None, t(at))
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
    // Three days are three UTC days (03-14 → 03-17), whatever the hour.
    assert_eq!(status(pass(&mut e, patient, 1, "2026-03-16T23:59:59Z")), None, "a day short");
    let resolved = pass(&mut e, patient, 1, "2026-03-17T00:00:00Z").unwrap();
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
    assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-10T23:59:59Z")), None, "on the second day still");
    // `for = "3d"` is judged on UTC days: held from 03-08, due on 03-11 at any hour.
    let fired = pass(&mut e, quiet, 10, "2026-03-11T00:00:00Z").unwrap();
    assert_eq!((fired.status, fired.reason.as_str()), (AlertStatus::Firing, "No login for 10 days"));
    assert_eq!(fired.fired_at, t("2026-03-11T00:00:00Z"));
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
    let cleared_now = Pending { at: to_datetime(t("2026-03-10T18:00:00Z")), ..pending("2026-03-08T18:00:00Z", true) };
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
    let d = decide(&e, quiet, 10, "2026-03-10T23:59:59Z");
    assert_eq!(d, Decision::default(), "not yet, and the start is already stored");
    assert_eq!(status(pass(&mut e, quiet, 10, "2026-03-11T00:00:00Z")), Some(AlertStatus::Firing), "since + 3 d");
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

fn workflow(alert_id: &str, snoozed_until: Option<&str>, closed_at: Option<&str>) -> Workflow {
    Workflow {
        alert_id: alert_id.into(),
        snoozed_until: snoozed_until.map_or(0, |s| to_datetime(t(s))),
        closed_at: closed_at.map(|s| to_datetime(t(s))),
    }
}

#[test]
fn a_closed_episode_is_over_without_a_resolved_record_and_cools_down_from_its_close() {
    let quiet = &rules()[0];
    let mut e = Episodes::default();
    pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
    let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
    assert_eq!(e.workflow_ids(), vec![fired.alert_id.clone()], "the open episode's workflow is read");
    let other = workflow("not-ours", None, Some("2026-03-12T09:00:00Z"));
    let closed = workflow(&fired.alert_id, None, Some("2026-03-12T09:00:00Z"));
    assert_eq!(e.apply_workflow(&[other, closed.clone()], t("2026-03-12T18:00:00Z")), 1);
    assert_eq!(e.open_count(), 0, "dropped from the open set");
    assert!(e.workflow_ids().is_empty());
    // The condition clears: nothing to resolve, no record.
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z")), None, "no resolved record");
    assert_eq!(e.apply_workflow(&[closed], t("2026-03-12T18:00:00Z")), 0, "applying it again changes nothing");
    // The 15-day cooldown runs from the close (03-12), not from the firing.
    pass(&mut e, quiet, 7, "2026-03-19T18:00:00Z");
    assert_eq!(status(pass(&mut e, quiet, 14, "2026-03-26T23:59:59Z")), None, "a day inside the cooldown");
    let next = pass(&mut e, quiet, 14, "2026-03-27T00:00:00Z").unwrap();
    assert_eq!(next.status, AlertStatus::Firing);
    assert_eq!(next.alert_id, Alert::episode_id("quiet-co", "quiet", Some(&fired.alert_id)), "chained from it");
}

#[test]
fn a_closure_found_at_restore_drops_the_recorded_open_episode() {
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
        last_resolved: to_datetime(t("2026-02-01T00:00:00Z")),
    };
    e.restore(Recorded {
        open: vec![open],
        history: vec![history],
        pending: vec![pending("2026-03-06T18:00:00Z", false)],
    });
    assert_eq!(e.workflow_ids(), ["a1"]);
    e.apply_workflow(&[workflow("a1", None, Some("2026-03-10T00:00:00Z"))], t("2026-03-11T18:00:00Z"));
    assert_eq!(e.open_count(), 0);
    assert_eq!(e.pending_count(), 1, "the condition still holds: its clock keeps running");
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-11T18:00:00Z")), None, "no resolved record for it");
}

#[test]
fn a_snoozed_episode_neither_resolves_nor_re_fires_until_the_snooze_ends() {
    let quiet = &rules()[0];
    let mut e = Episodes::default();
    pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
    let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
    let snooze = workflow(&fired.alert_id, Some("2026-03-15T12:00:00Z"), None);
    assert_eq!(e.apply_workflow(&[snooze], t("2026-03-12T18:00:00Z")), 0);
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z")), None, "cleared, but snoozed: no resolved");
    assert_eq!(status(pass(&mut e, quiet, 8, "2026-03-14T18:00:00Z")), None, "holds again: the same open episode");
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-15T11:59:59Z")), None, "a second before the end");
    assert_eq!(e.open_count(), 1);
    let resolved = pass(&mut e, quiet, 0, "2026-03-15T12:00:00Z").unwrap();
    assert_eq!((resolved.status, resolved.alert_id), (AlertStatus::Resolved, fired.alert_id), "at the end");
}

#[test]
fn a_snoozed_pair_fires_on_the_first_pass_after_the_snooze_with_its_clock_kept() {
    let sticky = &rules()[1];
    let mut e = Episodes::default();
    let fired = pass(&mut e, sticky, 7, "2026-03-08T18:00:00Z").unwrap();
    // A snooze on a pair with no open episode (say the console snoozed the episode after it
    // resolved): the open set is emptied by hand.
    e.apply_workflow(&[workflow(&fired.alert_id, Some("2026-03-20T00:00:00Z"), None)], t("2026-03-09T00:00:00Z"));
    e.open.clear();
    assert_eq!(e.workflow_ids(), vec![fired.alert_id.clone()], "a snoozed pair's workflow is still read");
    assert_eq!(status(pass(&mut e, sticky, 9, "2026-03-10T18:00:00Z")), None, "due, but snoozed");
    assert_eq!(e.pending_count(), 1, "the pending clock keeps running");
    assert_eq!(status(pass(&mut e, sticky, 18, "2026-03-19T23:59:59Z")), None);
    let next = pass(&mut e, sticky, 18, "2026-03-20T00:00:00Z").unwrap();
    assert_eq!(next.status, AlertStatus::Firing, "the first pass after the snooze ends");
    // A run-out snooze is forgotten once no episode of the pair is open.
    e.open.clear();
    e.apply_workflow(&[], t("2026-03-20T00:00:01Z"));
    assert!(e.workflow_ids().is_empty());
}

#[test]
fn an_ended_snooze_releases_the_episode_at_once() {
    let quiet = &rules()[0];
    let mut e = Episodes::default();
    pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
    let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
    e.apply_workflow(&[workflow(&fired.alert_id, Some("2026-04-01T00:00:00Z"), None)], t("2026-03-12T00:00:00Z"));
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-12T18:00:00Z")), None, "snoozed");
    // A later action ended the snooze (snoozed_until back to 0).
    e.apply_workflow(&[workflow(&fired.alert_id, None, None)], t("2026-03-13T00:00:00Z"));
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-13T18:00:00Z")), Some(AlertStatus::Resolved));
}

#[test]
fn an_episode_still_open_when_its_snooze_ends_says_so_once() {
    let rules = rules();
    let (quiet, sticky) = (&rules[0], &rules[1]);
    let mut e = Episodes::default();
    pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
    let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
    let snoozed = pass(&mut e, sticky, 8, "2026-03-11T18:00:00Z").unwrap();
    let until = "2026-03-13T00:00:00Z";
    let read = [workflow(&fired.alert_id, Some(until), None), workflow(&snoozed.alert_id, Some(until), None)];
    e.apply_workflow(&read, t("2026-03-12T00:00:00Z"));
    assert_eq!(status(pass(&mut e, quiet, 11, "2026-03-12T23:59:59Z")), None, "still snoozed");
    // The condition still holds at the end: not a new firing, the news that the snooze is over.
    let first = decide(&e, quiet, 12, "2026-03-13T00:00:00Z").alert.unwrap();
    let again = decide(&e, quiet, 12, "2026-03-13T00:00:30Z").alert.unwrap();
    assert_eq!((first.status, first.alert_id.as_str()), (AlertStatus::SnoozeEnded, fired.alert_id.as_str()));
    assert_eq!(first.reason, "No login for 12 days");
    let action = first.action.clone().unwrap();
    assert_eq!((action.by.as_str(), action.at), ("uptake", t("2026-03-13T00:00:00Z")));
    assert_eq!(again.action.unwrap().action_id, action.action_id, "a re-send after a failure: the same id");
    e.commit(&first, t("2026-03-13T00:00:00Z"));
    assert_eq!(status(pass(&mut e, quiet, 12, "2026-03-13T00:01:00Z")), None, "told once");
    assert_eq!(e.open_count(), 2);
    // A rule that does not auto-resolve, cleared: still open, so also told.
    let ended = pass(&mut e, sticky, 0, "2026-03-13T00:00:00Z").unwrap();
    assert_eq!(ended.status, AlertStatus::SnoozeEnded);
    assert!(ended.reason.starts_with("No longer true, but not resolved yet: sticky"), "{}", ended.reason);
    assert_ne!(ended.action.unwrap().action_id, action.action_id, "another episode, another id");
}

const HOURS: &str = r#"
[[rule]]
id = "quiet"
severity = "critical"
for = "36h"
resolve_after = "12h"
when = { kind = "inactivity", since = "login", days = 7 }
"#;

#[test]
fn a_duration_with_hours_stays_on_the_wall_clock() {
    let rules = RuleSet::parse(HOURS).unwrap();
    let quiet = &rules.rules()[0];
    let mut e = Episodes::default();
    assert_eq!(status(pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z")), None);
    assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-10T05:59:59Z")), None, "a second short of 36 h");
    assert_eq!(status(pass(&mut e, quiet, 9, "2026-03-10T06:00:00Z")), Some(AlertStatus::Firing));
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-10T08:00:00Z")), None, "clear since 08:00");
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-10T19:59:59Z")), None);
    assert_eq!(status(pass(&mut e, quiet, 0, "2026-03-10T20:00:00Z")), Some(AlertStatus::Resolved));
}

#[test]
fn whole_days_are_counted_in_utc_days_and_the_rest_in_seconds() {
    use std::time::Duration;
    let day = |d: &str| to_datetime(t(d));
    assert_eq!(whole_days(Duration::from_secs(2 * 86_400)), Some(2));
    assert_eq!((whole_days(Duration::ZERO), whole_days(Duration::from_secs(36 * 3600))), (None, None));
    let two_days = Duration::from_secs(2 * 86_400);
    assert!(passed(two_days, day("2026-03-08T23:59:59Z"), t("2026-03-10T00:00:00Z")), "two dates later");
    assert!(!passed(two_days, day("2026-03-08T00:00:00Z"), t("2026-03-09T23:59:59Z")), "47:59:59 but one date");
    assert!(passed(Duration::ZERO, day("2026-03-08T18:00:00Z"), t("2026-03-08T18:00:00Z")));
}

#[test]
fn a_start_found_in_the_history_counts_from_its_day() {
    let quiet = &rules()[0];
    let mut e = Episodes::default();
    // First seen today (03-11 10:00), but the history shows it held at the end of 03-08: `for =
    // "3d"` has passed, it fires at once, and the stored start is the day's end.
    assert_eq!(e.needs_history(quiet, "quiet-co", true), Some(Lookback { days: 3, not_before: None }));
    let m = row(10);
    let started = Some(day_end("2026-03-08"));
    let d = e.decide(quiet, &m, quiet.when.check(&m), started, t("2026-03-11T10:00:00Z"));
    assert_eq!(d.alert.as_ref().map(|a| a.status), Some(AlertStatus::Firing));
    assert_eq!(d.pending.as_ref().map(|p| p.since), started);
    e.commit_pending(d.pending.as_slice());
    e.commit(d.alert.as_ref().unwrap(), t("2026-03-11T10:00:00Z"));
    // Held only since 03-10 in the history: not yet.
    let mut later = Episodes::default();
    let d = later.decide(quiet, &m, quiet.when.check(&m), Some(day_end("2026-03-10")), t("2026-03-11T10:00:00Z"));
    assert_eq!(d.alert, None);
    later.commit_pending(d.pending.as_slice());
    assert_eq!(later.needs_history(quiet, "quiet-co", true), None, "a held condition is not looked up again");
    // An open episode seen clear for the first time: how long it has been clear is looked up,
    // not before it fired; a rule resolving at once needs nothing.
    let fired_at = to_datetime(t("2026-03-11T10:00:00Z"));
    assert_eq!(e.needs_history(quiet, "quiet-co", false), None, "`quiet` resolves at once");
    let patient = &rules()[2];
    let mut p = Episodes::default();
    let f = pass(&mut p, patient, 8, "2026-03-11T10:00:00Z").unwrap();
    assert_eq!(p.needs_history(patient, "quiet-co", false), Some(Lookback { days: 3, not_before: Some(fired_at) }));
    let quiet_row = row(0);
    let r = p.decide(patient, &quiet_row, None, Some(day_end("2026-03-11")), t("2026-03-14T09:00:00Z"));
    assert_eq!(r.alert.map(|a| (a.status, a.alert_id)), Some((AlertStatus::Resolved, f.alert_id)), "clear 3 days");
}

/// The last second of day `d` (the start the evaluator stores for a day found in the history).
fn day_end(d: &str) -> u32 {
    to_datetime(t(&format!("{d}T23:59:59Z")))
}

#[test]
fn an_episode_the_history_no_longer_supports_is_resolved_unless_snoozed_or_sticky() {
    let rules = rules();
    let (quiet, sticky) = (&rules[0], &rules[1]);
    let mut e = Episodes::default();
    // Nothing open: nothing to resolve.
    assert_eq!(e.resolution(quiet, &row(0), t("2026-03-08T18:00:00Z")), None);
    pass(&mut e, quiet, 7, "2026-03-08T18:00:00Z");
    let fired = pass(&mut e, quiet, 10, "2026-03-11T18:00:00Z").unwrap();
    pass(&mut e, sticky, 10, "2026-03-11T18:00:00Z").unwrap();
    // The sticky rule's episode is a CSM's to close, not the history's.
    assert_eq!(e.resolution(sticky, &row(0), t("2026-03-11T18:05:00Z")), None);
    let resolved = e.resolution(quiet, &row(0), t("2026-03-11T18:05:00Z")).unwrap();
    assert_eq!((resolved.status, &resolved.alert_id), (AlertStatus::Resolved, &fired.alert_id));
    assert_eq!(resolved.resolved_at, Some(t("2026-03-11T18:05:00Z")));
    // Snoozed by a CSM: left alone until the snooze ends.
    let snooze = workflow(&fired.alert_id, Some("2026-03-15T12:00:00Z"), None);
    e.apply_workflow(&[snooze], t("2026-03-12T18:00:00Z"));
    assert_eq!(e.resolution(quiet, &row(0), t("2026-03-12T18:00:00Z")), None);
    assert!(e.resolution(quiet, &row(0), t("2026-03-15T12:00:00Z")).is_some());
}

#[test]
fn resolve_when_closes_a_clear_episode_at_once_and_nothing_else() {
    let toml = RULES.replace(
        "resolve_after = \"3d\"\n",
        "resolve_after = \"3d\"\nresolve_when = { kind = \"threshold\", metric = \"active_user_days_vs_baseline\", op = \">=\", value = 0 }\n",
    );
    let rules = RuleSet::parse(&toml).unwrap().rules().to_vec();
    let patient = &rules[2];
    let at = |days: u32, vs_usual: f64| MetricsRow { active_user_days_vs_baseline: Some(vs_usual), ..row(days) };
    let mut e = Episodes::default();
    let m = at(8, 5.0);
    let fired = e.decide(patient, &m, patient.when.check(&m), None, t("2026-03-09T18:00:00Z")).alert.unwrap();
    e.commit(&fired, t("2026-03-09T18:00:00Z"));
    // Its condition holds: resolve_when closes nothing, however well the week went.
    assert!(e.decide(patient, &m, patient.when.check(&m), None, t("2026-03-10T18:00:00Z")).alert.is_none());
    // Clear, but the week still under its usual: resolve_after's three days are waited for.
    let down = at(0, -20.0);
    assert!(e.decide(patient, &down, None, None, t("2026-03-10T18:00:00Z")).alert.is_none());
    // Clear and back at its usual: resolved on this pass, the same episode.
    let back = at(0, 0.0);
    let resolved = e.decide(patient, &back, None, None, t("2026-03-10T18:00:00Z")).alert.unwrap();
    assert_eq!((resolved.status, resolved.alert_id), (AlertStatus::Resolved, fired.alert_id));
    assert!(resolved.reason.starts_with("Back to its usual (Active user days vs baseline is 0"), "{}", resolved.reason);
}
