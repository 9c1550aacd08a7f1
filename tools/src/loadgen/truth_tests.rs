//! Each kind of account behaves as its ground truth says, read from the generated events.

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde_json::Value;

use super::book::{Book, Kind, Span};
use super::generate::day_events;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 24).unwrap()
}

/// A 400-account, 75-day book and all its events by day (built once: it is the slow part).
fn book() -> &'static (Book, HashMap<NaiveDate, Vec<Value>>) {
    static BOOK: std::sync::OnceLock<(Book, HashMap<NaiveDate, Vec<Value>>)> = std::sync::OnceLock::new();
    BOOK.get_or_init(|| {
        let book = Book::new(400, 75, 7, today());
        let events = book.days().map(|d| (d, day_events(&book, d))).collect();
        (book, events)
    })
}

/// Logins of `account` on the days [from, to].
fn logins(account: &str, from: NaiveDate, to: NaiveDate) -> usize {
    logins_where("account_id", account, from, to)
}

/// The days [from, to] that are not public holidays.
fn working_days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to).filter(|d| !book().0.holidays.contains(d))
}

/// Logins whose `field` is `value` on the days [from, to], public holidays left out (their own
/// test below).
fn logins_where(field: &str, value: &str, from: NaiveDate, to: NaiveDate) -> usize {
    let (_, events) = book();
    working_days(from, to)
        .filter_map(|d| events.get(&d))
        .flatten()
        .filter(|e| e[field] == value && e["kind"] == "login")
        .count()
}

fn days(d: NaiveDate, n: i64) -> NaiveDate {
    if n >= 0 {
        d + Days::new(n as u64)
    } else {
        d - Days::new((-n) as u64)
    }
}

fn of(kind: Kind) -> impl Iterator<Item = &'static super::book::Account> {
    book().0.accounts.iter().filter(move |a| a.kind == kind)
}

#[test]
fn every_kind_appears_and_the_first_twelve_are_the_demo_mix() {
    let (b, _) = book();
    for (kind, n) in b.kinds() {
        assert!(n > 0, "{kind:?}");
    }
    assert_eq!(b.kinds().iter().map(|(_, n)| n).sum::<usize>(), 400);
    let first: Vec<Kind> = Book::new(12, 35, 42, today()).accounts.iter().map(|a| a.kind).collect();
    assert!(Kind::ALL.iter().all(|k| first.contains(k)), "{first:?}");
}

#[test]
fn at_risk_accounts_have_their_dates_inside_the_book() {
    let (b, _) = book();
    for a in &b.accounts {
        assert_eq!(a.decline_onset.is_some(), a.at_risk(), "{}", a.id);
        assert_eq!(a.churn_date.is_some(), a.at_risk() && a.kind != Kind::Dormant, "{}", a.id);
        if let (Some(o), Some(c)) = (a.decline_onset, a.churn_date) {
            assert!(o < c && o >= b.first_day && o <= b.today, "{}: {o} {c}", a.id);
        }
    }
    let inside = b.accounts.iter().filter(|a| a.decline_onset.is_some_and(|o| o > days(b.today, -54))).count();
    let at_risk = b.accounts.iter().filter(|a| a.at_risk()).count();
    assert!(inside * 10 >= at_risk * 8, "{inside} of {at_risk} onsets in the last 54 days");
    let churned = b.accounts.iter().filter(|a| a.churn_date.is_some_and(|c| c <= b.today)).count();
    let fading = b.accounts.iter().filter(|a| a.churn_date.is_some_and(|c| c > b.today)).count();
    assert!(churned > 5 && fading > 5, "churned {churned}, still fading {fading}");
}

/// What a day weighs in a week: a weekend day what the book's users do on it, a fifth of a weekday.
fn weight(d: NaiveDate) -> f64 {
    if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        0.2
    } else {
        1.0
    }
}

/// Logins per week of `account` on the working days of [from, to]: a weekend day weighs what
/// the book's users do on it (a fifth of a weekday), so a span without its holidays compares
/// with a whole week.
fn weekly(account: &str, from: NaiveDate, to: NaiveDate) -> f64 {
    let worked: f64 = working_days(from, to).map(weight).sum();
    logins(account, from, to) as f64 * 5.4 / worked.max(0.2)
}

