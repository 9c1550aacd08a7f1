//! `score()` on hand-made replays: every figure worked out by hand in the comments.

use schemas::alert::Severity;
use warehouse::OutcomeSource;

use super::*;

const RULES: &str = r#"
[[rule]]
id = "drop"
severity = "warning"
when = { kind = "threshold", metric = "open_tickets", op = ">=", value = 0 }

[[rule]]
id = "quiet"
severity = "critical"
when = { kind = "inactivity", since = "login", days = 14 }
"#;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn alert(account: &str, rule: &str, day: &str, status: AlertStatus) -> Alert {
    Alert {
        alert_id: format!("{account}-{rule}-{day}"),
        account_id: account.into(),
        rule_id: rule.into(),
        severity: Severity::Warning,
        status,
        fired_at: d(day).and_hms_opt(23, 59, 59).unwrap().and_utc(),
        resolved_at: None,
        lifecycle_stage: None,
        health_score: None,
        metrics: Default::default(),
        csm_owner: None,
        reason: String::new(),
        action: None,
        console_url: None,
    }
}

fn fired(account: &str, rule: &str, day: &str) -> Alert {
    alert(account, rule, day, AlertStatus::Firing)
}

fn outcome(account: &str, outcome: Outcome, on: &str) -> RecordedOutcome {
    RecordedOutcome { account_id: account.into(), outcome, on: d(on), from: OutcomeSource::Event }
}

/// Window 03-01..03-30 (30 days: one month), horizon 30 days, so positives are losses dated
/// in (03-01, 04-29].
/// - a churned 03-20: drop fired 03-10 (lead 10), quiet 03-15 (lead 5);
/// - b contracted 04-20 (after `to`, inside the horizon): drop 03-25 (lead 26); quiet 03-01 is
///   before 04-20 − 30 = 03-21, so it does not catch b;
/// - c churned 03-25 with no alert: missed;
/// - d renewed: drop twice (healthy firings); e: no outcome, quiet once;
/// - f churned in January, g in June (after 04-29): lost outside the window; f has a quiet alert;
/// - h has an outcome but was never evaluated: not counted.
fn case() -> (Replay, Vec<RecordedOutcome>) {
    let alerts = vec![
        fired("a", "drop", "2026-03-10"),
        fired("a", "quiet", "2026-03-15"),
        alert("a", "drop", "2026-03-12", AlertStatus::Resolved),
        fired("b", "quiet", "2026-03-01"),
        fired("b", "drop", "2026-03-25"),
        fired("d", "drop", "2026-03-05"),
        fired("d", "drop", "2026-03-20"),
        fired("e", "quiet", "2026-03-12"),
        fired("f", "quiet", "2026-03-02"),
    ];
    let accounts = ["a", "b", "c", "d", "e", "f", "g"].map(String::from).to_vec();
    let outcomes = vec![
        outcome("a", Outcome::Churned, "2026-03-20"),
        outcome("a", Outcome::Churned, "2026-04-10"),
        outcome("b", Outcome::Contracted, "2026-04-20"),
        outcome("c", Outcome::Churned, "2026-03-25"),
        outcome("d", Outcome::Renewed, "2026-03-15"),
        outcome("f", Outcome::Churned, "2026-01-10"),
        outcome("g", Outcome::Churned, "2026-06-01"),
        outcome("h", Outcome::Churned, "2026-03-10"),
    ];
    (Replay { alerts, accounts, last_rows: Vec::new() }, outcomes)
}

fn scored() -> Score {
    let (replay, outcomes) = case();
    score(&replay, &outcomes, &RuleSet::parse(RULES).unwrap(), d("2026-03-01"), d("2026-03-30"), 30)
}

#[test]
fn the_whole_rule_set_is_scored_on_accounts_and_lead_times() {
    let s = scored();
    assert_eq!((s.accounts, s.lost_outside), (7, 2));
    let o = &s.overall;
    assert_eq!(o.rule_id, "all");
    assert_eq!((o.positives, o.caught, o.missed), (3, 2, 1));
    assert_eq!((o.alerted, o.true_alarms, o.false_alarms), (5, 2, 3), "a, b true; d, e, f false");
    assert_eq!((o.healthy, o.renewed, o.healthy_firings), (2, 1, 3));
    assert_eq!(o.positives + o.healthy + s.lost_outside, s.accounts, "the counts add up");
    assert_eq!(o.recall, Some(2.0 / 3.0));
    assert_eq!(o.precision, Some(0.4));
    assert_eq!(o.lead_days, [10, 26], "a: first catch 03-10, not 03-15; b: 03-25");
    assert_eq!((o.lead_days_median, o.lead_days_p90), (Some(18.0), Some(26.0)));
    assert_eq!(o.alerts_per_healthy_account_month, Some(1.5), "3 firings / (2 accounts × 1 month)");
}

