//! Hand-computed fixture: a small book of accounts with known users, logins, features, data,
//! surveys and tickets on known days, evaluated at a fixed time against the real ClickHouse.
//! Every metric, the lifecycle stage and the health components must equal the values worked
//! out by hand below.
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::sync::Arc;

use aggregator::model::MetricsRow;
use aggregator::RuleSet;
use aggregator::{Evaluator, Ownership};
use chrono::{DateTime, NaiveDate, Utc};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;
use schemas::event::{Event, EventKind, TicketStatus};
use serde_json::json;
use testkit::Stack;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

const TOPIC: &str = "fixture-events";

fn at(day: &str) -> DateTime<Utc> {
    format!("{day}T12:00:00Z").parse().unwrap()
}

fn ev(n: usize, account: &str, user: &str, kind: EventKind, day: &str) -> Event {
    Event::new(kind, format!("fx-{n:03}"), account.into(), user.into(), at(day), at(day), "fixture".into())
}

/// alpha: 10 seats, contract 2025-01-15 → renewal 2026-09-15 (77 days after as_of: renewal stage).
/// beta: no traits, first seen on as_of (onboarding by first-seen date).
fn book() -> Vec<Event> {
    use EventKind::*;
    let mut v = Vec::new();
    let mut push = |account: &str, user: &str, kind: EventKind, day: &str, f: &dyn Fn(&mut Event)| {
        let mut e = ev(v.len(), account, user, kind, day);
        f(&mut e);
        v.push(e);
    };
    let none = |_: &mut Event| {};
    push("alpha", "", Account, "2025-01-15", &|e| {
        e.traits = json!({"seats": 10, "plan": "pro", "csm": "dana@vendor.example",
                          "contract_start": "2025-01-15", "renewal_date": "2026-09-15"})
        .as_object()
        .unwrap()
        .clone()
    });
    // Previous 30 days (05-02..05-31): u1..u6 log in, u1 imports 300 records.
    for u in ["u1", "u2", "u3", "u4", "u5", "u6"] {
        push("alpha", u, Login, "2026-05-15", &none);
    }
    push("alpha", "u1", DataVolume, "2026-05-20", &|e| e.records = Some(300));
    // An old CSAT, outside the 90 days.
    push("alpha", "u1", Survey, "2026-03-01", &|e| e.csat = Some(2));
    // Last 30 days, before the last two weeks.
    push("alpha", "u1", Survey, "2026-06-01", &|e| e.nps = Some(9));
    push("alpha", "u5", Login, "2026-06-05", &none);
    push("alpha", "u1", DataVolume, "2026-06-10", &|e| e.records = Some(100));
    push("alpha", "u2", FeatureUsed, "2026-06-10", &|e| {
        e.feature = Some("exports".into());
        e.count = Some(1)
    });
    push("alpha", "", SupportTicket, "2026-06-10", &|e| {
        e.ticket_id = Some("T1".into());
        e.ticket_status = Some(TicketStatus::Opened)
    });
    push("alpha", "", SupportTicket, "2026-06-12", &|e| {
        e.ticket_id = Some("T1".into());
        e.ticket_status = Some(TicketStatus::Closed)
    });
    // Previous 7 days (06-17..06-23): u1..u4 log in; a survey.
    for u in ["u1", "u2", "u3", "u4"] {
        push("alpha", u, Login, "2026-06-20", &none);
    }
    push("alpha", "u2", Survey, "2026-06-20", &|e| {
        e.nps = Some(6);
        e.csat = Some(4)
    });
    // Last 7 days (06-24..06-30).
    push("alpha", "u2", Login, "2026-06-25", &none);
    push("alpha", "u3", FeatureUsed, "2026-06-26", &|e| {
        e.feature = Some("reports".into());
        e.count = Some(2)
    });
    push("alpha", "", SupportTicket, "2026-06-28", &|e| {
        e.ticket_id = Some("T2".into());
        e.ticket_status = Some(TicketStatus::Opened)
    });
    push("alpha", "u1", Login, "2026-06-29", &none);
    push("alpha", "u1", Login, "2026-06-30", &none);
    push("beta", "b1", Login, "2026-06-30", &none);
    v
}

