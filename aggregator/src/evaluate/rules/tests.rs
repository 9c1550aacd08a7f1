use super::*;
use crate::model::change_pct;

fn row() -> MetricsRow {
    MetricsRow { account_id: "acme".into(), lifecycle_stage: Stage::Growth, ..Default::default() }
}

fn err(toml: &str) -> String {
    parse_rules(toml).expect_err("must be rejected").to_string()
}

#[test]
fn the_shipped_rules_parse() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "usage_sliding",
            "usage_stopped",
            "usage_collapsed",
            "no_login_14d",
            "onboarding_not_activated",
            "low_seats_before_renewal",
            "detractor_with_falling_use",
            "usage_declining",
            "users_lapsing",
            "champion_gone",
            "usage_silent"
        ]
    );
    assert_eq!(rules[0].for_duration, Duration::from_secs(2 * 86_400));
    let Condition::All(stopped) = &rules[1].when else { panic!("{:?}", rules[1].when) };
    assert!(matches!(stopped[0], Condition::Baseline { at_most_pct, .. } if at_most_pct == -80.0));
    let onboarding = &rules[4];
    assert_eq!(
        (onboarding.stages.as_slice(), onboarding.min_account_age_days, onboarding.for_duration),
        ([Stage::Onboarding].as_slice(), 21, Duration::from_secs(3 * 86_400))
    );
    assert_eq!(rules[5].cooldown, Duration::from_secs(7 * 86_400));
    assert!(matches!(rules[6].when, Condition::All(ref p) if p.len() == 8));
    assert_eq!(rules[0].resolve_after, Duration::from_secs(7 * 86_400));
}

