//! How visible the declines are in the data (docs/SIGNAL.md#how-visible-a-decline-is): a yardstick
//! for the onset → first alert table. A decline's recorded onset is when its people began to
//! leave or use less; how soon anything can tell depends on how far use has fallen by then
//! against how far a healthy account's use falls by chance. A fade that starts slowly is within
//! its usual a week after its onset, and no rule can alert on it then without alerting on the
//! healthy accounts that look the same.
//!
//! Read from the replay's daily `active_user_days_vs_baseline` (the 7 complete days' active
//! user-days against the account's usual, in %): per kind of decline, how far below its usual
//! each was 7, 14 and 21 days after its onset, and how many were already beyond the healthy
//! accounts' 1-in-20 shortfall (the 5th percentile of their account-days — a 7-day window rule
//! at that level alerts most healthy accounts within weeks). Chance moves a small account more:
//! the level is taken per size, by the usual week (`active_user_days_baseline`). Then, per
//! decline, the first day it went beyond that level ("visible") and the days from there to the
//! first alert: a yardstick that does not depend on where the book puts an onset.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::NaiveDate;
use schemas::alert::{Alert, AlertStatus};
use serde::Serialize;

use aggregator::model::{Metric, MetricsRow};

use super::score::{percentile, Truth, LEAD_MIN_OBSERVED_DAYS, OVERALL};

/// The metric read: the last 7 complete days' active user-days against the usual, in %.
const SHORTFALL: &str = "active_user_days_vs_baseline";
/// The account's size: its usual week's active user-days.
const SIZE: &str = "active_user_days_baseline";
/// Sizes with a noise level of their own, by the usual week's active user-days (a team of 2–3
/// in on most days is under 15; one of 10, about 50).
pub const SIZE_BANDS: [(f64, &str); 3] = [(0.0, "under 15"), (15.0, "15–50"), (50.0, "50 or more")];
/// Days after the onset at which each decline is read.
pub const HORIZONS: [i64; 3] = [7, 14, 21];
/// The healthy shortfall that counts as chance: the account-days' 5th percentile (1 in 20).
const NOISE_PERCENTILE: usize = 5;

/// One horizon of one kind of decline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AtHorizon {
    /// Days after the onset.
    pub days: i64,
    /// Declines with a reading on that day (observed that long, with a usual to read against).
    pub observed: usize,
    /// The median of their readings, in % against the usual.
    pub median_pct: Option<f64>,
    /// Of them, those at or beyond the healthy accounts' 1-in-20 shortfall.
    pub beyond_noise: usize,
}

/// One kind of decline (or `overall`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindView {
    /// Declines observed at least `LEAD_MIN_OBSERVED_DAYS` after an onset inside the window.
    pub declines: usize,
    pub after: Vec<AtHorizon>,
    /// Declines that went beyond the healthy 1-in-20 shortfall on or after their onset.
    pub visible: usize,
    /// Of the visible and alerted, the median days from visible to the first alert (negative:
    /// the alert came first, from the people metrics or the detector).
    pub visible_to_alert_median: Option<i64>,
    /// Alerted on or after the onset but before being visible (or never visible).
    pub alerted_before_visible: usize,
    /// Visible and never alerted.
    pub visible_not_alerted: usize,
}

/// The healthy accounts' chance shortfall of one size band.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Noise {
    /// The band's name (its usual week's active user-days).
    pub size: String,
    /// Healthy account-days read in it.
    pub days: usize,
    /// Their 1-in-20 shortfall, in % (`None` without readings).
    pub pct: Option<f64>,
}

/// What the book's data allow, next to what the rules did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visibility {
    pub noise: Vec<Noise>,
    /// Healthy accounts with a reading, and those beyond their size's level on some day: what a
    /// 7-day window rule at that level would alert.
    pub healthy_accounts: usize,
    pub healthy_beyond: usize,
    pub kinds: BTreeMap<String, KindView>,
}

/// One account-day's shortfall (% against the usual) and size (the usual week's user-days);
/// `None` without a usual to read against.
pub type Reading = (NaiveDate, Option<(f64, f64)>);

/// Each account's daily readings, oldest first, from the replay's rows.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    pub days: BTreeMap<String, Vec<Reading>>,
}

impl Readings {
    /// Takes in one replayed day's metrics rows.
    pub fn add(&mut self, day: NaiveDate, rows: &[MetricsRow]) {
        let (Some(shortfall), Some(size)) = (Metric::named(SHORTFALL), Metric::named(SIZE)) else { return };
        for r in rows {
            let reading = shortfall.read(r).zip(size.read(r));
            self.days.entry(r.account_id.clone()).or_default().push((day, reading));
        }
    }
}