fn close(got: Option<f64>, want: Option<f64>, what: &str) {
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{what}: got {g}, want {w}"),
        _ => assert_eq!(got, want, "{what}"),
    }
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn every_metric_stage_and_health_component_matches_the_hand_computed_values() {
    let stack = Stack::from_env("fixture");
    let mut cfg = testkit::aggregator::config_for(&stack, "metrics-fixture");
    cfg.kafka.events_topic = TOPIC.into();
    cfg.metrics.feature_catalogue = ["reports", "exports", "alerts", "api"].map(String::from).to_vec();
    cfg.rules_file = Some(testkit::aggregator::rules_file(&stack, "")); // no rules
    let cfg = cfg.build_and_validate().unwrap();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    let rows: Vec<EventRow> =
        book().into_iter().enumerate().map(|(i, e)| EventRow::new(e, TOPIC, 0, i as i64)).collect();
    store.insert_rows(&rows).await.unwrap();

    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &stack.kafka).create().unwrap();
    let metrics = Arc::new(aggregator::Telemetry::new());
    let rules = RuleSet::load(cfg.rules_file.as_deref()).unwrap();
    let mut evaluator = Evaluator::live(&cfg, rules, store.clone(), producer, metrics, Arc::new(Ownership::fixed([0])));
    let now: DateTime<Utc> = "2026-06-30T18:00:00Z".parse().unwrap();
    let report = evaluator.evaluate(now).await.unwrap();
    assert_eq!(report.accounts, 2);

    // Read back through the typed row: also proves MetricsRow matches the table column for column.
    let got: Vec<MetricsRow> = store
        .client()
        .query(&format!("SELECT ?fields FROM {}.account_metrics FINAL ORDER BY account_id", stack.database()))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let (a, b) = (&got[0], &got[1]);
    let as_of =
        (NaiveDate::from_ymd_opt(2026, 6, 30).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
    let noon_0630 = at("2026-06-30").timestamp() as u32;

    // alpha, by hand (windows end 06-30 inclusive):
    assert_eq!(a.account_id, "alpha");
    assert_eq!(a.as_of as i64, as_of);
    assert_eq!(a.computed_at, now.timestamp() as u32);
    assert_eq!((a.lifecycle_stage.as_str(), a.days_since_start, a.days_to_renewal), ("renewal", Some(531), Some(77)));
    assert_eq!((a.plan.as_str(), a.csm_owner.as_str(), a.seats), ("pro", "dana@vendor.example", Some(10)));
    // active: 06-30 {u1}; 06-24.. {u1,u2,u3}; 06-01.. {u1..u5}; 06-17..06-23 {u1..u4}; 05-02..05-31 {u1..u6}
    assert_eq!(
        (a.active_users_1d, a.active_users_7d, a.active_users_30d, a.active_users_prev_7d, a.active_users_prev_30d),
        (1, 3, 5, 4, 6)
    );
    close(a.active_users_change_7d, Some(-25.0), "active users change 7d");
    close(a.active_users_change_30d, Some((5.0 - 6.0) / 6.0 * 100.0), "active users change 30d");
    // logins: 06-25, 06-29, 06-30 in 7 days; + 4 on 06-20 + 06-05 in 30 days
    assert_eq!((a.logins_7d, a.logins_30d, a.login_users_7d, a.login_users_30d), (3, 8, 2, 5));
    // events of every kind: 7d = 3 logins + feature + ticket; prev 7d = 4 logins + survey;
    // 30d adds survey 06-01, login 06-05, data, feature, two ticket events in 06-10..06-12
    assert_eq!((a.events_7d, a.events_prev_7d, a.events_30d), (5, 5, 16));
    close(a.events_change_7d, Some(0.0), "events change");
    close(a.events_per_active_user_7d, Some(5.0 / 3.0), "events per active user");
    assert_eq!((a.features_used_7d, a.features_used_30d), (1, 2));
    close(a.feature_breadth_30d, Some(0.5), "breadth: 2 of a 4-feature catalogue");
    assert_eq!((a.records_30d, a.records_prev_30d, a.bytes_30d, a.bytes_prev_30d), (100, 300, 0, 0));
    close(a.records_change_30d, Some(-200.0 / 3.0), "records change");
    close(a.bytes_change_30d, None, "no bytes before");
    // daily active users in 30 days: 06-05 1, 06-10 2, 06-20 4, 06-25 1, 06-26 1, 06-29 1, 06-30 1 = 11
    close(a.stickiness_30d, Some(11.0 / 30.0 / 5.0), "stickiness");
    close(a.seat_utilisation, Some(0.5), "5 of 10 seats");
    assert_eq!((a.last_seen, a.last_login), (Some(noon_0630), Some(noon_0630)));
    assert_eq!((a.days_since_last_activity, a.days_since_last_login), (Some(0), Some(0)));
    assert_eq!((a.latest_nps, a.open_tickets), (Some(6), 1));
    close(a.avg_csat_90d, Some(4.0), "the March CSAT is outside 90 days");
    // Baselines: complete weeks ending yesterday (06-29), newest first. User-days (daily active
    // users summed): 06-23..29 {06-25, 06-26, 06-29} = 3; 06-16..22 = 4; 06-09..15 = 2;
    // 06-02..08 = 1; 05-26..06-01 = 0; 05-19..25 = 1; 05-12..18 = 6; then 0, 0. The account was
    // seen in 2025 (its traits), so all eight earlier weeks count: median of 4 2 1 0 1 6 0 0 = 1.
    assert_eq!((a.active_user_days_7d, a.baseline_weeks), (3, Some(8)));
    close(a.active_user_days_baseline, Some(1.0), "user-days baseline");
    close(a.active_user_days_vs_baseline, Some(200.0), "3 vs a usual 1");
    close(a.active_users_vs_baseline, Some(200.0), "one user a day: distinct users = user-days here");
    // The last three whole days (06-27..29: 1) vs the same weekdays before (4 on 06-20, then 0s):
    // the usual is 0, so there is no percentage, not an infinite one.
    close(a.active_user_days_3d_vs_baseline, None, "nothing to fall from");
    // Logins 2 vs weeks 4 0 1 0 0 6 0 0 (median 0); features and records: median 0 too.
    close(a.logins_baseline, Some(0.0), "logins baseline");
    assert_eq!((a.logins_vs_baseline, a.features_used_vs_baseline, a.records_vs_baseline), (None, None, None));
    // health, renewal weights (.30 .20 .25 .10 .15):
    // deployment 0.5/0.8 → 62.5; adoption 0.5/0.5 → 100; trend from the baseline, +200 % → 100;
    // value 100 − 66.67 → 33.33; experience mean(60, 75) − 10 per open ticket → 57.5
    close(a.health_deployment, Some(62.5), "deployment");
    close(a.health_adoption, Some(100.0), "adoption");
    close(a.health_trend, Some(100.0), "trend");
    close(a.health_value, Some(100.0 - 200.0 / 3.0), "value");
    close(a.health_experience, Some(57.5), "experience");
    // .3·62.5 + .2·100 + .25·100 + .1·33.33 + .15·57.5 = 75.71 → 75.7; deployment's shortfall
    // .3·37.5 is the largest
    close(a.health_score, Some(75.7), "score");
    assert_eq!((a.health_band.as_str(), a.health_weakest.as_str(), a.health_cap.as_str()), ("green", "deployment", ""));
    close(a.health_change_14d, None, "no history 14 days back");

    // beta: one login today, nothing else known.
    assert_eq!(b.account_id, "beta");
    assert_eq!(
        (b.lifecycle_stage.as_str(), b.days_since_start, b.days_to_renewal, b.seats),
        ("onboarding", None, None, None)
    );
    assert_eq!((b.active_users_1d, b.active_users_7d, b.active_users_30d, b.active_users_prev_7d), (1, 1, 1, 0));
    close(b.active_users_change_7d, None, "no previous week");
    close(b.seat_utilisation, None, "no seats known");
    close(b.stickiness_30d, Some(1.0 / 30.0), "stickiness");
    assert_eq!((b.latest_nps, b.avg_csat_90d, b.open_tickets), (None, None, 0));
    // Day 0 of onboarding: seats and breadth are not scored in the first 14 days, and nothing
    // else has an input, so there is no score yet (not a red one).
    assert_eq!((b.health_deployment, b.health_trend, b.health_value, b.health_experience), (None, None, None, None));
    close(b.health_adoption, None, "adoption: too early");
    close(b.health_score, None, "score");
    assert_eq!((b.health_band.as_str(), b.health_weakest.as_str()), ("", ""));

    // Time-based metrics move without new events: a week later, alpha has been silent 7 days.
    let later: DateTime<Utc> = "2026-07-07T18:00:00Z".parse().unwrap();
    evaluator.evaluate(later).await.unwrap();
    let later_rows: Vec<MetricsRow> = store
        .client()
        .query(&format!("SELECT ?fields FROM {}.account_metrics FINAL WHERE account_id = 'alpha'", stack.database()))
        .fetch_all()
        .await
        .unwrap();
    let l = &later_rows[0];
    assert_eq!(
        (l.days_since_last_login, l.days_since_last_activity, l.active_users_7d, l.active_users_prev_7d),
        (Some(7), Some(7), 0, 3)
    );
    assert_eq!(l.days_to_renewal, Some(70));
    // A week of silence: the last whole week (06-30..07-06) has 1 user-day (06-30) against a usual
    // of 1.5 (median of 3 4 2 1 0 1 6 0): −33 %, trend 100 − 2.5·33.3 = 16.7. Deployment 4 of 10
    // seats → 50; the rest as before: .3·50 + .2·100 + .25·16.67 + .1·33.33 + .15·57.5 = 51.1,
    // already under the falling-usage cap (60), so no cap is named.
    close(l.active_user_days_vs_baseline, Some(-100.0 / 3.0), "1 vs 1.5");
    assert_eq!((l.health_cap.as_str(), l.health_score, l.health_band.as_str()), ("", Some(51.1), "yellow"));
    // The daily health history holds both days, one row each.
    let history: Vec<(u16, Option<f64>)> = store
        .client()
        .query(&format!(
            "SELECT day, health_score FROM {}.account_health_daily FINAL WHERE account_id = 'alpha' ORDER BY day",
            stack.database()
        ))
        .fetch_all()
        .await
        .unwrap();
    let day = |d: &str| aggregator::model::date_number(d.parse().unwrap());
    assert_eq!(history, vec![(day("2026-06-30"), Some(75.7)), (day("2026-07-07"), Some(51.1))]);
    // Two weeks after the first pass, the history gives the change: 75.7 then, today's score now.
    let two_weeks: DateTime<Utc> = "2026-07-14T18:00:00Z".parse().unwrap();
    evaluator.evaluate(two_weeks).await.unwrap();
    let rows: Vec<MetricsRow> = store
        .client()
        .query(&format!("SELECT ?fields FROM {}.account_metrics FINAL WHERE account_id = 'alpha'", stack.database()))
        .fetch_all()
        .await
        .unwrap();
    let t = &rows[0];
    assert_eq!(t.health_score_14d_ago, Some(75.7));
    close(t.health_change_14d, t.health_score.map(|s| ((s - 75.7) * 10.0).round() / 10.0), "change in 14 days");
    assert!(t.health_change_14d.unwrap() < 0.0, "{t:?}");
}
