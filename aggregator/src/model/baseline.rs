//! Baselines: each account compared with its own recent normal (docs/SIGNAL.md#baselines).
//!
//! A change rule that compares this week with last week misses a steady slide (−20 to −30 % a
//! week never crosses −50 %) and fires on one holiday week (and again on the week after it, which
//! looks like a jump). A baseline is the account's *usual* week instead: the median of the weekly
//! values of up to [`BASELINE_WEEKS`] complete weeks before the current one. The median ignores
//! one odd week (a holiday, a launch), so a slide shows as a growing gap from the usual and a
//! quiet week does not move the usual.
//!
//! Weeks are whole days only and end yesterday (UTC): today is still filling in, and comparing a
//! partial day with whole ones would read every morning as a decline. Each week spans all seven
//! weekdays, so weekday seasonality cancels out; the 3-day window is compared with the same three
//! weekdays of the earlier weeks for the same reason.
//!
//! An account with fewer than [`MIN_WEEKS`] complete weeks of history (it was first seen less
//! than that long ago) gets no baseline at all — not one computed from its ramp-up.

/// Complete weeks before the current one that the baseline is the median of.
pub const BASELINE_WEEKS: usize = 8;
/// Fewer complete weeks of history than this: no baseline. Three, not four: a history import's
/// first weeks (and a new customer's) were otherwise blind for five weeks, and accounts that
/// stopped in them were alerted a median of 8 days late on a book written apart from loadgen; a
/// median of three weeks still ignores one odd week. Two were noisier (docs/SIGNAL.md, tenth
/// run). The decline detector keeps its four (`detector.rs`).
pub const MIN_WEEKS: usize = 3;

/// One measure's values per period, newest first: index 0 is the current period (the 7 — or 3 —
/// complete days ending yesterday), index k the same period k weeks earlier. Periods before the
/// account was first seen are absent (the slice is shorter), not zeros.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series<'a>(pub &'a [u64]);

/// The current value of a measure against its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Baseline {
    /// The current period's value.
    pub current: f64,
    /// The median of the earlier periods (the account's usual).
    pub usual: f64,
    /// (current − usual) ÷ usual in %; `None` when the usual is 0 (nothing to fall from).
    pub change_pct: Option<f64>,
    /// How many earlier weeks the usual is the median of.
    pub weeks: u8,
    /// How far the current value is from the usual in units of the account's own week-to-week
    /// spread (robust: 1.4826 × the median absolute deviation of the earlier weeks, at least
    /// √usual, the wobble of counting alone); −2 = unusually low for this account. `None` when
    /// the usual is 0.
    pub z: Option<f64>,
}

pub(super) fn median(values: &mut [u64]) -> f64 {
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    }
}

impl Series<'_> {
    /// The current period against the median of the earlier ones; `None` without
    /// [`MIN_WEEKS`] earlier complete weeks.
    pub fn baseline(self) -> Option<Baseline> {
        let (current, earlier) = self.0.split_first()?;
        let earlier = &earlier[..earlier.len().min(BASELINE_WEEKS)];
        if earlier.len() < MIN_WEEKS {
            return None;
        }
        let mut values = earlier.to_vec();
        let usual = median(&mut values);
        let current = *current as f64;
        let change_pct = (usual > 0.0).then(|| (current - usual) * 100.0 / usual);
        // Deviations in tenths keep the median exact in integers (a half is possible).
        let mut deviations: Vec<u64> =
            earlier.iter().map(|&v| ((v as f64 - usual).abs() * 10.0).round() as u64).collect();
        let mad = median(&mut deviations) / 10.0;
        let spread = (1.4826 * mad).max(usual.sqrt());
        let z = (usual > 0.0).then(|| (current - usual) / spread);
        Some(Baseline { current, usual, change_pct, weeks: earlier.len() as u8, z })
    }
}

