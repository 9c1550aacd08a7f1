//! Users, not only totals, against the real ClickHouse and broker: a regular user who stopped
//! coming is lapsed, and the alert and the stored metrics name them with the name and email of
//! their identify traits (issue 21: "say who"); a lapsed user never identified is named by id.
//! A small team gone silent is a stop, counted against its own weekday habit: alerted from its
//! third silent working day, and a weekend with one silent working day is nothing.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use chrono::{Datelike, Days, NaiveDate};
use schemas::event::{Event, EventKind};
use testkit::aggregator::StoredHistory;
use testkit::events::{self, at};
use testkit::Stack;

const RULES: &str = r#"
[[rule]]
id = "users_lapsing"
description = "Regular users have stopped coming back"
severity = "warning"
when = { kind = "threshold", metric = "regular_users_lapsed", op = ">=", value = 1 }
"#;

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn lapsed_users_are_named_by_their_identify_traits() {
    let stack = Stack::from_env("people");
    let history = StoredHistory::new(&stack, "people", RULES).await;
    let topic = history.topic();

    // Six weeks of team-co: u1..u4 in every day; ana (identified) gone for the last 9 days, u4
    // (never identified) for the last 7. Evaluated as of 2026-03-31.
    let day0 = NaiveDate::from_ymd_opt(2026, 2, 17).unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let mut rows = Vec::new();
    let mut day = day0;
    while day < end {
        let gone = |user: &str| match user {
            "ana" => day > end - Days::new(10),
            "u4" => day > end - Days::new(8),
            _ => false,
        };
        for user in ["u1", "u2", "ana", "u4"].into_iter().filter(|u| !gone(u)) {
            let when = at(&format!("{day}T09:00:00Z"));
            let e = events::login(format!("{user}-{day}"), "team-co", user, when, "people");
            rows.push(events::stored(e, topic, rows.len() as i64));
        }
        day = day.succ_opt().unwrap();
    }
    let when = at(&format!("{day0}T08:00:00Z"));
    let mut identify =
        Event::new(EventKind::User, "id-ana".into(), "team-co".into(), "ana".into(), when, when, "people".into());
    identify.traits = serde_json::json!({"name": "Ana Lee", "email": "ana@team.example"}).as_object().unwrap().clone();
    rows.push(events::stored(identify, topic, rows.len() as i64));
    let r = history.evaluate_at_end_of(&rows, end).await;

    assert_eq!(r.fired.len(), 1, "{r:?}");
    let reason = &r.fired[0].reason;
    assert!(reason.contains("ana (Ana Lee <ana@team.example>, 9 days), u4 (7 days)"), "{reason}");
    let stored = stack
        .query(&format!(
            "SELECT lapsed_users, regular_users, regular_users_lapsed, regular_users_lapsed_long, decline_score FROM {}.account_metrics FINAL WHERE account_id = 'team-co'",
            stack.database()
        ))
        .await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["lapsed_users"], "ana (Ana Lee <ana@team.example>, 9 days), u4 (7 days)");
    // ClickHouse's JSON quotes 64-bit integers.
    let n = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.parse().ok());
    assert_eq!((n(&stored[0]["regular_users"]), n(&stored[0]["regular_users_lapsed"])), (Some(4), Some(2)));
    // Gone 9 and 7 days: lapsed, neither yet longer than most people's leave.
    assert_eq!(n(&stored[0]["regular_users_lapsed_long"]), Some(0));
    // Six weeks give a usual: the decline score is computed and stored (migration 019), a
    // probability (what it says of which rows: model::score's tests).
    let score = stored[0]["decline_score"].as_f64().expect("decline_score stored");
    assert!((0.0..=1.0).contains(&score), "{score}");
}

const SILENT_RULES: &str = r#"
[[rule]]
id = "usage_silent"
description = "Nobody has come in for longer than this account's habit makes likely"
severity = "critical"
when = { kind = "threshold", metric = "silence_evidence", op = ">=", value = 8 }
"#;

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_small_team_gone_silent_is_a_stop() {
    let stack = Stack::from_env("silence");
    let history = StoredHistory::new(&stack, "silence", SILENT_RULES).await;
    let topic = history.topic();
    // Six weeks of three people who come in on weekdays, evaluated at the end of Tuesday
    // 2026-03-31. quiet-co: nobody since Wednesday the 25th (Wed, Thu, Fri, Mon: 4 working days
    // of 3 expected). closed-co: nobody since Friday the 27th (Fri, Mon: 2 working days).
    let day0 = NaiveDate::from_ymd_opt(2026, 2, 17).unwrap();
    let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let silent_from = |account: &str| match account {
        "quiet-co" => NaiveDate::from_ymd_opt(2026, 3, 25).unwrap(),
        _ => NaiveDate::from_ymd_opt(2026, 3, 27).unwrap(),
    };
    let mut rows = Vec::new();
    for account in ["quiet-co", "closed-co"] {
        let mut day = day0;
        while day <= end {
            let weekday = day.weekday().num_days_from_monday() < 5;
            if weekday && day < silent_from(account) {
                for user in ["u1", "u2", "u3"] {
                    let when = at(&format!("{day}T10:00:00Z"));
                    let e = events::login(format!("{account}-{user}-{day}"), account, user, when, "silence");
                    rows.push(events::stored(e, topic, rows.len() as i64));
                }
            }
            day = day.succ_opt().unwrap();
        }
    }
    let r = history.evaluate_at_end_of(&rows, end).await;
    let fired: Vec<&str> = r.fired.iter().map(|a| a.account_id.as_str()).collect();
    assert_eq!(fired, ["quiet-co"], "{r:?}");
    assert!(r.fired[0].reason.ends_with(": nobody in from 2026-03-25 to 2026-03-30 (6 days)"), "{}", r.fired[0].reason);
    let stored = stack
        .query(&format!(
            "SELECT account_id, silent_days, silence_evidence FROM {}.account_metrics FINAL ORDER BY account_id",
            stack.database()
        ))
        .await;
    let silence: Vec<(&str, Option<u64>, Option<f64>)> = stored
        .iter()
        .map(|row| {
            // ClickHouse's JSON quotes 64-bit integers.
            let days = row["silent_days"].as_str().and_then(|d| d.parse().ok());
            (row["account_id"].as_str().unwrap(), days, row["silence_evidence"].as_f64())
        })
        .collect();
    // Stored as computed (migration 020): 6 silent days, 4 of them working days of a usual of 3;
    // 4 silent days with 2 working days in them, 0.
    assert_eq!(silence, [("closed-co", Some(4), Some(0.0)), ("quiet-co", Some(6), Some(12.0))]);
}
