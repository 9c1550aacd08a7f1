//! One simulated day of a book as events: native JSON (`POST /v1/events`) or Segment messages
//! (`POST /v1/batch`, mapped to the event names ingest's default mapping recognises).

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::book::{Account, Book, Kind, Rng, FEATURES};

/// Which API the events are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Native,
    Segment,
}

fn timestamp(day: NaiveDate, rng: &mut Rng) -> String {
    // Working hours, with a tail into the evening.
    let secs = rng.range(7 * 3600, 20 * 3600) as u32;
    let t = day.and_time(NaiveTime::from_num_seconds_from_midnight_opt(secs, 0).unwrap());
    Utc.from_utc_datetime(&t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The account's and its users' traits; sent on the first simulated day.
fn traits(a: &Account, first_day: NaiveDate, rng: &mut Rng) -> Vec<Value> {
    let ts = timestamp(first_day, rng);
    let mut out = vec![account_traits(a, a.renewal_date, &ts, format!("{}-traits", a.id))];
    for u in &a.users {
        out.push(json!({
            "kind": "user", "account_id": a.id, "user_id": u.id, "timestamp": ts, "message_id": format!("{}-traits", u.id),
            "traits": { "email": format!("{}@{}.example", u.id, a.id), "role": if rng.chance(0.2) { "admin" } else { "member" } }
        }));
    }
    out
}

/// An `account` event with every trait: the latest one replaces the earlier ones whole.
fn account_traits(a: &Account, renewal_date: NaiveDate, ts: &str, message_id: String) -> Value {
    json!({
        "kind": "account", "account_id": a.id, "timestamp": ts, "message_id": message_id,
        "traits": { "name": a.id, "plan": a.plan, "seats": a.seats, "csm": a.csm,
                    "contract_start": a.contract_start.to_string(), "renewal_date": renewal_date.to_string() }
    })
}

/// Every native event of `day` for the whole book, in a stable order.
pub fn day_events(book: &Book, day: NaiveDate) -> Vec<Value> {
    let day_no = (day - book.first_day).num_days() as u64;
    let mut out = Vec::new();
    for (i, a) in book.accounts.iter().enumerate() {
        let mut rng = Rng::new(book.seed).fork((i as u64) << 20 | day_no);
        if day == book.first_day {
            out.extend(traits(a, day, &mut rng));
        }
        if book.outcomes {
            out.extend(outcome(a, day, &mut rng));
        }
        if a.gone(day) {
            continue;
        }
        let mut seq = 0;
        let mut id = |a: &Account| {
            seq += 1;
            format!("{}-{day}-{seq}", a.id)
        };
        let factor = a.factor(day) * book.holiday_factor(day);
        let mut active = 0;
        for u in a.users.iter().filter(|u| u.from <= day && u.until.is_none_or(|t| day <= t) && !a.away(u, day)) {
            if !rng.chance((u.daily * factor).min(0.98)) {
                continue;
            }
            active += 1;
            out.push(json!({ "kind": "login", "account_id": a.id, "user_id": u.id, "timestamp": timestamp(day, &mut rng), "message_id": id(a) }));
            for _ in 0..rng.range(1, 4) {
                let feature = FEATURES[rng.range(0, a.feature_breadth as u64 - 1) as usize];
                out.push(json!({ "kind": "feature_used", "account_id": a.id, "user_id": u.id, "timestamp": timestamp(day, &mut rng),
                                 "message_id": id(a), "feature": feature, "count": rng.range(1, 6) }));
            }
            if rng.chance(0.08) {
                out.push(json!({ "kind": "data_volume", "account_id": a.id, "user_id": u.id, "timestamp": timestamp(day, &mut rng),
                                 "message_id": id(a), "records": rng.range(50, 5000), "bytes": rng.range(10_000, 5_000_000), "object": "contacts" }));
            }
        }
        let declining = a.declining(day);
        let survey = if a.kind == Kind::HappyFader {
            // The promoter whose use fades: a glowing survey every ten days, whoever is left.
            (day_no + a.busy_day as u64).is_multiple_of(10).then(|| rng.range(9, 10))
        } else if active > 0 && rng.chance(1.0 / 28.0) {
            // About every four weeks per account; fading accounts turn into detractors.
            Some(if declining { rng.range(1, 6) } else { rng.range(6, 10) })
        } else {
            None
        };
        if let Some(nps) = survey {
            let csat = if a.kind == Kind::HappyFader { 5 } else { (nps / 2).clamp(1, 5) };
            out.push(json!({ "kind": "survey", "account_id": a.id, "user_id": a.users[0].id, "timestamp": timestamp(day, &mut rng),
                             "message_id": id(a), "nps": nps, "csat": csat }));
        }
        // Support tickets: more, and more urgent, while an account struggles; none from an
        // account nobody uses any more.
        let dormant = a.kind == Kind::Dormant && declining;
        let struggling = declining && a.kind != Kind::HappyFader && !dormant;
        if !dormant && rng.chance(if struggling { 0.25 } else { 0.04 }) {
            let ticket = format!("T-{}-{day_no}", a.id);
            let priority = if struggling && rng.chance(0.5) { "high" } else { "normal" };
            out.push(json!({ "kind": "support_ticket", "account_id": a.id, "user_id": a.users[0].id, "timestamp": timestamp(day, &mut rng),
                             "message_id": id(a), "ticket_id": ticket, "status": "opened", "priority": priority }));
            if rng.chance(0.7) {
                out.push(json!({ "kind": "support_ticket", "account_id": a.id, "user_id": a.users[0].id, "timestamp": timestamp(day, &mut rng),
                                 "message_id": id(a), "ticket_id": ticket, "status": "closed", "priority": priority }));
            }
        }
    }
    out
}

/// The outcome events of `day`: `churned` on an at-risk account's churn date, `renewed` on a
/// healthy account's renewal date, with the next renewal date as its new account trait.
fn outcome(a: &Account, day: NaiveDate, rng: &mut Rng) -> Vec<Value> {
    let event = |outcome: &str, rng: &mut Rng| {
        json!({ "kind": "outcome", "account_id": a.id, "outcome": outcome, "timestamp": timestamp(day, rng),
                "message_id": format!("{}-{outcome}-{day}", a.id) })
    };
    if a.churn_date == Some(day) {
        return vec![event("churned", rng)];
    }
    if !a.at_risk() && a.renewal_date == day {
        let next = super::book::day(day, 365);
        return vec![
            event("renewed", rng),
            account_traits(a, next, &timestamp(day, rng), format!("{}-traits-{day}", a.id)),
        ];
    }
    Vec::new()
}

/// The Segment message for a native event: `group` for account traits, `identify` for user
/// traits, `track` for the rest (named as ingest's default mapping expects), always with
/// `context.groupId` so every track call is attributed to its account.
pub fn to_segment(e: &Value) -> Value {
    let get = |k: &str| e.get(k).cloned().unwrap_or(Value::Null);
    let account = get("account_id");
    let base = |call: &str| {
        json!({ "type": call, "messageId": get("message_id"), "timestamp": get("timestamp"),
                "context": { "groupId": account }, "userId": e.get("user_id").cloned().unwrap_or_else(|| json!(format!("{}-admin", account.as_str().unwrap_or_default()))) })
    };
    let mut m = match e["kind"].as_str().unwrap_or_default() {
        "account" => {
            let mut m = base("group");
            m["groupId"] = account.clone();
            m["traits"] = get("traits");
            m
        }
        "user" => {
            let mut m = base("identify");
            m["traits"] = get("traits");
            m
        }
        kind => {
            let mut m = base("track");
            let (name, props) = match kind {
                "login" => ("Signed In".into(), json!({})),
                "feature_used" => {
                    (e["feature"].as_str().unwrap_or("feature").to_owned(), json!({ "count": get("count") }))
                }
                "data_volume" => (
                    "Data Imported".into(),
                    json!({ "records": get("records"), "bytes": get("bytes"), "object": get("object") }),
                ),
                "survey" => ("Survey Submitted".into(), json!({ "nps": get("nps"), "csat": get("csat") })),
                "outcome" if e["outcome"] == "churned" => ("Account Churned".into(), json!({})),
                "outcome" => ("Subscription Renewed".into(), json!({})),
                _ if e["status"] == "closed" => {
                    ("Ticket Closed".into(), json!({ "ticket_id": get("ticket_id"), "priority": get("priority") }))
                }
                _ => ("Ticket Opened".into(), json!({ "ticket_id": get("ticket_id"), "priority": get("priority") })),
            };
            m["event"] = Value::String(name);
            m["properties"] = props;
            m
        }
    };
    if m["userId"].is_null() {
        m.as_object_mut().unwrap().remove("userId");
    }
    m
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::loadgen::book::Book;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 6, 30).unwrap() // a Tuesday
    }

    /// Distinct users active (logged in) in [from, to] days before today.
    fn active_users(book: &Book, account: &str, from: u64, to: u64) -> usize {
        let mut users = HashSet::new();
        for d in from..=to {
            for e in day_events(book, today() - chrono::Days::new(d)) {
                if e["account_id"] == account && e["kind"] == "login" {
                    users.insert(e["user_id"].as_str().unwrap().to_owned());
                }
            }
        }
        users.len()
    }

    #[test]
    fn a_decliner_loses_its_users_while_a_steady_account_keeps_them() {
        let book = Book::new(12, 35, 42, today());
        let (acme_now, acme_before) = (active_users(&book, "acme", 0, 6), active_users(&book, "acme", 7, 13));
        assert!(acme_before >= 3 && acme_now * 2 <= acme_before, "acme {acme_before} → {acme_now}");
        let (globex_now, globex_before) = (active_users(&book, "globex", 0, 6), active_users(&book, "globex", 7, 13));
        assert!(globex_now * 10 >= globex_before * 8, "globex {globex_before} → {globex_now}");
        assert_eq!(active_users(&book, "umbrella", 0, 13), 0, "dormant: nobody for two weeks");
    }

    #[test]
    fn weekends_are_quieter_and_generation_is_deterministic() {
        let book = Book::new(40, 14, 3, today());
        let logins = |d: NaiveDate| day_events(&book, d).iter().filter(|e| e["kind"] == "login").count();
        let (sat, sun) = (today() - chrono::Days::new(3), today() - chrono::Days::new(2));
        let (thu, fri) = (today() - chrono::Days::new(5), today() - chrono::Days::new(4));
        assert!(
            logins(sat) + logins(sun) < (logins(thu) + logins(fri)) / 2,
            "weekend {} {}, weekdays {} {}",
            logins(sat),
            logins(sun),
            logins(thu),
            logins(fri)
        );
        assert_eq!(day_events(&book, thu), day_events(&Book::new(40, 14, 3, today()), thu));
    }

    #[test]
    fn every_event_passes_ingest_validation_in_both_formats() {
        let book = Book::new(30, 40, 9, today());
        let native_ctx = schemas::native::Context {
            received_at: Utc::now(),
            source: "t",
            max_future: chrono::Duration::seconds(600),
            max_age: chrono::Duration::days(schemas::limits::DEFAULT_MAX_AGE_DAYS),
        };
        let mapping = schemas::segment::EventMapping::default();
        let mut kinds = HashSet::new();
        for d in book.days() {
            for e in day_events(&book, d) {
                let native = schemas::native::parse_event(&e, &native_ctx).unwrap_or_else(|err| panic!("{e}: {err:?}"));
                let seg_ctx = schemas::segment::Context {
                    received_at: Utc::now(),
                    source: "t",
                    max_future: chrono::Duration::seconds(600),
                    max_age: chrono::Duration::days(schemas::limits::DEFAULT_MAX_AGE_DAYS),
                    mapping: &mapping,
                    group_of_user: &|_| None,
                };
                let seg = schemas::segment::parse_message(None, &to_segment(&e), &seg_ctx)
                    .unwrap_or_else(|err| panic!("{}: {err:?}", to_segment(&e)));
                assert_eq!((seg.kind, &seg.account_id), (native.kind, &native.account_id), "{e}");
                kinds.insert(native.kind.as_str());
            }
        }
        assert_eq!(kinds.len(), 8, "every kind appears: {kinds:?}");
    }
}
