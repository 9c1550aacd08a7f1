//! Evidence over time (docs/SIGNAL.md#the-decline-detector): a one-sided CUSUM of Poisson
//! log-likelihood ratios on an account's daily active users, against its own weekday-aware
//! usual. A threshold on one 7-day window throws away the weeks before; a slide's shortfall
//! adds up day after day, and so does this statistic, while a day at or above the usual pulls
//! it back towards 0.
//!
//! Each complete day t contributes log P(x | ρ·μ) − log P(x | μ) = μ(1 − ρ) + x·ln ρ: how much
//! better "use has fallen to ρ of the usual" explains the day's x active users than "use is at
//! its usual μ". Counts, not percentages: on a three-person account a day with one user missing
//! is weak evidence (μ = 3, ρ = 0.7 → 0.9 − 2·0.36 = +0.19), on a thirty-person account a third
//! missing is strong. The statistic is a log-likelihood ratio, so a threshold h reads as odds of
//! e^h to 1 (h = 7: about 1,000 to 1), and the threshold is picked by calibration
//! (`signal --calibrate`).
//!
//! - **Two falls, the likelier kept:** one CUSUM looks for use at 70 % of the usual, one for use
//!   at half of it, and the statistic is the larger (a generalised likelihood ratio over the
//!   two). A fall to 70 % is what a slide's first weeks look like on a large account; a small
//!   account's fade is a fall to half or less, and against 70 % its days add little: a
//!   five-person account at half its usual for four weeks gathered 4.4 (b4's happy fades).
//!   Taking the larger of two statistics at most doubles the chance of crossing a threshold by
//!   chance, so `usage_declining`'s went up by about ln 2 (5 → 6); the other rules' lower bars
//!   stay (raised too, they gave back the declines the second fall had gained).
//! - **Usual, per weekday:** the median of the same weekday in the 4 weeks before.
//! - **Fixed for the run:** the usual is that of the 4 weeks before the 28 days the statistic
//!   runs over, so a slide does not drag its own reference down — not even after a good day
//!   has brought the statistic back to 0.
//! - **Days are not independent:** one day adds at most 2 (odds of about 7 to 1), so a
//!   threshold of h needs at least h / 2 days of shortfall, however large the account.
//! - **Away together is not decline:** regular users away as a group (`people.rs`) lower the
//!   day's expectation.
//! - **A closure is not a slide:** a day at under a tenth of the usual (a public holiday and
//!   its bridge day) counts for nothing for up to 2 days running. A longer absence of the whole
//!   team counts as decline unless its regular users are away together (a team's holiday week
//!   is one group, last seen within two days of each other): a stop is evidence from its
//!   third day.
//! - **A book-wide closure says nothing:** a day most of the book was away (`book.rs`: a public
//!   holiday) is skipped on every account, however small, where one empty day cannot be told
//!   from a closure by the account alone.

use super::baseline::median;
use super::book::Closures;
use super::people::active;

