//! How one account's inputs become its metrics row: derived ratios and changes, the
//! time-based metrics (which change even when no event arrives), lifecycle stage and health.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::baseline::{covered, Baseline, Series};
use super::book::{Book, Closures};
use super::catalogue::{MetricsRow, WindowRow};
use super::detector::{daily_users, evidence, silence, stopped_days};
use super::health::{self, Component, HealthConfig, Inputs};
use super::lifecycle::{self, LifecycleConfig};
use super::people::{describe, people, Lapse, NAMED_MAX};
use super::score::decline_score;
use super::{change_pct, date_number, epoch_day_plus, ratio, to_datetime};

/// Everything the metrics of one account are computed from (read by `store::inputs`).
#[derive(Debug, Clone, Default)]
pub struct AccountInputs {
    pub window: WindowRow,
    pub traits: Map<String, Value>,
    pub latest_nps: Option<u8>,
    pub avg_csat: Option<f64>,
    pub open_tickets: u64,
    /// The account's health score 14 days before (from the daily health history).
    pub health_14d_ago: Option<f64>,
}

/// The baselines of one account (`model/baseline.rs`); each `None` without enough history.
struct Baselines {
    user_days: Option<Baseline>,
    user_days_3d: Option<Baseline>,
    active_users: Option<Baseline>,
    logins: Option<Baseline>,
    features: Option<Baseline>,
    records: Option<Baseline>,
}

impl Baselines {
    fn of(w: &WindowRow, today: NaiveDate) -> Self {
        let today = date_number(today) as i64;
        // Only the periods the account's history covers: weeks before it was first seen are
        // not weeks of zero use.
        let series = |values: &[u64], span: i64| {
            let n = covered(today, w.first_day as i64, span, values.len());
            Series(&values[..n]).baseline()
        };
        Self {
            user_days: series(&w.weekly_user_days, 7),
            user_days_3d: series(&w.recent_user_days, 3),
            active_users: series(&w.weekly_active_users, 7),
            logins: series(&w.weekly_logins, 7),
            features: series(&w.weekly_features, 7),
            records: series(&w.weekly_records, 7),
        }
    }
}

fn usual(b: Option<Baseline>) -> Option<f64> {
    b.map(|b| b.usual)
}

fn vs(b: Option<Baseline>) -> Option<f64> {
    b.and_then(|b| b.change_pct)
}

/// What turns inputs into metrics beyond the inputs themselves.
pub struct Model<'a> {
    pub lifecycle: &'a LifecycleConfig,
    pub health: &'a HealthConfig,
    /// Features in the product's catalogue (0: unknown, breadth left out).
    pub catalogue: u64,
    /// The book's closures (public holidays) of the days before the pass's day, and how far back
    /// its history reaches.
    pub book: Book,
}