#[test]
fn each_rule_is_scored_on_its_own_alerts() {
    let s = scored();
    let ids: Vec<&str> = s.rules.iter().map(|r| r.rule_id.as_str()).collect();
    assert_eq!(ids, ["drop", "quiet"]);
    let drop = &s.rules[0];
    assert_eq!((drop.caught, drop.missed, drop.alerted, drop.false_alarms), (2, 1, 3, 1));
    assert_eq!((drop.recall, drop.precision), (Some(2.0 / 3.0), Some(2.0 / 3.0)));
    assert_eq!(drop.lead_days, [10, 26]);
    assert_eq!(drop.alerts_per_healthy_account_month, Some(1.0));
    let quiet = &s.rules[1];
    assert_eq!((quiet.caught, quiet.missed, quiet.alerted, quiet.true_alarms), (1, 2, 4, 1), "b's alert is too early");
    assert_eq!((quiet.recall, quiet.precision), (Some(1.0 / 3.0), Some(0.25)));
    assert_eq!((quiet.lead_days_median, quiet.lead_days_p90), (Some(5.0), Some(5.0)));
    assert_eq!(quiet.alerts_per_healthy_account_month, Some(0.5));
}

#[test]
fn nothing_to_measure_is_null_not_zero() {
    let rules = RuleSet::parse(RULES).unwrap();
    let replay = Replay { accounts: vec!["x".into()], ..Default::default() };
    let s = score(&replay, &[], &rules, d("2026-03-01"), d("2026-03-30"), 90);
    let o = &s.overall;
    assert_eq!((o.positives, o.healthy, o.alerted), (0, 1, 0));
    assert_eq!((o.recall, o.precision, o.lead_days_median, o.lead_days_p90), (None, None, None, None));
    assert_eq!(o.alerts_per_healthy_account_month, Some(0.0), "a healthy account without alerts is a real 0");
    let empty = score(&Replay::default(), &[], &rules, d("2026-03-01"), d("2026-03-30"), 90);
    assert_eq!(empty.overall.alerts_per_healthy_account_month, None);
    let json = serde_json::to_value(&s).unwrap();
    assert!(json["overall"]["recall"].is_null(), "{json}");
}

#[test]
fn an_outcome_on_the_first_day_is_outside_and_on_the_alert_day_is_lead_zero() {
    let rules = RuleSet::parse(RULES).unwrap();
    let replay = Replay {
        alerts: vec![fired("a", "drop", "2026-03-10"), fired("b", "drop", "2026-03-01")],
        accounts: vec!["a".into(), "b".into()],
        last_rows: Vec::new(),
    };
    let outcomes = [outcome("a", Outcome::Churned, "2026-03-10"), outcome("b", Outcome::Churned, "2026-03-01")];
    let s = score(&replay, &outcomes, &rules, d("2026-03-01"), d("2026-03-30"), 90);
    assert_eq!((s.overall.positives, s.lost_outside), (1, 1), "the window is (from, to + horizon]");
    assert_eq!(s.overall.lead_days, [0]);
}

#[test]
fn median_and_p90_by_nearest_rank() {
    let ten: Vec<i64> = (1..=10).collect();
    assert_eq!((median(&ten), nearest_rank(&ten, 0.9)), (Some(5.5), Some(9.0)));
    assert_eq!((median(&[7]), nearest_rank(&[7], 0.9)), (Some(7.0), Some(7.0)));
    assert_eq!((median(&[]), nearest_rank(&[], 0.9)), (None, None));
    assert_eq!(parse_days("90d"), Ok(90));
    assert_eq!(parse_days("14"), Ok(14));
    assert!(parse_days("3w").is_err());
}

#[test]
fn the_table_has_a_line_for_the_set_and_one_per_rule() {
    let table = scored().table();
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("7 accounts = 3 churned/contracted in the window + 2 healthy (1 renewed) + 2 lost"),
        "{table}"
    );
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[3].starts_with("all ") && lines[3].contains(" 0.67 ") && lines[3].contains(" 0.40 "), "{table}");
    assert!(lines[5].starts_with("quiet ") && lines[5].ends_with("0.500"), "{table}");
}