/// The size band of a usual week of `size` active user-days.
fn band(size: f64) -> usize {
    SIZE_BANDS.iter().rposition(|(from, _)| size >= *from).unwrap_or(0)
}

/// The median of `v` (the lower of the middle two), sorting it.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    percentile(v, 50)
}

/// Reads the replay's `readings` against the book's `truth` and the replay's `alerts`, over a
/// window ending `end`.
pub fn visibility(readings: &Readings, truth: &[Truth], alerts: &[Alert], end: NaiveDate) -> Visibility {
    let of = |id: &str| readings.days.get(id).map(Vec::as_slice).unwrap_or_default();
    let mut healthy: [Vec<f64>; SIZE_BANDS.len()] = Default::default();
    for (v, size) in truth.iter().filter(|t| !t.at_risk).flat_map(|t| of(&t.id).iter().filter_map(|(_, r)| *r)) {
        healthy[band(size)].push(v);
    }
    let levels: Vec<Option<f64>> = healthy
        .iter_mut()
        .map(|v| {
            v.sort_by(f64::total_cmp);
            percentile(v, NOISE_PERCENTILE)
        })
        .collect();
    let noise = SIZE_BANDS
        .iter()
        .zip(healthy.iter().zip(&levels))
        .map(|((_, size), (v, pct))| Noise { size: (*size).to_owned(), days: v.len(), pct: *pct })
        .collect();
    let beyond = |(v, size): (f64, f64)| levels[band(size)].is_some_and(|n| v <= n);
    let read: Vec<&[Reading]> = truth
        .iter()
        .filter(|t| !t.at_risk)
        .map(|t| of(&t.id))
        .filter(|days| days.iter().any(|(_, r)| r.is_some()))
        .collect();
    let healthy_beyond = read.iter().filter(|days| days.iter().any(|(_, r)| r.is_some_and(beyond))).count();

    // Per kind: readings per horizon, visible → alert gaps, and the counts.
    #[derive(Default)]
    struct Acc {
        declines: usize,
        at: [Vec<(f64, f64)>; HORIZONS.len()],
        gaps: Vec<f64>,
        visible: usize,
        before: usize,
        never: usize,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    for t in truth.iter().filter(|t| t.at_risk) {
        let days = of(&t.id);
        let Some(onset) = t.onset else { continue };
        let inside = days.first().is_some_and(|(first, _)| *first <= onset);
        if !inside || (end - onset).num_days() < LEAD_MIN_OBSERVED_DAYS {
            continue;
        }
        let first_alert = alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing && a.account_id == t.id)
            .map(|a| a.fired_at.date_naive())
            .filter(|d| *d >= onset)
            .min();
        let visible = days.iter().find(|(d, v)| *d >= onset && v.is_some_and(beyond)).map(|(d, _)| *d);
        for key in [t.kind.as_str(), OVERALL] {
            let a = acc.entry(key.to_owned()).or_default();
            a.declines += 1;
            for (i, k) in HORIZONS.iter().enumerate() {
                let day = onset + chrono::Days::new(*k as u64);
                if let Some(r) = days.iter().find(|(d, _)| *d == day).and_then(|(_, r)| *r) {
                    a.at[i].push(r);
                }
            }
            match (visible, first_alert) {
                (Some(v), Some(f)) => {
                    a.visible += 1;
                    a.gaps.push((f - v).num_days() as f64);
                    a.before += usize::from(f < v);
                }
                (Some(_), None) => {
                    a.visible += 1;
                    a.never += 1;
                }
                (None, Some(_)) => a.before += 1,
                (None, None) => {}
            }
        }
    }
    let kinds = acc
        .into_iter()
        .map(|(kind, mut a)| {
            let after = HORIZONS
                .iter()
                .zip(&a.at)
                .map(|(&days, readings)| AtHorizon {
                    days,
                    observed: readings.len(),
                    beyond_noise: readings.iter().filter(|r| beyond(**r)).count(),
                    median_pct: median(&mut readings.iter().map(|(v, _)| *v).collect::<Vec<_>>()),
                })
                .collect();
            let view = KindView {
                declines: a.declines,
                after,
                visible: a.visible,
                visible_to_alert_median: median(&mut a.gaps).map(|g| g as i64),
                alerted_before_visible: a.before,
                visible_not_alerted: a.never,
            };
            (kind, view)
        })
        .collect();
    Visibility { noise, healthy_accounts: read.len(), healthy_beyond, kinds }
}

