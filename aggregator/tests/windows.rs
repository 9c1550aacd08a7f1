//! The rolling windows a pass reads — day bitmaps of the last 64 days (`account_members`), sums
//! of the daily rollup's last 64 days, the lifetime table — against the same windows counted in
//! Rust straight from the events: live, and as of past days on either side of an epoch boundary
//! (including the days whose masks need no previous epoch, and all of it).
//!
//! Run by `deploy/local/test.sh`; ignored by a bare `cargo test`.

use std::collections::BTreeSet;

use aggregator::model::WindowRow;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use schemas::event::{Event, EventKind};
use testkit::Stack;
use warehouse::rows::EventRow;
use warehouse::Warehouse;

const USERS: i64 = 6;
const DAYS: i64 = 80;

/// 80 days of a small account: each user active on two days in five (shifted per user), logins
/// on a third of those, otherwise a feature; a data import every 4th day.
fn book(account: &str, today: NaiveDate, now: DateTime<Utc>) -> Vec<Event> {
    let mut events = Vec::new();
    for t in 0..DAYS {
        let day = today - Duration::days(t);
        let start = day.and_hms_opt(0, 0, 0).unwrap().and_utc();
        let at = |minute: i64| (start + Duration::minutes(minute)).min(now - Duration::seconds(1));
        for i in 0..USERS {
            if (t * 7 + i * 3) % 5 >= 2 {
                continue;
            }
            let user = format!("u{i}");
            let kind = if (t + i) % 3 == 0 { EventKind::Login } else { EventKind::FeatureUsed };
            let mut e = Event::new(kind, format!("{t}-{i}"), account.into(), user, at(i), now, "t".into());
            if kind == EventKind::FeatureUsed {
                e.feature = Some(format!("f{}", (t + i) % 5));
                e.count = Some(1);
            }
            events.push(e);
        }
        if t % 4 == 0 {
            let mut e = Event::new(
                EventKind::DataVolume,
                format!("{t}-d"),
                account.into(),
                "u0".into(),
                at(30),
                now,
                "t".into(),
            );
            e.records = Some(10 + t as u64);
            events.push(e);
        }
    }
    events
}

fn is_active(e: &Event) -> bool {
    matches!(e.kind, EventKind::Login | EventKind::FeatureUsed | EventKind::DataVolume)
}