/// The falls the detector looks for: use at 70 % of the usual, and at half of it (see the
/// module's docs). One fall in between (60 %) caught the same slides with more noise
/// (docs/SIGNAL.md, sixth run); the two, the likelier kept, catch more declines at the same
/// noise (twenty-sixth run).
pub const RHOS: [f64; 2] = [0.7, 0.5];
/// An account whose reference weeks swing at least this much more than chance (a Pearson
/// dispersion, see [`dispersion`]) has each day's evidence divided by it — a quasi-likelihood,
/// so a threshold keeps its meaning of odds. A seasonal account (a month-end rush, sprints,
/// busy and quiet weeks) swings by half its usual from week to week; read as Poisson, its quiet
/// fortnight weighed as much as a decline's (b4's six books: seasonal accounts were 34 of the
/// 140 healthy accounts alerted, 26 of them first by `usage_declining`). Under this it is 1:
/// four weeks' estimate of an account within chance lands above 1 often (the weekly one, from
/// four totals, most), and a steady account's fade must not lose weight to noise. Every
/// estimate used, 4 more declines went unalerted for 2 fewer healthy accounts alerted
/// (docs/SIGNAL.md, twenty-seventh run).
const DISPERSION_MIN: f64 = 1.5;
/// The statistic runs over at most this many complete days ending yesterday.
pub const RUN_DAYS: u32 = 28;
/// Weeks of each weekday the usual is the median of.
const REF_WEEKS: u32 = 4;
/// A day expected to have fewer active users than this says nothing either way.
const MIN_EXPECTED: f64 = 0.5;
/// No single day adds more than this (odds of e² ≈ 7 to 1): a team's days are not independent
/// Poisson draws — half of it away on one day is one event, not thirty — so evidence must
/// come from several days, which also gives a group away together (`people.rs`) the two days
/// it takes to be recognised. A stop is `usage_stopped`'s to catch.
const MAX_DAY_LLR: f64 = 2.0;
/// A day at or under this share of its usual is a closure (a tenth: on a 7-person account only
/// a day with nobody — a slide's worst days, one person of seven, are its evidence) …
const CLOSURE_SHARE: f64 = 0.1;
/// … for up to this many days running …
const CLOSURE_MAX_DAYS: u32 = 2;
/// … on a day expected to have at least this many users, where nobody coming in is not
/// chance (e^−5 < 1 %). On a smaller account an empty day is ordinary, and a fading small
/// account's empty days are most of its evidence: skipped as closures, a three-person account
/// fading to nothing gathered under 1 in 24 days (loadgen's `wayne`).
const CLOSURE_MIN_EXPECTED: f64 = 5.0;

/// The detector's reading as of the pass's day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The CUSUM statistic (a log-likelihood ratio, ≥ 0) after yesterday.
    pub statistic: f64,
    /// The complete day the current accumulation began, in days before the pass's day (`None`
    /// when the statistic is 0).
    pub since: Option<u32>,
}

/// Active users per day from the users' masks: index d = d days before the pass's day.
pub fn daily_users(masks: &[u64]) -> [u64; 64] {
    let mut out = [0u64; 64];
    for &m in masks {
        for (d, n) in out.iter_mut().enumerate() {
            *n += active(m, d as u32) as u64;
        }
    }
    out
}

/// The usual of each weekday (by `d % 7`) from the `REF_WEEKS` weeks before day `t`.
fn usual_before(daily: &[u64; 64], t: u32) -> [f64; 7] {
    usual_of_weeks(daily, t, REF_WEEKS)
}

/// The usual of each weekday (by `d % 7`): its median over the `weeks` weeks (1 to
/// `REF_WEEKS`) before day `t`.
fn usual_of_weeks(daily: &[u64; 64], t: u32, weeks: u32) -> [f64; 7] {
    let mut out = [0.0; 7];
    for j in t + 1..=t + 7 {
        let mut same_weekday = [0u64; REF_WEEKS as usize];
        let same_weekday = &mut same_weekday[..weeks as usize];
        for (k, n) in same_weekday.iter_mut().enumerate() {
            *n = daily[(j + 7 * k as u32) as usize];
        }
        out[(j % 7) as usize] = median(same_weekday);
    }
    out
}

/// The detector over `daily` (from [`daily_users`]) for an account whose history covers
/// `covered` complete days (at most 63), with `regular` regular users of whom `away_on[d − 1]`
/// were away together on day d, skipping the book-wide `closures`. `None` without 4 weeks of
/// usual before at least one day.
pub fn evidence(
    daily: &[u64; 64],
    regular: u64,
    away_on: &[u64],
    covered: u32,
    closures: Closures,
) -> Option<Evidence> {
    let start = RUN_DAYS.min(covered.min(63).checked_sub(7 * REF_WEEKS)?);
    if start == 0 {
        return None;
    }
    // One usual for the whole run, from the 4 weeks before it: a reference that moved on
    // whenever the statistic touched 0 (one good day in a slide) would soon be made of the
    // slide itself and read the rest of it as normal.
    let usual = usual_before(daily, start);
    // The days the statistic reads, with their expectation (none for a closure).
    let mut days = Vec::with_capacity(start as usize);
    let mut closed = 0u32;
    for t in (1..=start).rev() {
        if closures.contains(t) {
            continue;
        }
        let away = away_on.get(t as usize - 1).copied().unwrap_or(0);
        let share_here = if regular > 0 { 1.0 - (away as f64 / regular as f64).min(1.0) } else { 1.0 };
        let mu = usual[(t % 7) as usize] * share_here;
        let x = daily[t as usize] as f64;
        if mu < MIN_EXPECTED {
            continue;
        }
        closed = if mu >= CLOSURE_MIN_EXPECTED && x <= CLOSURE_SHARE * mu { closed + 1 } else { 0 };
        if (1..=CLOSURE_MAX_DAYS).contains(&closed) {
            continue;
        }
        days.push((t, mu, x));
    }
    let phi = dispersion(daily, &usual, start, closures);
    let runs = RHOS.map(|rho| cusum(&days, rho, phi));
    let statistic = runs.iter().map(|e| e.statistic).fold(0.0, f64::max);
    // The earliest day either is still adding up from: use has been under its usual since then
    // (a fall to 70 % starts counting at 16 % under the usual, one to half at 28 % under).
    let since = runs.iter().filter_map(|e| e.since).max();
    Some(Evidence { statistic: (statistic * 10.0).round() / 10.0, since })
}