/// The table `signal` prints.
pub fn table(v: &Visibility) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "How visible the declines are (the last 7 days' active user-days against the usual)");
    let levels: Vec<String> = v
        .noise
        .iter()
        .map(|n| match n.pct {
            Some(p) => format!("{p:.0} % with a usual week of {} user-days ({} days)", n.size, n.days),
            None => format!("– with a usual week of {} user-days (no days)", n.size),
        })
        .collect();
    let _ = writeln!(w, "  a healthy account is this far under on 1 day in 20: {}", levels.join("; "));
    let _ = writeln!(
        w,
        "  (a 7-day window rule at that level would alert {} of the {} healthy accounts; \"visible\" is not enough to alert)",
        v.healthy_beyond, v.healthy_accounts
    );
    let _ = writeln!(
        w,
        "  {:<14} {:>18} {:>18} {:>18}   visible → first alert",
        "kind", "+7 days: median", "+14 days", "+21 days"
    );
    let rows = v
        .kinds
        .iter()
        .filter(|(k, _)| k.as_str() != OVERALL)
        .chain(v.kinds.iter().filter(|(k, _)| k.as_str() == OVERALL));
    for (kind, k) in rows {
        let cells: Vec<String> = k
            .after
            .iter()
            .map(|h| match h.median_pct {
                Some(m) => format!("{m:>5.0} % {:>4}/{:<4}", h.beyond_noise, h.observed),
                None => format!("{:>18}", "–"),
            })
            .collect();
        let gap = k.visible_to_alert_median.map_or("–".to_owned(), |g| format!("{g} d"));
        let _ = writeln!(
            w,
            "  {kind:<14} {:>18} {:>18} {:>18}   median {gap:>5} ({} visible of {}; {} alerted before, {} never)",
            cells[0], cells[1], cells[2], k.visible, k.declines, k.alerted_before_visible, k.visible_not_alerted
        );
    }
    let _ = writeln!(w, "  (n/N: declines beyond the healthy 1-in-20 shortfall on that day, of those read)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Days::new(n as u64)
    }

    fn truth(id: &str, kind: &str, onset: Option<i64>) -> Truth {
        Truth { id: id.into(), kind: kind.into(), at_risk: onset.is_some(), onset: onset.map(day), leave: vec![] }
    }

    /// A firing on `day(on)`.
    fn firing(account: &str, on: i64) -> Alert {
        crate::signal::score::tests::alert(account, "usage_declining", AlertStatus::Firing, on as u32 + 1)
    }

    /// 40 days of readings from `f(day)` for an account whose usual week is `size` user-days.
    fn readings(r: &mut Readings, id: &str, size: f64, f: impl Fn(i64) -> f64) {
        r.days.insert(id.into(), (0..40).map(|i| (day(i), Some((f(i), size)))).collect());
    }

    #[test]
    fn a_slow_fade_is_within_the_healthy_noise_a_week_after_its_onset() {
        let mut r = Readings::default();
        // Twenty healthy accounts wobbling between −20 % and +18 % (the 1-in-20 level is −18 %),
        // one of them −20 % on a single day.
        for a in 0..20 {
            let wobble = move |i: i64| if a == 0 && i == 5 { -20.0 } else { ((i + a) % 10) as f64 * 4.0 - 18.0 };
            readings(&mut r, &format!("ok{a}"), 30.0, wobble);
        }
        // A fade from day 10, losing 2 % a day: −14 % a week in, −28 % at two weeks, beyond
        // the noise from day 19 (−18 %); alerted on day 24.
        readings(&mut r, "fade", 30.0, |i| if i <= 10 { 0.0 } else { -2.0 * (i - 10) as f64 });
        // A stop on day 10: at −100 % from day 11, alerted on day 12 — a day after it showed.
        readings(&mut r, "stop", 30.0, |i| if i <= 10 { 0.0 } else { -100.0 });
        let mut truth: Vec<Truth> = (0..20).map(|a| truth(&format!("ok{a}"), "steady", None)).collect();
        truth.push(self::truth("fade", "fade", Some(10)));
        truth.push(self::truth("stop", "stopped", Some(10)));
        let alerts = vec![firing("fade", 24), firing("stop", 12), firing("ok3", 28)];

        let v = visibility(&r, &truth, &alerts, day(39));
        assert_eq!(v.noise[1], Noise { size: "15–50".into(), days: 800, pct: Some(-18.0) });
        assert_eq!((v.noise[0].days, v.noise[0].pct), (0, None));
        // Every healthy account touches −18 % once in ten days.
        assert_eq!((v.healthy_beyond, v.healthy_accounts), (20, 20));
        let fade = &v.kinds["fade"];
        let medians: Vec<Option<f64>> = fade.after.iter().map(|h| h.median_pct).collect();
        assert_eq!(medians, [Some(-14.0), Some(-28.0), Some(-42.0)]);
        let beyond: Vec<usize> = fade.after.iter().map(|h| h.beyond_noise).collect();
        assert_eq!(beyond, [0, 1, 1], "within the noise at a week, beyond it at two");
        // Beyond −18 % on day 19, alerted on day 24.
        assert_eq!((fade.visible, fade.visible_to_alert_median), (1, Some(5)));
        let stop = &v.kinds["stopped"];
        assert_eq!((stop.visible, stop.visible_to_alert_median, stop.alerted_before_visible), (1, Some(1), 0));
        let overall = &v.kinds[OVERALL];
        assert_eq!((overall.declines, overall.visible, overall.visible_not_alerted), (2, 2, 0));
        let t = table(&v);
        assert!(t.contains("-18 % with a usual week of 15–50 user-days (800 days)"), "{t}");
        assert!(t.contains("-14 %    0/1"), "{t}");
    }

    #[test]
    fn a_small_accounts_fall_is_judged_against_small_accounts_noise() {
        let mut r = Readings::default();
        // Small healthy accounts swing to −50 %, large ones to −10 %.
        for a in 0..4 {
            readings(&mut r, &format!("small{a}"), 8.0, |i| if i % 2 == 0 { -50.0 } else { 40.0 });
            readings(&mut r, &format!("large{a}"), 120.0, |i| if i % 2 == 0 { -10.0 } else { 10.0 });
        }
        // A steady large account that never dips is not beyond anything.
        readings(&mut r, "flat", 120.0, |_| 0.0);
        // Both declines at −40 % from their onset: chance on a small account, not on a large one.
        readings(&mut r, "small_down", 8.0, |i| if i < 5 { 0.0 } else { -40.0 });
        readings(&mut r, "large_down", 120.0, |i| if i < 5 { 0.0 } else { -40.0 });
        let mut truth: Vec<Truth> = (0..4)
            .flat_map(|a| [truth(&format!("small{a}"), "steady", None), truth(&format!("large{a}"), "steady", None)])
            .collect();
        truth.push(self::truth("flat", "steady", None));
        truth.push(self::truth("small_down", "small_fade", Some(5)));
        truth.push(self::truth("large_down", "fade", Some(5)));
        let v = visibility(&r, &truth, &[], day(39));
        let pct: Vec<Option<f64>> = v.noise.iter().map(|n| n.pct).collect();
        assert_eq!(pct, [Some(-50.0), None, Some(-10.0)]);
        assert_eq!((v.kinds["small_fade"].visible, v.kinds["small_fade"].after[0].beyond_noise), (0, 0));
        assert_eq!((v.kinds["fade"].visible, v.kinds["fade"].after[0].beyond_noise), (1, 1));
        assert_eq!(v.kinds["fade"].visible_not_alerted, 1);
        assert_eq!((v.healthy_beyond, v.healthy_accounts), (8, 9), "all but the flat one");
    }

    #[test]
    fn an_alert_before_the_shortfall_shows_and_a_decline_never_alerted_are_counted_apart() {
        let mut r = Readings::default();
        readings(&mut r, "ok", 30.0, |i| if i % 2 == 0 { -10.0 } else { 10.0 });
        // Champion gone on day 5: the rules alert on day 9 from who is missing while the total
        // is still −5 %; the fade never goes beyond the noise and is never alerted; the leavers
        // go beyond it and are never alerted; the young one is too young to judge.
        readings(&mut r, "champ", 30.0, |i| if i < 5 { 0.0 } else { -5.0 });
        readings(&mut r, "quiet", 30.0, |_| -8.0);
        readings(&mut r, "gone", 30.0, |i| if i < 5 { 0.0 } else { -60.0 });
        readings(&mut r, "young", 30.0, |i| if i < 30 { 0.0 } else { -60.0 });
        let truth = vec![
            truth("ok", "steady", None),
            truth("champ", "champion_loss", Some(5)),
            truth("quiet", "fade", Some(5)),
            truth("gone", "leavers", Some(5)),
            truth("young", "leavers", Some(30)),
        ];
        let alerts = vec![firing("champ", 9), firing("champ", 3)];
        let v = visibility(&r, &truth, &alerts, day(39));
        let champ = &v.kinds["champion_loss"];
        assert_eq!((champ.visible, champ.alerted_before_visible, champ.visible_to_alert_median), (0, 1, None));
        assert_eq!((v.kinds["fade"].visible, v.kinds["fade"].alerted_before_visible), (0, 0));
        let gone = &v.kinds["leavers"];
        assert_eq!((gone.declines, gone.visible, gone.visible_not_alerted), (1, 1, 1), "the young one is not read");
        assert_eq!(gone.after[0], AtHorizon { days: 7, observed: 1, median_pct: Some(-60.0), beyond_noise: 1 });
    }
}