/// The first of `keys` present in `traits`, as text (numbers too).
fn trait_str(traits: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match traits.get(*k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A date trait: `YYYY-MM-DD` or an RFC 3339 date-time.
fn trait_date(traits: &Map<String, Value>, keys: &[&str]) -> Option<NaiveDate> {
    let s = trait_str(traits, keys)?;
    s.parse::<NaiveDate>().ok().or_else(|| DateTime::parse_from_rfc3339(&s).ok().map(|t| t.date_naive()))
}

/// Complete days before `today` that the account's history covers (first seen on day 0).
fn covered_days(w: &WindowRow, today: NaiveDate) -> u32 {
    (date_number(today) as i64 - w.first_day as i64).clamp(0, 63) as u32
}

/// The lapsed regular users of `i` at `now`, as the row's `lapsed_users` names them (longest
/// gone first): a pass labels them from their identify traits (`evaluate/names.rs`).
pub fn lapses(i: &AccountInputs, now: DateTime<Utc>, closures: Closures) -> Vec<Lapse> {
    let w = &i.window;
    people(&w.user_ids, &w.user_masks, covered_days(w, now.date_naive()), closures).lapsed
}

/// The metrics row of one account at `now`: derived ratios and changes, the time-based metrics
/// (which change even when no event arrives), lifecycle stage and health.
pub fn metrics_row(i: &AccountInputs, now: DateTime<Utc>, model: &Model<'_>) -> MetricsRow {
    let w = &i.window;
    let today = now.date_naive();
    let since = |t: u32| (t > 0).then(|| ((now.timestamp() - t as i64).max(0) / 86_400) as u32);
    let start = trait_date(&i.traits, &["contract_start", "contractStart", "start_date"]);
    let renewal = trait_date(&i.traits, &["renewal_date", "renewalDate", "contract_end"]);
    let first_seen = epoch_day_plus(w.first_day);
    let stage = lifecycle::stage(model.lifecycle, today, start.or(Some(first_seen)), renewal);
    let seats = trait_str(&i.traits, &["seats", "licensed_seats", "licenses"]).and_then(|s| s.parse::<u32>().ok());
    // A month's figures need a month of the book (and their changes two): on an import's first
    // weeks, or a new deployment's, the 30 days hold a few days of use, and every account in its
    // renewal window read as paying for seats nobody uses. Unknown is said as NULL, not as few.
    let month = model.book.covers(30);
    let two_months = model.book.covers(60);
    let seat_utilisation = seats.filter(|_| month).and_then(|s| ratio(w.active_users_30d, s as u64));
    let feature_breadth = ratio(w.features_used_30d, model.catalogue).filter(|_| month);
    let change_30d = |prev: u64, current: u64| change_pct(prev, current).filter(|_| two_months);
    let records_change = change_30d(w.records_prev_30d, w.records_30d);
    let active_change = change_pct(w.active_users_prev_7d, w.active_users_7d);
    let base = Baselines::of(w, today);
    let days_since_last_activity = since(w.last_seen);
    let inputs = Inputs {
        usage_vs_baseline: vs(base.user_days),
        onboarding_day: (stage == super::lifecycle::Stage::Onboarding)
            .then(|| start.unwrap_or(first_seen))
            .map(|s| (today - s).num_days()),
        days_since_last_activity,
        seat_utilisation,
        feature_breadth,
        // Two silent weeks after use earlier in the month is use that stopped, not "no trend":
        // without this a dormant account kept a green score (seen in the loadgen demo).
        active_users_change_pct: active_change
            .or((w.active_users_7d == 0 && w.active_users_prev_7d == 0 && w.active_users_30d > 0).then_some(-100.0)),
        records_30d: (w.records_30d > 0 || w.records_prev_30d > 0).then_some(w.records_30d),
        records_change_pct: records_change,
        latest_nps: i.latest_nps,
        avg_csat: i.avg_csat,
        open_tickets: i.open_tickets,
    };
    let h = health::score(model.health, stage, &inputs);
    let covered = covered_days(w, today);
    let folk = people(&w.user_ids, &w.user_masks, covered, model.book.closures);
    let daily = daily_users(&w.user_masks);
    let evidence = evidence(&daily, folk.regular, &folk.away_on, covered, model.book.closures);
    let quiet = silence(&daily, covered, model.book.closures);
    let stopped = stopped_days(&daily, covered, model.book.closures);
    let group_days = folk.group_days_in_last(7);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let mut row = MetricsRow {
        as_of: date_number(today),
        computed_at: to_datetime(now),
        lifecycle_stage: stage,
        days_since_start: start.map(|s| (today - s).num_days() as i32),
        days_to_renewal: renewal.map(|r| (r - today).num_days() as i32),
        plan: trait_str(&i.traits, &["plan"]).unwrap_or_default(),
        csm_owner: trait_str(&i.traits, &["csm", "csm_owner", "csm_email"]).unwrap_or_default(),
        seats,
        active_users_change_7d: active_change,
        active_users_change_30d: change_30d(w.active_users_prev_30d, w.active_users_30d),
        events_change_7d: change_pct(w.events_prev_7d, w.events_7d),
        events_per_active_user_7d: ratio(w.events_7d, w.active_users_7d),
        feature_breadth_30d: feature_breadth,
        records_change_30d: records_change,
        bytes_change_30d: change_30d(w.bytes_prev_30d, w.bytes_30d),
        // Average DAU over 30 days ÷ MAU: how many days a month the typical user comes back.
        stickiness_30d: (month && w.active_users_30d > 0)
            .then(|| w.dau_sum_30d as f64 / 30.0 / w.active_users_30d as f64),
        seat_utilisation,
        last_seen: (w.last_seen > 0).then_some(w.last_seen),
        last_login: (w.last_login > 0).then_some(w.last_login),
        days_since_last_activity,
        days_since_last_login: since(w.last_login),
        latest_nps: i.latest_nps,
        avg_csat_90d: i.avg_csat,
        open_tickets: i.open_tickets,
        health_score: h.score,
        health_band: h.band.to_owned(),
        health_deployment: h.components.deployment,
        health_adoption: h.components.adoption,
        health_trend: h.components.trend,
        health_value: h.components.value,
        health_experience: h.components.experience,
        health_weakest: h.weakest.map(Component::as_str).unwrap_or_default().to_owned(),
        health_cap: h.cap.map(health::Cap::as_str).unwrap_or_default().to_owned(),
        health_score_14d_ago: i.health_14d_ago,
        health_change_14d: h.score.zip(i.health_14d_ago).map(|(now, then)| round(now - then)),
        active_user_days_7d: w.weekly_user_days.first().copied().unwrap_or(0),
        active_user_days_baseline: usual(base.user_days),
        active_user_days_vs_baseline: vs(base.user_days),
        active_user_days_3d_vs_baseline: vs(base.user_days_3d),
        active_user_days_z: base.user_days.and_then(|b| b.z),
        active_user_days_momentum: vs(base.user_days_3d).zip(vs(base.user_days)).map(|(d3, d7)| round(d3 - d7)),
        active_user_days_3d_z: base.user_days_3d.and_then(|b| b.z),
        active_users_baseline: usual(base.active_users),
        active_users_vs_baseline: vs(base.active_users),
        logins_baseline: usual(base.logins),
        logins_vs_baseline: vs(base.logins),
        features_used_baseline: usual(base.features),
        features_used_vs_baseline: vs(base.features),
        records_baseline: usual(base.records),
        records_vs_baseline: vs(base.records),
        baseline_weeks: base.user_days.map(|b| b.weeks),
        regular_users: folk.regular,
        regular_users_lapsed: folk.lapsed.len() as u64,
        regular_users_lapsed_pct: ratio(folk.lapsed.len() as u64, folk.regular).map(|r| round(r * 100.0)),
        regular_users_lapsed_long: folk.long_lapses(),
        // By id here; a pass adds the names and emails of their identify traits.
        lapsed_users: describe(&folk.lapsed, NAMED_MAX, &HashMap::new()),
        users_away_together: folk.away_together,
        champion_days_absent: folk.champion.as_ref().map(|(_, days)| *days),
        champion_lapsed: folk.champion.as_ref().map(|_| folk.champion_lapsed as u8),
        champion: folk.champion.map(|(user, _)| user).unwrap_or_default(),
        new_users_7d: folk.new_7d,
        decline_evidence: evidence.map(|e| e.statistic),
        decline_started: evidence.and_then(|e| e.since).map(|d| date_number(today) - d as u16),
        silent_days: quiet.days.into(),
        silence_evidence: quiet.evidence,
        stopped_days: stopped,
        book_closures_3d: model.book.closures.in_last(3),
        book_closures_7d: model.book.closures.in_last(7),
        group_away_days_7d: group_days,
        // The window's counts, copied as they are (the catalogue's `count` entries).
        ..MetricsRow::from_window(w)
    };
    // Read from the finished row: the score weighs the metrics above together.
    row.decline_score = decline_score(&row);
    row
}