/// The window row of `events` for windows ending on `d`, counted the plain way.
fn expected(events: &[Event], d: NaiveDate) -> WindowRow {
    let upto: Vec<&Event> = events.iter().filter(|e| e.timestamp.date_naive() <= d).collect();
    // Events of the days `from..=to` before `d`.
    let within = |from: i64, to: i64| {
        let (lo, hi) = (d - Duration::days(to), d - Duration::days(from));
        upto.iter().copied().filter(move |e| (lo..=hi).contains(&e.timestamp.date_naive()))
    };
    let users =
        |from, to| within(from, to).filter(|e| is_active(e)).map(|e| &e.user_id).collect::<BTreeSet<_>>().len() as u64;
    let logins = |from, to| within(from, to).filter(|e| e.kind == EventKind::Login).count() as u64;
    let login_users = |from, to| {
        within(from, to).filter(|e| e.kind == EventKind::Login).map(|e| &e.user_id).collect::<BTreeSet<_>>().len()
            as u64
    };
    let features = |from, to| within(from, to).filter_map(|e| e.feature.as_ref()).collect::<BTreeSet<_>>().len() as u64;
    let records = |from, to| within(from, to).map(|e| e.records.unwrap_or(0)).sum::<u64>();
    let events_in = |from, to| within(from, to).count() as u64;
    let user_days = |from: i64, to: i64| (from..=to).map(|t| users(t, t)).sum::<u64>();
    let weeks = |span: i64, f: &dyn Fn(i64, i64) -> u64| (0..=8).map(|k| f(7 * k + 1, 7 * k + span)).collect();
    let last = |pred: fn(&Event) -> bool| {
        upto.iter().filter(|e| pred(e)).map(|e| e.timestamp.timestamp() as u32).max().unwrap_or(0)
    };
    let first = upto.iter().map(|e| e.timestamp.date_naive()).min().unwrap();
    // Each user's days of the last 64, bit 63 = `d`, in user order (as `sorted_users` leaves the
    // stored row).
    let mut masks = std::collections::BTreeMap::<String, u64>::new();
    for e in within(0, 63).filter(|e| is_active(e)) {
        let ago = (d - e.timestamp.date_naive()).num_days();
        *masks.entry(e.user_id.clone()).or_default() |= 1 << (63 - ago);
    }
    WindowRow {
        account_id: events[0].account_id.clone(),
        active_users_1d: users(0, 0),
        active_users_7d: users(0, 6),
        active_users_30d: users(0, 29),
        active_users_prev_7d: users(7, 13),
        active_users_prev_30d: users(30, 59),
        logins_7d: logins(0, 6),
        logins_30d: logins(0, 29),
        login_users_7d: login_users(0, 6),
        login_users_30d: login_users(0, 29),
        events_7d: events_in(0, 6),
        events_prev_7d: events_in(7, 13),
        events_30d: events_in(0, 29),
        features_used_7d: features(0, 6),
        features_used_30d: features(0, 29),
        records_30d: records(0, 29),
        records_prev_30d: records(30, 59),
        bytes_30d: 0,
        bytes_prev_30d: 0,
        dau_sum_30d: user_days(0, 29),
        last_seen: last(is_active),
        last_login: last(|e| e.kind == EventKind::Login),
        first_day: first.signed_duration_since(NaiveDate::default()).num_days() as u16,
        weekly_user_days: weeks(7, &user_days),
        weekly_active_users: weeks(7, &users),
        weekly_logins: weeks(7, &logins),
        weekly_features: weeks(7, &features),
        weekly_records: weeks(7, &records),
        recent_user_days: weeks(3, &user_days),
        user_ids: masks.keys().cloned().collect(),
        user_masks: masks.values().copied().collect(),
    }
}

/// The row with its users in id order and those without a day in the window left out: the
/// query's `groupArray` order is the server's.
fn sorted_users(w: &WindowRow) -> WindowRow {
    let mut users: Vec<(String, u64)> =
        w.user_ids.iter().cloned().zip(w.user_masks.iter().copied()).filter(|(_, m)| *m != 0).collect();
    users.sort();
    WindowRow {
        user_ids: users.iter().map(|(u, _)| u.clone()).collect(),
        user_masks: users.iter().map(|(_, m)| *m).collect(),
        ..w.clone()
    }
}

/// Every field, for a readable comparison.
fn fields(w: &WindowRow) -> String {
    format!("{w:#?}")
}

#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn every_window_matches_the_events_live_and_as_of_past_days() {
    let stack = Stack::from_env("windows");
    let mut cfg = aggregator::RawAggregatorConfig::default();
    cfg.clickhouse.url = stack.clickhouse.clone();
    cfg.clickhouse.database = stack.database();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();

    let now = Utc::now();
    let today = now.date_naive();
    let events = book("win-co", today, now);
    let rows: Vec<EventRow> =
        events.iter().enumerate().map(|(i, e)| EventRow::new(e.clone(), "usage-events", 0, i as i64)).collect();
    // In several inserts, so the tables hold unmerged parts as they do while events stream in.
    for chunk in rows.chunks(97) {
        store.insert_rows(chunk).await.unwrap();
    }

    let day_number = |d: NaiveDate| d.signed_duration_since(NaiveDate::default()).num_days();
    // Past days: the last day of an epoch (no previous epoch needed), the first day of the next
    // (all of the previous epoch), and a day in between.
    let last_of_epoch = (1..65).map(|t| today - Duration::days(t)).find(|d| day_number(*d) % 64 == 63).unwrap();
    let past = [last_of_epoch, last_of_epoch + Duration::days(1), today - Duration::days(10)];
    let mut checked = 0;
    for (at, d) in std::iter::once((now, today)).chain(past.map(|d| (d.and_hms_opt(18, 0, 0).unwrap().and_utc(), d))) {
        let (inputs, features_seen) = aggregator::account_inputs(&store, at, "usage-events", &[0]).await.unwrap();
        assert_eq!(inputs.len(), 1, "{at}");
        let want = expected(&events, d);
        assert_eq!(fields(&sorted_users(&inputs[0].window)), fields(&want), "windows ending {d}");
        assert_eq!(features_seen, 5, "{d}");
        checked += 1;
    }
    assert_eq!(checked, 4);
}

