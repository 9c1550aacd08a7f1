//! A month's figures on less than a month of the book, against the real ClickHouse: on the first
//! weeks of an import (or of a new deployment) the 30 days hold a few days of use, and an account
//! in its renewal window read as paying for seats nobody uses — every one of them alerted on the
//! first pass. `seat_utilisation` (and the other 30-day ratios) are unknown until the book's
//! history covers 30 days, whichever account it comes from; then the same account is judged.
//! How far back the book reaches is unit-tested in `model::book`; this proves the queries and
//! the wiring.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use chrono::{Days, NaiveDate};
use schemas::event::{Event, EventKind};
use serde_json::json;
use testkit::aggregator::StoredHistory;
use testkit::events::{self, at};
use testkit::Stack;

/// The shipped rule (`deploy/rules.toml`).
const RULES: &str = r#"
[[rule]]
id = "low_seats_before_renewal"
description = "Under 40 % seat utilisation inside the renewal window"
severity = "critical"
stages = ["renewal"]
when = { kind = "threshold", metric = "seat_utilisation", op = "<", value = 0.4 }
"#;

/// `renew-co`: 10 seats, renewal 40 days after `end`, its traits sent on the history's first day
/// and 3 users in every day since, `days` days ending `end`; evaluated at the end of `end`. The
/// stored `seat_utilisation`, `stickiness_30d` and `active_users_30d`, and how many alerts fired.
async fn renewal_book(stack: &Stack, name: &str, days: u64) -> (serde_json::Value, usize) {
    let history = StoredHistory::new(stack, name, RULES).await;
    let topic = history.topic();
    let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let first = end - Days::new(days - 1);
    let mut traits = Event::new(
        EventKind::Account,
        "traits".into(),
        "renew-co".into(),
        String::new(),
        at(&format!("{first}T08:00:00Z")),
        at(&format!("{first}T08:00:00Z")),
        name.into(),
    );
    traits.traits = json!({"seats": 10, "contract_start": (end - Days::new(325)).to_string(),
                           "renewal_date": (end + Days::new(40)).to_string()})
    .as_object()
    .unwrap()
    .clone();
    let mut rows = vec![events::stored(traits, topic, 0)];
    let mut day = first;
    while day <= end {
        for u in 0..3 {
            let user = format!("u{u}");
            let e = events::login(format!("{user}-{day}"), "renew-co", &user, at(&format!("{day}T10:00:00Z")), name);
            rows.push(events::stored(e, topic, rows.len() as i64));
        }
        day = day.succ_opt().unwrap();
    }
    let fired = history.evaluate_at_end_of(&rows, end).await.fired.len();
    let stored = stack
        .query(&format!(
            "SELECT lifecycle_stage, seat_utilisation, stickiness_30d, active_users_30d
             FROM {}.account_metrics FINAL",
            stack.database()
        ))
        .await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    (stored[0].clone(), fired)
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn a_month_of_seats_is_not_judged_on_twenty_days_of_history() {
    let stack = Stack::from_env("short_history");
    let (row, fired) = renewal_book(&stack, "short_history", 20).await;
    assert_eq!(row["lifecycle_stage"], "renewal", "{row}");
    assert_eq!(row["active_users_30d"].to_string().trim_matches('"'), "3", "{row}");
    assert!(row["seat_utilisation"].is_null() && row["stickiness_30d"].is_null(), "{row}");
    assert_eq!(fired, 0, "3 of 10 seats on 20 days of a book is not a month's use: {row}");
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn the_same_seats_are_judged_once_the_book_covers_a_month() {
    // The control: the same account and use with 30 days of history. 3 of 10 seats used in the
    // month, inside the renewal window: the rule's case.
    let stack = Stack::from_env("short_history_month");
    let (row, fired) = renewal_book(&stack, "short_history_month", 30).await;
    assert_eq!(row["seat_utilisation"].as_f64(), Some(0.3), "{row}");
    assert_eq!(row["stickiness_30d"].as_f64(), Some(1.0), "everyone in every day: {row}");
    assert_eq!(fired, 1, "{row}");
}