/// How many periods of a per-week array the account's history covers: period k (k = 0 the
/// current one) starts `7k + span` days before `today`, and only counts when the account was
/// first seen on or before that day.
pub fn covered(today_day: i64, first_day: i64, span: i64, len: usize) -> usize {
    (0..len as i64).take_while(|k| first_day <= today_day - 7 * k - span).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine weeks of a steady account: ~70 user-days a week.
    const STEADY: [u64; 9] = [70, 72, 68, 71, 69, 73, 70, 67, 71];

    fn change(weeks: &[u64]) -> Option<f64> {
        Series(weeks).baseline().and_then(|b| b.change_pct)
    }

    #[test]
    fn a_steady_account_is_at_its_usual() {
        let b = Series(&STEADY).baseline().unwrap();
        assert_eq!((b.usual, b.weeks), (70.5, 8), "median of 72 68 71 69 73 70 67 71");
        assert!(b.change_pct.unwrap().abs() < 1.0);
        // Deviations 1.5 2.5 0.5 1.5 2.5 0.5 3.5 0.5 → MAD 1.5, × 1.4826 = 2.2 < √70.5 = 8.4.
        assert!((b.z.unwrap() - (70.0 - 70.5) / 70.5f64.sqrt()).abs() < 1e-9);
    }

    #[test]
    fn the_spread_is_the_accounts_own_wobble() {
        // Same usual (50), same current week (35: −30 %), different histories.
        let calm = Series(&[35, 50, 51, 49, 50, 52, 48, 50, 50]).baseline().unwrap();
        let jumpy = Series(&[35, 50, 80, 20, 65, 35, 50, 75, 25]).baseline().unwrap();
        assert_eq!((calm.usual, jumpy.usual), (50.0, 50.0));
        assert_eq!(calm.change_pct, jumpy.change_pct);
        // calm: spread √50 = 7.1 → z −2.1: unusual. jumpy: MAD 15 → spread 22.2 → z −0.7: its normal.
        assert!(calm.z.unwrap() < -2.0, "{calm:?}");
        assert!(jumpy.z.unwrap() > -1.0, "{jumpy:?}");
    }

    #[test]
    fn a_one_week_dip_is_a_dip_while_it_lasts_and_leaves_the_usual_alone() {
        // The holiday week itself reads low (the rules' `for` and 3-day window deal with that) …
        let mut during = STEADY;
        during[0] = 20;
        assert!(change(&during).unwrap() < -70.0);
        // … but once it is over it is one odd week among eight: the usual does not move, and the
        // week after the holiday is not a "jump" (a week-over-week rule read it as +250 %).
        let mut after = STEADY;
        after[1] = 20;
        let b = Series(&after).baseline().unwrap();
        assert_eq!(b.usual, 69.5, "median of 20 68 71 69 73 70 67 71 (it was 70.5)");
        assert!(b.change_pct.unwrap().abs() < 1.0);
    }

    #[test]
    fn a_slide_shows_within_a_week_and_keeps_growing() {
        // −25 % a week: 52, 39, 29 … against a usual of ~70. Week over week it never crosses −50 %.
        let mut weeks = STEADY;
        let mut seen = Vec::new();
        for (w, value) in [52u64, 39, 29].into_iter().enumerate() {
            weeks.rotate_right(1);
            weeks[0] = value;
            let c = change(&weeks).unwrap();
            seen.push(c);
            let slid = (1.0 - 0.75f64.powi(w as i32 + 1)) * 100.0;
            assert!(c <= -slid + 2.0, "week {}: {c:.0} %, slid {slid:.0} %", w + 1);
        }
        assert!(seen.windows(2).all(|p| p[1] < p[0]), "the gap grows: {seen:?}");
        // The slide's own weeks are in the usual by week 3, but the median holds: still ≤ −55 %.
        assert!(seen[2] <= -55.0);
    }

    #[test]
    fn a_new_account_has_no_baseline_not_a_false_one() {
        // Two earlier weeks: no baseline, whatever the numbers.
        assert_eq!(Series(&[40, 30, 20]).baseline(), None);
        assert_eq!(Series(&[]).baseline(), None);
        // The third earlier complete week gives one: the median of three.
        let b = Series(&[40, 30, 20, 10]).baseline().unwrap();
        assert_eq!((b.weeks, b.usual), (3, 20.0));
        // History is cut where the account was first seen: first seen 30 days before today
        // covers the current week and three earlier ones (7k + 7 ≤ 30 for k = 0..=3).
        assert_eq!(covered(100, 70, 7, 9), 4);
        assert_eq!(covered(100, 0, 7, 9), 9);
        assert_eq!(covered(100, 98, 3, 9), 0, "first seen the day before yesterday: no whole 3 days");
    }

    #[test]
    fn a_tiny_account_gets_a_baseline_but_no_percentages_from_nothing() {
        // Two users, a handful of user-days: the baseline is honest about its size (a rule's
        // `min_baseline` silences such accounts) …
        let b = Series(&[3, 6, 5, 7, 6, 4, 6]).baseline().unwrap();
        assert_eq!((b.usual, b.current), (6.0, 3.0));
        assert_eq!(b.change_pct, Some(-50.0));
        // … and an account whose usual is zero has no percentage to report.
        assert_eq!(Series(&[5, 0, 0, 0, 0]).baseline().unwrap().change_pct, None);
    }
}