/// How much more the reference weeks (the `REF_WEEKS` before day `start`, read against
/// `usual`) swing than chance: 1 for most accounts, more for a seasonal one (see
/// [`DISPERSION_MIN`]). The Pearson dispersion, Σ (x − μ)² / μ per day, of its days or of its
/// weekly totals, whichever is larger: a busy or quiet week moves all its days together, which
/// the day-level reading underrates. Closures and days usually under `MIN_EXPECTED` count for
/// nothing.
fn dispersion(daily: &[u64; 64], usual: &[f64; 7], start: u32, closures: Closures) -> f64 {
    let (mut by_day, mut days) = (0.0, 0u32);
    let mut by_week = 0.0;
    for week in 0..REF_WEEKS {
        let (mut seen, mut expected) = (0.0, 0.0);
        for j in (start + 1 + 7 * week..=start + 7 * (week + 1)).filter(|&j| j <= 63 && !closures.contains(j)) {
            let (mu, x) = (usual[(j % 7) as usize], daily[j as usize] as f64);
            if mu < MIN_EXPECTED {
                continue;
            }
            by_day += (x - mu).powi(2) / mu;
            days += 1;
            seen += x;
            expected += mu;
        }
        if expected > 0.0 {
            by_week += (seen - expected).powi(2) / expected;
        }
    }
    if days < 7 {
        return 1.0;
    }
    let phi = (by_day / days as f64).max(by_week / REF_WEEKS as f64);
    if phi < DISPERSION_MIN {
        1.0
    } else {
        phi
    }
}

/// The one-sided CUSUM for a fall to `rho` of the usual over `days` (day, expected, seen),
/// oldest first, each day's evidence divided by the account's dispersion `phi`.
fn cusum(days: &[(u32, f64, f64)], rho: f64, phi: f64) -> Evidence {
    let (mut s, mut since) = (0.0f64, None);
    for &(t, mu, x) in days {
        let llr = ((mu * (1.0 - rho) + x * rho.ln()) / phi).min(MAX_DAY_LLR);
        let next = (s + llr).max(0.0);
        if s == 0.0 && next > 0.0 {
            since = Some(t);
        }
        if next == 0.0 {
            since = None;
        }
        s = next;
    }
    Evidence { statistic: s, since }
}

/// A silence shorter than this many expected days (days whose usual is at least
/// `MIN_EXPECTED`) says nothing: a closure of the account's own (a company holiday and its
/// bridge day, not book-wide) lasts two.
pub const SILENCE_MIN_DAYS: u32 = 3;

/// An account's current silence: how long, and how unlikely by chance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Silence {
    /// Complete days ending yesterday on which nobody was active (0: someone came in yesterday).
    pub days: u32,
    /// The active user-days the weekday-aware usual of the 4 weeks before the silence expected
    /// on those days — −ln of the Poisson chance of none (6 ≈ 1 in 400). An exact count where
    /// `usage_stopped`'s percentage needs a usual of 10 user-days in 3 days: on a three-person
    /// account that comes in most weekdays a silent working week reads 5–7, a weekend about 0.
    /// Book-wide closures count for nothing; so do days under `MIN_EXPECTED`. 0 while fewer
    /// than [`SILENCE_MIN_DAYS`] expected days are silent. `None` without 4 weeks of history
    /// before the silence (a new account, or one silent for over 5 weeks, when `no_login_14d`
    /// has long spoken).
    pub evidence: Option<f64>,
}