#[test]
fn every_mistake_names_the_rule_and_the_field() {
    let rule =
        |when: &str, extra: &str| format!("[[rule]]\nid = \"r1\"\nseverity = \"warning\"\n{extra}\nwhen = {when}\n");
    let t = r#"{ kind = "threshold", metric = "seat_utilisation", op = "<", value = 0.3 }"#;
    parse_rules(&rule(t, "")).unwrap();
    let cases = [
        (
            rule(r#"{ kind = "threshold", metric = "seats_used", op = "<", value = 1 }"#, ""),
            "rule \"r1\": when.metric: unknown metric \"seats_used\"",
        ),
        (
            rule(r#"{ kind = "threshold", metric = "seat_utilisation", op = "=<", value = 1 }"#, ""),
            "rule \"r1\": when.op",
        ),
        (
            rule(r#"{ kind = "threshold", metric = "seat_utilisation", op = "<", value = "low" }"#, ""),
            "rule \"r1\": when.value: must be a number",
        ),
        (
            rule(r#"{ kind = "threshold", metric = "seat_utilisation", op = "<", value = 1, window = "7d" }"#, ""),
            "rule \"r1\": when.window: unknown field",
        ),
        (rule(r#"{ kind = "trend" }"#, ""), "rule \"r1\": when.kind: \"trend\""),
        (
            rule(r#"{ kind = "change", metric = "logins", window = "7d", at_most_pct = -50 }"#, ""),
            "rule \"r1\": when.metric: no change metric",
        ),
        (rule(r#"{ kind = "inactivity", since = "purchase", days = 7 }"#, ""), "rule \"r1\": when.since"),
        (
            rule(r#"{ kind = "all", of = [{ kind = "threshold", metric = "nps", op = "<", value = 7 }] }"#, ""),
            "rule \"r1\": when.of[0].metric",
        ),
        (rule(t, "stages = [\"trial\"]"), "rule \"r1\": stages: unknown stage \"trial\""),
        (rule(t, "cooldown = \"1 week\""), "rule \"r1\": cooldown"),
        (
            rule(t, "for = 2"),
            "rule \"r1\": for: a number is no longer accepted: `for` is a duration such as \"3d\" \
             (it used to count evaluations, which depended on evaluation_interval)",
        ),
        (rule(t, "for = \"2 days\""), "rule \"r1\": for: \"2 days\" is not a duration like 30m, 12h or 7d"),
        (rule(t, "for = true"), "rule \"r1\": for: true is not a duration"),
    ];
    for (toml, want) in cases {
        let e = err(&toml);
        assert!(e.contains(want), "{e}\n  should contain: {want}");
    }
    assert!(err(&rule(t, "").replace("warning", "loud")).contains("rule \"r1\": severity"));
    let twice = format!("{}{}", rule(t, ""), rule(t, ""));
    assert!(err(&twice).contains("rule \"r1\": id: is used by another rule"));
}

#[test]
fn change_fires_with_a_sentence_a_csm_understands() {
    let c = parse_rules(
        r#"
[[rule]]
id = "active_users_drop"
severity = "warning"
when = { kind = "change", metric = "active_users", window = "7d", at_most_pct = -50, min_base = 3 }
"#,
    )
    .unwrap()
    .remove(0)
    .when;
    let mut m = row();
    (m.active_users_prev_7d, m.active_users_7d, m.active_users_change_7d) = (6, 2, change_pct(6, 2));
    let f = c.check(&m).unwrap();
    assert_eq!(f.reason, "Weekly active users fell 67 % (6 → 2) vs the previous 7 days");
    assert_eq!(f.metrics["active_users_prev_7d"], 6.0);
    (m.active_users_prev_7d, m.active_users_7d, m.active_users_change_7d) = (6, 4, change_pct(6, 4));
    assert_eq!(c.check(&m), None, "−33 % is not −50 %");
    (m.active_users_prev_7d, m.active_users_7d, m.active_users_change_7d) = (2, 0, change_pct(2, 0));
    assert_eq!(c.check(&m), None, "below min_base");
}

#[test]
fn threshold_inactivity_and_combinations() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let (no_login, low_seats, detractor) = (&rules[3].when, &rules[5].when, &rules[6].when);
    let mut m = row();
    m.days_since_last_login = Some(20);
    assert_eq!(no_login.check(&m).unwrap().reason, "No login for 20 days");
    m.days_since_last_login = Some(13);
    assert_eq!(no_login.check(&m), None);
    m.days_since_last_login = None;
    assert_eq!(no_login.check(&m).unwrap().reason, "No login recorded yet");

    assert_eq!(low_seats.check(&m), None, "no seats known: silent");
    m.seat_utilisation = Some(0.25);
    assert_eq!(low_seats.check(&m).unwrap().reason, "Seat utilisation is 0.25 (below 0.40)");

    m.latest_nps = Some(4);
    assert_eq!(detractor.check(&m), None, "detractor alone is not enough");
    (m.active_user_days_baseline, m.active_user_days_vs_baseline) = (Some(40.0), Some(-30.0));
    assert_eq!(detractor.check(&m), None, "a low week, but not an unusual one for this account");
    m.active_user_days_z = Some(-1.9);
    assert_eq!(detractor.check(&m), None, "and the last three days?");
    // The last three days 40 % down: 10 points steeper than the week, a steady fall.
    (m.active_user_days_3d_vs_baseline, m.active_user_days_momentum) = (Some(-40.0), Some(-10.0));
    let f = detractor.check(&m).unwrap();
    // The qualifiers (how unusual, how steep) are in the metrics, not in the sentence.
    assert_eq!(
        f.reason,
        "Latest NPS is 4 (at most 6) and active user-days 30 % below this account's usual over the last 7 days (28 vs a usual 40 a week) \
         and active user-days 40 % below this account's usual over the last 3 days"
    );
    assert_eq!(f.metrics["active_user_days_z"], -1.9);
    // A collapse (a holiday's first days, a stop) is not this rule's: usage_stopped waits it out.
    (m.active_user_days_3d_vs_baseline, m.active_user_days_momentum) = (Some(-90.0), Some(-60.0));
    assert_eq!(detractor.check(&m), None);
}

#[test]
fn people_named_by_two_conditions_are_named_once() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let champion = rules.iter().find(|r| r.id == "champion_gone").unwrap();
    let m = MetricsRow {
        champion: "acme-u03 (Ada, ada@acme.example)".into(),
        champion_lapsed: Some(1),
        champion_days_absent: Some(16),
        regular_users: 6,
        active_user_days_vs_baseline: Some(-30.0),
        decline_evidence: Some(2.5),
        decline_started: Some(20_400),
        decline_score: Some(0.8),
        ..row()
    };
    let found = champion.when.check(&m).expect("the champion gone 16 days, use 30 % under");
    let who = "the heaviest user, acme-u03 (Ada, ada@acme.example), last seen 16 days ago";
    assert_eq!(found.reason.matches(who).count(), 1, "{}", found.reason);
    assert!(
        found.reason.starts_with(&format!(
            "Champion lapsed is 1 (at least 1): {who} and champion days absent is 16 (at least 14) and "
        )),
        "{}",
        found.reason
    );
    assert!(found.reason.ends_with(" and decline score is 0.80 (at least 0.50)"), "{}", found.reason);
    // On leave with the rest of the team at work as usual: no alert.
    assert_eq!(champion.when.check(&MetricsRow { active_user_days_vs_baseline: Some(-5.0), ..m.clone() }), None);
    // The rest of the picture reads as leave (the score under 0.5), or is not known: no alert.
    assert_eq!(champion.when.check(&MetricsRow { decline_score: Some(0.3), ..m.clone() }), None);
    assert_eq!(champion.when.check(&MetricsRow { decline_score: None, ..m.clone() }), None);
    // A team of two: the champion away is most of it, and that is leave as often as leaving.
    assert_eq!(champion.when.check(&MetricsRow { regular_users: 2, ..m.clone() }), None);
    // Unless use has fallen 40 % or more with odds of e^3 behind it: then from the 12th day, on
    // a team of two as on a larger one.
    let deep = MetricsRow {
        regular_users: 2,
        champion_days_absent: Some(12),
        active_user_days_vs_baseline: Some(-55.5),
        decline_evidence: Some(3.4),
        ..m
    };
    let found = champion.when.check(&deep).expect("a two-person team's champion gone 12 days, use 55 % under");
    // Named once here too, where the champion's lapse and its length sit at different depths.
    let who = who.replace("16 days", "12 days");
    assert!(
        found.reason.starts_with(&format!(
            "Champion lapsed is 1 (at least 1): {who} and champion days absent is 12 (at least 12) and "
        )),
        "{}",
        found.reason
    );
    assert!(found.reason.contains("champion days absent is 12 (at least 12)"), "{}", found.reason);
    assert!(found.reason.contains("active user days vs baseline is -55.50 (at most -40)"), "{}", found.reason);
    assert_eq!(champion.when.check(&MetricsRow { champion_days_absent: Some(11), ..deep.clone() }), None);
    assert_eq!(champion.when.check(&MetricsRow { active_user_days_vs_baseline: Some(-35.0), ..deep.clone() }), None);
    assert_eq!(champion.when.check(&MetricsRow { decline_evidence: Some(2.9), ..deep.clone() }), None);
    assert_eq!(champion.when.check(&MetricsRow { regular_users: 1, ..deep }), None);
}

#[test]
fn stages_and_age_decide_whether_a_rule_applies() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let onboarding = &rules[4];
    let mut m = row();
    assert!(!onboarding.applies(&m), "growth account");
    m.lifecycle_stage = Stage::Onboarding;
    assert!(!onboarding.applies(&m), "age unknown");
    m.days_since_start = Some(10);
    assert!(!onboarding.applies(&m), "too young");
    m.days_since_start = Some(21);
    assert!(onboarding.applies(&m));
    assert!(rules[0].applies(&m), "no stages: every stage");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
    assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
    assert_eq!(parse_duration("7"), None);
    assert_eq!(parse_duration("d"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_duration("+7d"), None);
    assert_eq!(parse_duration("99999999999999999d"), None, "overflow is not a duration");
}

#[test]
fn duration_with_multibyte_unit_is_a_config_error() {
    // "7µ" used to panic: the unit was split off at a byte index inside the 2-byte 'µ'.
    for bad in ["7µ", "µ", "7d\u{e9}", "é", "7日"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    let toml = "[[rule]]\nid = \"r1\"\nseverity = \"warning\"\ncooldown = \"7µ\"\nwhen = { kind = \"inactivity\", since = \"login\", days = 7 }\n";
    let e = err(toml);
    assert!(e.contains("rule \"r1\": cooldown") && e.contains("7µ"), "{e}");
    let nan = toml.replace("cooldown = \"7µ\"\n", "").replace("days = 7", "days = nan");
    assert!(err(&nan).contains("rule \"r1\": when.days: must be a number (not nan or inf)"), "{}", err(&nan));
}

#[test]
fn a_baseline_condition_reads_the_gap_from_the_accounts_usual() {
    let rules = parse_rules(
        r#"
[[rule]]
id = "sliding"
severity = "warning"
when = { kind = "baseline", metric = "active_user_days", at_most_pct = -20, at_least_pct = -70, min_baseline = 10 }
"#,
    )
    .unwrap();
    let when = &rules[0].when;
    let at = |usual: f64, change: f64| MetricsRow {
        active_user_days_baseline: Some(usual),
        active_user_days_vs_baseline: Some(change),
        ..row()
    };
    let found = when.check(&at(70.0, -30.0)).expect("30 % below the usual");
    assert_eq!(
        found.reason,
        "Active user-days 30 % below this account's usual over the last 7 days (49 vs a usual 70 a week)"
    );
    assert_eq!(found.metrics.get("active_user_days_vs_baseline"), Some(&-30.0));
    assert!(when.check(&at(70.0, -15.0)).is_none(), "inside the usual wobble");
    assert!(when.check(&at(70.0, -90.0)).is_none(), "a stop, not a slide: below at_least_pct");
    assert!(when.check(&at(6.0, -50.0)).is_none(), "a tiny account: under min_baseline");
    assert!(when.check(&row()).is_none(), "no baseline yet: never fires");
    assert!(err(r#"[[rule]]
id = "b"
severity = "info"
when = { kind = "baseline", metric = "seats", at_most_pct = -20 }"#)
    .contains("when.metric: no baseline for \"seats\""));
    assert!(err(r#"[[rule]]
id = "b"
severity = "info"
when = { kind = "baseline", metric = "logins", window = "3d", at_most_pct = -20 }"#)
    .contains("no baseline for \"logins\" over \"3d\""));
    assert!(err(r#"[[rule]]
id = "b"
severity = "info"
when = { kind = "baseline", metric = "logins", at_most_pct = -20, at_least_pct = -10 }"#)
    .contains("when.at_least_pct: must be below at_most_pct"));
}

#[test]
fn hold_while_keeps_an_open_episode_and_never_opens_one() {
    let toml = r#"[[rule]]
id = "quiet"
severity = "warning"
resolve_after = "7d"
hold_while = { kind = "threshold", metric = "active_user_days_vs_baseline", op = "<=", value = -15 }
when = { kind = "threshold", metric = "decline_evidence", op = ">=", value = 5 }
"#;
    let rule = &parse_rules(toml).unwrap()[0];
    let mut m = row();
    (m.decline_evidence, m.active_user_days_vs_baseline) = (Some(6.0), Some(-40.0));
    assert!(rule.check(&m, false).is_some(), "its condition fires it");
    // The evidence has ebbed (the usual it is measured against has sunk toward the slide), use is
    // still 40 % under: held while open, and the reason says what holds it.
    m.decline_evidence = Some(2.0);
    assert_eq!(rule.check(&m, false), None, "hold_while alone never opens an episode");
    let held = rule.check(&m, true).unwrap();
    assert!(held.reason.starts_with("Still: Active user days vs baseline is -40"), "{}", held.reason);
    // Use back within 15 % of the usual: nothing holds it, its resolve_after counts.
    m.active_user_days_vs_baseline = Some(-10.0);
    assert_eq!(rule.check(&m, true), None);

    let never = toml.replace("resolve_after = \"7d\"", "auto_resolve = false");
    assert!(err(&never).contains("rule \"quiet\": hold_while"), "{}", err(&never));
    let unknown = toml.replace("active_user_days_vs_baseline", "use_vs_usual");
    assert!(err(&unknown).contains("rule \"quiet\": hold_while.metric: unknown metric"), "{}", err(&unknown));
}

#[test]
fn resolve_when_is_checked_like_a_condition_and_wants_a_resolve_after() {
    let toml = r#"[[rule]]
id = "quiet"
severity = "warning"
resolve_after = "7d"
resolve_when = { kind = "threshold", metric = "active_user_days_vs_baseline", op = ">=", value = 0 }
when = { kind = "threshold", metric = "decline_evidence", op = ">=", value = 5 }
"#;
    let rule = &parse_rules(toml).unwrap()[0];
    let mut m = row();
    m.active_user_days_vs_baseline = Some(-10.0);
    assert_eq!(rule.recovered(&m), None, "still under its usual");
    m.active_user_days_vs_baseline = Some(3.0);
    assert_eq!(rule.recovered(&m).unwrap(), "Active user days vs baseline is 3 (at least 0)");
    m.active_user_days_vs_baseline = None;
    assert_eq!(rule.recovered(&m), None, "no usual: nothing says it is back");

    let at_once = toml.replace("resolve_after = \"7d\"\n", "");
    assert!(err(&at_once).contains("rule \"quiet\": resolve_when"), "{}", err(&at_once));
    let unknown = toml.replace("active_user_days_vs_baseline", "use_vs_usual");
    assert!(err(&unknown).contains("rule \"quiet\": resolve_when.metric: unknown metric"), "{}", err(&unknown));
}

#[test]
fn a_silence_unlikely_under_the_accounts_habit_is_a_stop() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let silent = rules.iter().find(|r| r.id == "usage_silent").unwrap();
    // As of 2026-03-31 (day 20,543), nobody in on the 6 complete days before it.
    let m = MetricsRow { silence_evidence: Some(9.5), silent_days: 6, as_of: 20_543, ..row() };
    let found = silent.when.check(&m).expect("9.5 user-days expected, none came");
    assert_eq!(
        found.reason,
        "Active user-days expected in the silence is 9.50 (at least 8): nobody in from 2026-03-25 to 2026-03-30 (6 days)"
    );
    assert_eq!(found.metrics["silence_evidence"], 9.5);
    // A weekend, a closure, or a silence a tiny account's habit makes likely: no alert.
    assert_eq!(silent.when.check(&MetricsRow { silence_evidence: Some(4.0), ..m.clone() }), None);
    // Without a usual before the silence there is nothing to measure it against.
    assert_eq!(silent.when.check(&MetricsRow { silence_evidence: None, ..m }), None);
}

#[test]
fn a_deep_week_the_detector_has_begun_to_read_is_a_decline() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let declining = rules.iter().find(|r| r.id == "usage_declining").unwrap();
    // A team of eight fading: its week is at half its usual, the detector at 2.6 (a small
    // account's shortfall is inside chance day by day), and the score sure of it.
    let m = MetricsRow {
        active_user_days_baseline: Some(24.0),
        active_user_days_vs_baseline: Some(-50.0),
        decline_evidence: Some(2.6),
        decline_started: Some(20_400),
        decline_score: Some(0.82),
        ..row()
    };
    let found = declining.when.check(&m).expect("a week at half its usual, read as a decline");
    assert_eq!(
        found.reason,
        "Decline score is 0.82 (at least 0.70) and active user-days 50 % below this account's usual over the last 7 \
         days (12 vs a usual 24 a week) and decline evidence is 2.60 (at least 2): use below its usual since 2025-11-08"
    );
    assert_eq!(found.metrics["group_away_days_7d"], 0.0);
    // Each part is needed: a shallower week, the detector not yet reading it, a score unsure,
    // a group away together in the week (back since: their days still weigh on the window), a
    // public holiday in the week, a usual too small to read.
    let not = [
        MetricsRow { active_user_days_vs_baseline: Some(-35.0), ..m.clone() },
        MetricsRow { decline_evidence: Some(1.5), ..m.clone() },
        MetricsRow { decline_score: Some(0.65), ..m.clone() },
        MetricsRow { users_away_together: 0, group_away_days_7d: 4, ..m.clone() },
        MetricsRow { book_closures_7d: 1, ..m.clone() },
        MetricsRow { active_user_days_baseline: Some(4.0), ..m.clone() },
    ];
    for (i, n) in not.iter().enumerate() {
        assert_eq!(declining.when.check(n), None, "case {i}");
    }
    // The detector's own bar keeps its lower score: 6 and 0.5, however deep the week.
    let evidence = MetricsRow {
        active_user_days_vs_baseline: Some(-20.0),
        decline_evidence: Some(6.5),
        decline_score: Some(0.55),
        ..m
    };
    let found = declining.when.check(&evidence).expect("the detector's evidence alone");
    let first = "Decline evidence is 6.50 (at least 6): use below its usual since 2025-11-08 and decline score is 0.55 (at least 0.50)";
    assert_eq!(found.reason, first);
    // Both branches hold: the sentence is the first's, once; the values are both's.
    let both = MetricsRow { active_user_days_vs_baseline: Some(-60.0), decline_score: Some(0.75), ..evidence };
    let found = declining.when.check(&both).expect("both branches");
    assert_eq!(found.reason, first.replace("0.55", "0.75"));
    assert_eq!((found.metrics["active_user_days_vs_baseline"], found.metrics["book_closures_7d"]), (-60.0, 0.0));
}

#[test]
fn a_small_accounts_deep_week_needs_no_second_opinion() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let declining = rules.iter().find(|r| r.id == "usage_declining").unwrap();
    // Three people fading: 3 user-days in the week against a usual 8, the detector at 4.4, and
    // a decline score that rates small teams' declines as unlikely (b4's small fades: 0.05–0.1).
    let m = MetricsRow {
        active_user_days_baseline: Some(8.0),
        active_user_days_vs_baseline: Some(-62.5),
        decline_evidence: Some(4.4),
        decline_started: Some(20_400),
        decline_score: Some(0.06),
        ..row()
    };
    let found = declining.when.check(&m).expect("a small team's week at a third of its usual");
    assert_eq!(
        found.reason,
        "Active user-days 62 % below this account's usual over the last 7 days (3 vs a usual 8 a week) and decline \
         evidence is 4.40 (at least 4): use below its usual since 2025-11-08"
    );
    // The account's size is a gate, in the values only.
    assert_eq!(found.metrics["active_user_days_baseline"], 8.0);
    // Each part is needed: a usual of 15 user-days or more (the score's to judge there), a
    // shallower week, the detector under 4, a group away in the week, a public holiday in it.
    let not = [
        MetricsRow { active_user_days_baseline: Some(16.0), active_user_days_vs_baseline: Some(-62.5), ..m.clone() },
        MetricsRow { active_user_days_vs_baseline: Some(-45.0), ..m.clone() },
        MetricsRow { decline_evidence: Some(3.8), ..m.clone() },
        MetricsRow { group_away_days_7d: 2, ..m.clone() },
        MetricsRow { book_closures_7d: 1, ..m.clone() },
    ];
    for (i, n) in not.iter().enumerate() {
        assert_eq!(declining.when.check(n), None, "case {i}");
    }
}

#[test]
fn a_large_accounts_stop_is_read_in_working_days_and_a_small_ones_in_a_held_window() {
    let rules = parse_rules(DEFAULT_RULES).unwrap();
    let collapsed = rules.iter().find(|r| r.id == "usage_collapsed").unwrap();
    let stopped = rules.iter().find(|r| r.id == "usage_stopped").unwrap();
    // Three working days of a 60-user-day account at a trickle: at once, no hold.
    assert_eq!(collapsed.for_duration, Duration::ZERO);
    let m = MetricsRow {
        stopped_days: Some(3),
        active_user_days_baseline: Some(60.0),
        active_user_days_3d_vs_baseline: Some(-90.0),
        ..row()
    };
    let found = collapsed.when.check(&m).expect("three working days stopped");
    // The account's size is a gate, not news: in the values, not in the sentence.
    assert_eq!(found.reason, "Working days in a row at under a quarter of the usual is 3 (at least 3)");
    assert_eq!(found.metrics["active_user_days_baseline"], 60.0);
    // Two working days (an account's own closure around a weekend), a smaller account, or no
    // history to read a stop against: not this rule's.
    for n in [
        MetricsRow { stopped_days: Some(2), ..m.clone() },
        MetricsRow { active_user_days_baseline: Some(39.0), ..m.clone() },
        MetricsRow { stopped_days: None, ..m.clone() },
    ] {
        assert_eq!(collapsed.when.check(&n), None, "{n:?}");
    }
    // The two never both speak of one stop: `usage_stopped` is the smaller accounts'.
    assert_eq!(stopped.when.check(&m), None);
    let small = MetricsRow { active_user_days_baseline: Some(30.0), ..m };
    assert!(stopped.when.check(&small).is_some());
    assert_eq!(collapsed.when.check(&small), None);
}