#[test]
fn on_a_public_holiday_the_whole_book_stays_at_home() {
    let (b, events) = book();
    assert_eq!(b.holidays.len(), 3, "{:?}", b.holidays);
    let logins_on = |d: NaiveDate| events.get(&d).map_or(0, |e| e.iter().filter(|e| e["kind"] == "login").count());
    for &h in &b.holidays {
        assert!(!matches!(h.weekday(), Weekday::Sat | Weekday::Sun), "{h}");
        let usual = logins_on(days(h, -7)).max(logins_on(days(h, 7)));
        assert!(logins_on(h) * 100 <= usual * 15, "{h}: {} logins, {usual} on the same weekday", logins_on(h));
        // Every kind, not only some accounts: a book-wide closure.
        let quiet = b.accounts.iter().filter(|a| logins(&a.id, days(h, -7), days(h, -7)) > 2).filter(|a| {
            events[&h].iter().filter(|e| e["account_id"] == a.id.as_str() && e["kind"] == "login").count() * 2
                < logins(&a.id, days(h, -7), days(h, -7))
        });
        let busy = b.accounts.iter().filter(|a| logins(&a.id, days(h, -7), days(h, -7)) > 2).count();
        assert!(quiet.count() * 10 >= busy * 8, "{h}: most accounts quiet");
    }
}

