//! The console's seed book lands as the console needs it: every account's metrics, a health
//! history row per account and backfilled day, and open alerts on at-risk accounts.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use testkit::Stack;

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn the_seed_book_fills_metrics_history_and_alerts() {
    let stack = Stack::from_env("seed");
    let started = std::time::Instant::now();
    let seeded = testkit::console::seed_book(&stack).await;
    eprintln!("seeded in {:?}: at risk {:?}, open {:?}", started.elapsed(), seeded.at_risk, seeded.open_alerts);
    let db = stack.database();
    let (from, to) = seeded.history;
    let days = (to - from).num_days() + 1;
    let per_account = stack
        .query(&format!(
            "SELECT account_id, uniqExact(day) AS days FROM {db}.account_health_daily
             WHERE day BETWEEN toDate('{from}') AND toDate('{to}') GROUP BY account_id ORDER BY account_id"
        ))
        .await;
    assert_eq!(per_account.len(), testkit::console::ACCOUNTS, "{per_account:?}");
    // An account onboarding inside the book starts later; most cover every day.
    let full = per_account.iter().filter(|r| r["days"].to_string().trim_matches('"') == days.to_string()).count();
    assert!(full >= testkit::console::ACCOUNTS / 2, "{per_account:?}");
    assert!(seeded.at_risk_alerts().len() >= 2);
    for a in seeded.at_risk_alerts() {
        let truth = seeded.book.accounts.iter().find(|b| b.id == a.account_id).unwrap();
        assert!(truth.at_risk(), "{a:?}");
        assert!(!a.alert_id.is_empty());
    }
}