/// A pass between full passes evaluates the accounts whose events were stored since the pass
/// before — with their new events counted — and no other; a rebalance makes the next one full.
#[tokio::test]
#[ignore = "needs the local stack: run deploy/local/test.sh"]
async fn an_incremental_pass_evaluates_the_accounts_stored_since_the_last_pass() {
    use std::sync::Arc;

    use aggregator::{CollectingSink, Evaluator, Ownership};

    let stack = Stack::from_env("incremental");
    let mut cfg = aggregator::RawAggregatorConfig::default();
    cfg.clickhouse.url = stack.clickhouse.clone();
    cfg.clickhouse.database = stack.database();
    cfg.evaluation.full_every_ms = 3_600_000;
    cfg.evaluation.chunk_accounts = 2; // the full passes read, write and alert in two chunks
    let cfg = cfg.build_and_validate().unwrap();
    let store = Warehouse::new(&cfg.clickhouse);
    store.migrate().await.unwrap();
    // Every pass at this one instant: a pass on the next day would be a full one (and its 1-day
    // window empty), so a pass with the wall clock could fail across midnight.
    let now = Utc::now();
    let login = |id: &str, account: &str, user: &str| {
        let e = Event::new(
            EventKind::Login,
            id.into(),
            account.into(),
            user.into(),
            now - Duration::seconds(5),
            now,
            "t".into(),
        );
        EventRow::new(e, "usage-events", 0, 0)
    };
    let first: Vec<EventRow> = ["a", "b", "c"].iter().map(|a| login(&format!("{a}1"), a, "u1")).collect();
    store.insert_rows(&first).await.unwrap();

    let ownership = Arc::new(Ownership::fixed([0]));
    let rules = aggregator::RuleSet::load(None).unwrap();
    let metrics = Arc::new(aggregator::Telemetry::new());
    let mut ev = Evaluator::new(&cfg, rules, store.clone(), CollectingSink::default(), metrics, ownership.clone());
    let full = ev.evaluate(now).await.unwrap();
    assert_eq!((full.full, full.accounts), (true, 3));

    // Nothing stored since: nothing to evaluate (no rule's clock runs for these accounts).
    tokio::time::sleep(std::time::Duration::from_secs(u64::from(aggregator::STORE_SLACK_SECS) + 1)).await;
    let _ = ev.evaluate(now).await.unwrap(); // still within the slack of the first inserts
    let idle = ev.evaluate(now).await.unwrap();
    assert_eq!((idle.full, idle.accounts), (false, 0));

    // A second user of `b` logs in: `b` alone is evaluated, and sees both users.
    store.insert_rows(&[login("b2", "b", "u2")]).await.unwrap();
    let next = ev.evaluate(now).await.unwrap();
    assert_eq!((next.full, next.accounts), (false, 1));
    let rows = ev.sink().last_metrics();
    assert_eq!((rows[0].account_id.as_str(), rows[0].active_users_1d), ("b", 2));

    // After a rebalance the pass covers every account again.
    ownership.assign([0]);
    let after = ev.evaluate(now).await.unwrap();
    assert_eq!((after.full, after.accounts), (true, 3));

    // Between a revoke and an assign nothing is owned: a pass evaluates nothing, and fails
    // nothing (an empty `IN ()` would be a syntax error).
    ownership.assign([]);
    let none = ev.evaluate(now).await.unwrap();
    assert_eq!(none.accounts, 0);
}