#[test]
fn a_dip_week_loses_the_group_away_and_use_returns() {
    let mut checked = 0;
    for a in of(Kind::Dip) {
        let dip = a.dip.unwrap();
        assert!(dip.to <= days(today(), -7) && dip.from > days(today(), -54), "{}: {dip:?}", a.id);
        // Only the users not on their own leave in the weeks compared: a holiday of one of the
        // others would blur the group's week.
        let compared = |v: &Span| v.from <= days(dip.to, 7) && v.to >= days(dip.from, -14);
        let here: HashSet<&str> =
            a.users.iter().filter(|u| !u.vacation.as_ref().is_some_and(compared)).map(|u| u.id.as_str()).collect();
        let weekly = |from: NaiveDate, to: NaiveDate| {
            let (_, events) = book();
            let worked: f64 = working_days(from, to).map(weight).sum();
            let logins = working_days(from, to)
                .filter_map(|d| events.get(&d))
                .flatten()
                .filter(|e| e["kind"] == "login" && e["user_id"].as_str().is_some_and(|u| here.contains(u)))
                .count();
            logins as f64 * 5.4 / worked.max(0.2)
        };
        let before = weekly(days(dip.from, -14), days(dip.from, -1));
        if before < 20.0 {
            continue; // too few logins to tell a fall from chance
        }
        let during = weekly(dip.from, dip.to);
        let after = weekly(days(dip.to, 1), days(dip.to, 7));
        assert!(during <= 0.65 * before, "{}: {before} a week before, {during} in the dip", a.id);
        assert!(after >= 0.7 * before, "{}: {before} a week before, {after} after", a.id);
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

#[test]
fn a_slide_loses_use_progressively_and_a_cliff_at_once() {
    let mut checked = 0;
    for a in of(Kind::Slide).chain(of(Kind::HappyFader)) {
        let (o, c) = (a.decline_onset.unwrap(), a.churn_date.unwrap());
        let end = c.min(today());
        let half = days(o, (end - o).num_days() / 2);
        let before = weekly(&a.id, days(o, -14), days(o, -1));
        if (end - o).num_days() < 14 || o < days(book().0.first_day, 14) || before < 20.0 {
            continue;
        }
        let (early, late) = (weekly(&a.id, o, half), weekly(&a.id, days(half, 1), end));
        // A slide still under way at the end has lost less than one that reached its churn date.
        let lost = if c <= today() { 0.6 } else { 0.75 };
        assert!(
            early <= before * 1.15 && late < early && late <= before * lost,
            "{}: {before} → {early} → {late}",
            a.id
        );
        if c < today() {
            assert_eq!(logins(&a.id, days(c, 1), today()), 0, "{}: use after the churn date", a.id);
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
    for a in of(Kind::Cliff) {
        let o = a.decline_onset.unwrap();
        let before = weekly(&a.id, days(o, -14), days(o, -1));
        if before < 20.0 || o < days(book().0.first_day, 14) {
            continue;
        }
        let after = weekly(&a.id, days(o, 3), days(o, 9).min(today()).max(days(o, 3)));
        assert!(after <= before * 0.2, "{}: {before} → {after}", a.id);
    }
}

#[test]
fn tiny_accounts_have_two_or_three_users_and_dormant_ones_nobody_for_16_days() {
    assert!(of(Kind::Tiny).all(|a| (2..=3).contains(&a.users.len())));
    let (b, events) = book();
    for a in of(Kind::Dormant) {
        let quiet = (b.today - a.decline_onset.unwrap()).num_days() + 1;
        assert!((16..=25).contains(&quiet), "{}: {quiet}", a.id);
        let last16 = (0..16).flat_map(|n| &events[&days(b.today, -n)]).filter(|e| e["account_id"] == a.id.as_str());
        assert_eq!(last16.count(), 0, "{}", a.id);
    }
}

#[test]
fn a_happy_fader_keeps_sending_glowing_surveys() {
    let (_, events) = book();
    for a in of(Kind::HappyFader) {
        let surveys: Vec<&Value> =
            events.values().flatten().filter(|e| e["account_id"] == a.id.as_str() && e["kind"] == "survey").collect();
        assert!(surveys.len() >= 3, "{}: {}", a.id, surveys.len());
        for s in surveys {
            assert!(s["nps"].as_u64().unwrap() >= 9 && s["csat"] == 5, "{s}");
        }
    }
}

#[test]
fn outcomes_on_churn_and_renewal_dates_only_when_enabled() {
    let (b, events) = book();
    let outcomes: Vec<&Value> = events.values().flatten().filter(|e| e["kind"] == "outcome").collect();
    let by_account: HashSet<(&str, &str, String)> = outcomes
        .iter()
        .map(|e| {
            (
                e["account_id"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["timestamp"].to_string()[1..11].to_owned(),
            )
        })
        .collect();
    let mut want = HashSet::new();
    for a in &b.accounts {
        if let Some(c) = a.churn_date.filter(|c| *c <= b.today) {
            want.insert((a.id.as_str(), "churned", c.to_string()));
        }
        if !a.at_risk() && a.renewal_date <= b.today {
            want.insert((a.id.as_str(), "renewed", a.renewal_date.to_string()));
        }
    }
    assert_eq!(by_account, want);
    assert_eq!(outcomes.len(), want.len());
    assert!(want.iter().any(|w| w.1 == "renewed") && want.iter().any(|w| w.1 == "churned"));
    let mut quiet = Book::new(400, 75, 7, today());
    quiet.outcomes = false;
    assert!(quiet.days().flat_map(|d| day_events(&quiet, d)).all(|e| e["kind"] != "outcome"));
}

#[test]
fn the_same_seed_gives_the_same_book_and_events() {
    let (a, b) = (Book::new(60, 40, 7, today()), Book::new(60, 40, 7, today()));
    let ids = |b: &Book| {
        b.accounts.iter().map(|a| (a.id.clone(), a.kind, a.seats, a.users.len(), a.decline_onset)).collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&Book::new(60, 40, 8, today())));
    assert_eq!(day_events(&a, today()), day_events(&b, today()));
    assert_eq!(a.days().count(), 40);
    assert_eq!((a.accounts[0].id.as_str(), a.accounts[20].id.as_str()), ("acme", "acct-00020"));
    let truth = super::truth(&a);
    let acme = &truth["accounts"][0];
    assert_eq!((acme["kind"].as_str(), acme["at_risk"].as_bool()), (Some("slide"), Some(true)));
    assert!(acme["decline_onset"].is_string() && acme["churn_date"].is_string() && acme["users"].is_u64());
}

#[test]
fn a_champion_slide_loses_its_heaviest_user_at_the_onset_and_keeps_the_others() {
    let active = |user: &str, from: NaiveDate, to: NaiveDate| logins_where("user_id", user, from, to);
    let mut checked = 0;
    let champions = of(Kind::Slide)
        .chain(of(Kind::HappyFader))
        .filter(|a| a.slide_style == Some(super::book::SlideStyle::Champion));
    for a in champions {
        let o = a.decline_onset.unwrap();
        if o < days(book().0.first_day, 28) || o > days(today(), -7) || a.users.len() < 3 {
            continue;
        }
        let counts: Vec<usize> = a.users.iter().map(|u| active(&u.id, days(o, -28), days(o, -1))).collect();
        // In every weekday (a chance of 1): only a weekend's luck puts anybody level with them.
        let most = counts.iter().max().copied().unwrap_or(0);
        assert!(counts[0] * 10 >= most * 9, "{}: the champion is the heaviest user before the onset: {counts:?}", a.id);
        assert_eq!(active(&a.users[0].id, o, today()), 0, "{}: the champion is gone from the onset", a.id);
        let others = a.users[1..].iter().filter(|u| active(&u.id, o, days(o, 6)) > 0).count();
        assert!(others * 2 >= a.users.len() - 1, "{}: most of the others still come in its first week", a.id);
        checked += 1;
    }
    assert!(checked >= 3, "{checked}");
}

#[test]
fn about_a_third_of_the_users_take_a_week_or_two_off_alone_and_come_back() {
    let b = &book().0;
    let users: Vec<_> = b.accounts.iter().flat_map(|a| a.users.iter().map(move |u| (a, u))).collect();
    let away: Vec<_> = users.iter().filter_map(|(a, u)| Some((*a, *u, u.vacation?))).collect();
    let share = away.len() as f64 / users.len() as f64;
    assert!((0.25..=0.35).contains(&share), "{share}");
    let mut back = 0;
    for (a, u, v) in &away {
        assert!((5..=12).contains(&((v.to - v.from).num_days() + 1)), "{}: {v:?}", u.id);
        // Nobody logs in while on leave.
        assert_eq!(logins_where("user_id", &u.id, v.from, v.to), 0, "{}: {v:?}", u.id);
        // A regular on a steady account is back within the two weeks after.
        if a.kind == Kind::Steady && u.daily >= 0.6 && v.to <= days(today(), -14) {
            assert!(logins_where("user_id", &u.id, days(v.to, 1), days(v.to, 14)) > 0, "{}: {v:?}", u.id);
            back += 1;
        }
    }
    assert!(back >= 20, "{back}");
}

#[test]
fn a_heavier_leave_book_is_the_same_book_with_more_people_on_leave() {
    let light = &book().0;
    let heavy = Book::with_leave(400, 75, 7, today(), 0.85);
    assert_eq!((light.leave_share, heavy.leave_share), (super::LEAVE_SHARE, 0.85));
    let (mut users, mut on_leave, mut kept) = (0, 0, 0);
    for (l, h) in light.accounts.iter().zip(&heavy.accounts) {
        // The stories are the same: kind, dates, the team and each one's habit and departure.
        assert_eq!(
            (&l.id, l.kind, l.decline_onset, l.churn_date, l.dip),
            (&h.id, h.kind, h.decline_onset, h.churn_date, h.dip)
        );
        for (lu, hu) in l.users.iter().zip(&h.users) {
            assert_eq!((&lu.id, lu.daily, lu.from, lu.until, lu.away), (&hu.id, hu.daily, hu.from, hu.until, hu.away));
            users += 1;
            on_leave += usize::from(hu.vacation.is_some());
            // Whoever has leave in the lighter book has the same leave in the heavier one.
            if let Some(v) = lu.vacation {
                assert_eq!(hu.vacation, Some(v), "{}", lu.id);
                kept += 1;
            }
        }
        assert_eq!(l.users.len(), h.users.len(), "{}", l.id);
    }
    let share = on_leave as f64 / users as f64;
    // A champion slide's champion never takes leave (it is the story), so a little under 0.85.
    assert!((0.8..=0.87).contains(&share), "{share}");
    assert!(
        kept * 4 > users && kept < on_leave,
        "{kept} with leave in both, {on_leave} in the heavier book, of {users}"
    );
    let truth = super::truth(&heavy);
    assert_eq!(truth["leave_share"].as_f64(), Some(0.85));
    // Nobody logs in on their own leave in the heavier book either.
    let a = heavy
        .accounts
        .iter()
        .find(|a| a.kind == Kind::Steady && a.users.iter().filter(|u| u.vacation.is_some()).count() >= 3)
        .unwrap();
    let away: Vec<(&str, Span)> = a.vacations();
    // Each day's events once, for every user on leave that day.
    for d in heavy.days().filter(|d| away.iter().any(|(_, v)| v.contains(*d))) {
        let events = day_events(&heavy, d);
        for (user, v) in away.iter().filter(|(_, v)| v.contains(d)) {
            let seen = events.iter().filter(|e| e["user_id"] == *user && e["kind"] == "login").count();
            assert_eq!(seen, 0, "{user} on {d}: {v:?}");
        }
    }
}