/// The silence of an account whose history covers `covered` complete days, skipping the
/// book-wide `closures`. A group of regular users away together does not lower the expectation
/// here, unlike the detector: a whole team silent at once is what this reads, and a stop is
/// exactly that.
pub fn silence(daily: &[u64; 64], covered: u32, closures: Closures) -> Silence {
    let covered = covered.min(63);
    let days = (1..=covered).take_while(|&t| daily[t as usize] == 0).count() as u32;
    if days + 7 * REF_WEEKS > covered {
        return Silence { days, evidence: None };
    }
    let usual = usual_before(daily, days);
    let expected: Vec<f64> = (1..=days)
        .filter(|&t| !closures.contains(t))
        .map(|t| usual[(t % 7) as usize])
        .filter(|&mu| mu >= MIN_EXPECTED)
        .collect();
    let evidence = if (expected.len() as u32) < SILENCE_MIN_DAYS {
        0.0
    } else {
        (expected.iter().sum::<f64>() * 10.0).round() / 10.0
    };
    Silence { days, evidence: Some(evidence) }
}

/// A working day at or under this share of its weekday's usual is a day of a stop. A cliff
/// leaves a trickle (loadgen's: 3–10 % of the usual, a day or two of falling first), which
/// `silence`, wanting nobody at all, does not see on a large account.
const STOP_SHARE: f64 = 0.25;
/// A weekday whose usual is under this share of the account's busiest weekday is not a working
/// day: a weekend neither counts towards a stop nor ends one.
const WORKING_SHARE: f64 = 0.25;
/// A stop is read against the usual of the 4 weeks before the last this-many days: fixed, as
/// the detector's is, so a stop inside them does not lower its own usual. A longer stop has
/// long been alerted (`no_login_14d`, the detector), and its run stays at its cap.
const STOP_LOOKBACK: u32 = 14;
/// The fewest weeks of usual a stop is read against.
const STOP_MIN_WEEKS: u32 = 2;

/// Working days in a row, ending yesterday, on which the account's active users were at most
/// [`STOP_SHARE`] of their weekday's usual: the stop `usage_collapsed` reads, counted so that
/// an account's own closure of two working days (a bridge day; Good Friday and Easter Monday
/// around their weekend) never reaches 3, where a 3-day window held 2 days reads such a weekend
/// as a stop. Days that are not working days (weekends; days usually under `MIN_EXPECTED`)
/// neither count nor end the run. A book-wide closure ends nothing either, and counts only when
/// nobody at all came in: the book's holiday leaves a tenth of each team at work. The usual is
/// that of the 4 weeks before the last [`STOP_LOOKBACK`] days, or of as many whole weeks as the
/// history holds before them, 2 at least: an account that stops three weeks into its history
/// (a new customer; a short import) has a usual of 2 weeks, where waiting for 4 weeks before
/// the last day held its stop back until its fifth week. `None` under 3 weeks of history.
pub fn stopped_days(daily: &[u64; 64], covered: u32, closures: Closures) -> Option<u32> {
    let covered = covered.min(63);
    let recent = STOP_LOOKBACK.min(covered.checked_sub(7 * STOP_MIN_WEEKS)?);
    if recent < 7 {
        return None;
    }
    let weeks = ((covered - recent) / 7).min(REF_WEEKS);
    let usual = usual_of_weeks(daily, recent, weeks);
    let busiest = usual.iter().copied().fold(0.0, f64::max);
    let mut days = 0;
    for t in 1..=recent {
        let (mu, x) = (usual[(t % 7) as usize], daily[t as usize]);
        if mu < MIN_EXPECTED || mu < WORKING_SHARE * busiest || (closures.contains(t) && x > 0) {
            continue;
        }
        if x as f64 > STOP_SHARE * mu {
            break;
        }
        days += 1;
    }
    Some(days)
}

#[cfg(test)]
#[path = "detector_tests.rs"]
mod tests;
