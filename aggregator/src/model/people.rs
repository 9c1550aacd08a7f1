//! Users, not only totals (docs/SIGNAL.md#users): who of an account's people used it regularly,
//! which of them have been gone far longer than their own habit makes likely, the heaviest user
//! (the champion) and how long since they were seen, who is new. An account's total use hides
//! a team leaving one by one until most of it has gone; these say it with the first two, and
//! name them.
//!
//! Everything is read from each user's 64-day activity mask (`account_members`): bit 63 is the
//! pass's day, bit `63 − d` the day `d` days before. The pass's own day is still filling in, so
//! absences are counted in complete days (d ≥ 1) only. A book-wide closure (`book.rs`: a
//! public holiday) is no day of anybody's habit: it neither lowers a user's weekday rate nor
//! makes an absence longer.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::book::Closures;

/// A user is regular when active in at least this share of their covered weeks (6 of 8).
pub const REGULAR_SHARE: f64 = 0.75;
/// … judged on at least this many covered weeks.
pub const MIN_WEEKS: usize = 3;
/// A regular user is lapsed when an absence this long is less likely than this under their own
/// weekday habit …
pub const LAPSE_P: f64 = 0.001;
/// … and it has lasted at least this many complete days (a long weekend is never a lapse).
pub const MIN_LAPSE_DAYS: u32 = 5;
/// A lapse this long (complete days) outlasts most people's leave, taken in blocks of one or two
/// weeks: `regular_users_lapsed_long` counts these. Two people's overlapping holidays make two
/// lapses, rarely two this long (docs/SIGNAL.md, ninth run).
pub const LONG_LAPSE_DAYS: u32 = 12;
/// The champion is the user with the most active days in the weeks before the current one. One
/// gone as long as a long lapse ([`LONG_LAPSE_DAYS`] complete days or more) is judged instead on
/// the share of days they came in before they went, over the same weeks: a champion gone a
/// fortnight has fewer active days in the window than a colleague who comes in nearly as often,
/// yet is still the heaviest user the account had. Judging everyone on that share, however
/// short their absence, made a colleague on leave the champion too often (healthy accounts
/// alerted, b2: +2 or +3 a book). Over 21 days until the twenty-fifth run: between 10 and 21
/// days gone the champions of b3 and b4 lost the title to a colleague, and `champion_gone`
/// never saw them go. From 12 days, b4's four books: 4 more declines caught, 32 alerted 1–13
/// days sooner; loadgen seeds 7 and 11: 12 sooner; none later; 3 more healthy accounts alerted
/// over the six (a fortnight's leave can still crown its colleague: docs/SIGNAL.md).
/// … once those days before they went are at least this many.
const CHAMPION_MIN_DAYS: usize = 14;
/// A user's daily chance is capped here: nobody is certain to come in on a given day, so one
/// missed day of a daily user is not a thousand-to-one event.
const P_CAP: f64 = 0.9;
/// Regular users absent together are away (an offsite, a team's holiday), not leaving, when
/// they are at least this many …
const COHORT_MIN: usize = 3;
/// … and this share of the regular users …
const COHORT_SHARE: f64 = 0.3;
/// … for this many days at most: a team gone for longer than two weeks has gone.
const COHORT_MAX_DAYS: u32 = 14;
/// Members of a group are absent at least this many complete days …
const COHORT_MIN_GAP: u32 = 2;
/// … and were last seen within this many days of each other …
const COHORT_SPREAD: u32 = 2;
/// … each absence unlikely (under this chance) under the user's own weekday habit.
const COHORT_P: f64 = 0.1;
/// A group leaves a usual week behind it: in the `BEFORE_DAYS` before the group was last seen
/// the team (all regular users) came in on at least `BEFORE_SHARE` of the days their habit of
/// the weeks before expects, give or take `BEFORE_Z` standard deviations of chance. A fade thins
/// everyone's days for weeks before its absences line up; read as a group away, a fade's last
/// weeks gave no evidence (b2: 6 of 14 regular users "away together" at −70 %). At 80 % some
/// fades' weeks still passed as usual once their absences lined up (loadgen, four books at
/// 90 %: three more declines alerted, eight sooner by 24 days in all, no healthy account more,
/// the dips alike on a book with five weeks' leave a year: docs/SIGNAL.md, nineteenth run).
const BEFORE_DAYS: u32 = 7;
const BEFORE_SHARE: f64 = 0.9;
const BEFORE_Z: f64 = 1.0;
/// Absences that are each likely enough (at least this chance) are no group however many …
const LINEUP_CHANCE: f64 = 0.5;
/// … but when as many as this share of the regular users …
const LINEUP_SHARE: f64 = 0.4;
/// … have less likely ones of at least this many days (two days of a fade line up too often) …
const LINEUP_MIN_DAYS: usize = 3;
/// … are, when this many lined up is less likely than this under the
/// users' habits (a Poisson tail on the number absent over the group's days).
const LINEUP_P: f64 = 1e-6;
/// … and the others were at work as usual (a fade lines absences up too, but thins everyone's
/// days) …
const LINEUP_OTHERS_SHARE: f64 = 0.9;
/// … while the others were active on at least this share of the days their habit expects …
const OTHERS_SHARE: f64 = 0.7;
/// … give or take this many standard deviations of chance: two or three others with a
/// three-days-a-week habit come in half as often as expected in a week more often than not
/// (loadgen: dips alerted 8 → 6, 7 → 4 and 12 → 9 of 44 on three books, one decline of 233
/// caught later); a fade, which halves everyone's use, is still no group.
const OTHERS_Z: f64 = 2.0;
/// Regular users absent on all of a group's days and last seen with it went along with it; they
/// count towards its share when this many absent together is less likely than this under the
/// users' habits (the Poisson tail of the lined-up test): the group's telling members vouch for
/// the day it began, the lineup for its size. Half of an 18-person team away for a week had 5
/// of 17 regular users' absences telling by its sixth day, under 30 %, and more absent on all
/// of its days, so its week read as a decline (loadgen, three books: a dip spared on each, no
/// decline lost, three alerted a day or four later and two sooner; at 10⁻⁴ and 10⁻³ slides
/// whose leavers went within days of each other began to read as groups: docs/SIGNAL.md,
/// nineteenth run).
const ALONG_P: f64 = 1e-5;

/// Whether the mask has the day `d` days before the pass's day.
pub fn active(mask: u64, d: u32) -> bool {
    d < 64 && (mask >> (63 - d)) & 1 == 1
}

/// A lapsed regular user.
#[derive(Debug, Clone, PartialEq)]
pub struct Lapse {
    pub user: String,
    /// Complete days since last seen.
    pub days: u32,
}

/// One account's people, as of the pass's day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct People {
    /// Users active in most of their covered weeks before their latest absence.
    pub regular: u64,
    /// Regular users gone far longer than their habit makes likely, longest gone first.
    pub lapsed: Vec<Lapse>,
    /// Regular users away now as part of a group (see [`people`]): not lapsed.
    pub away_together: u64,
    /// The heaviest user of the weeks before the current one, and their absence in complete days.
    pub champion: Option<(String, u32)>,
    /// Whether the champion is lapsed (by their own habit, as above).
    pub champion_lapsed: bool,
    /// Users first seen in the 7 days ending on the pass's day (only once the account's history
    /// covers more than those 7 days).
    pub new_7d: u64,
    /// Per complete day d = 1..=63 (index d − 1): how many of the away-together users were
    /// absent that day as part of their shared absence (the detector expects fewer then).
    pub away_on: Vec<u64>,
}

impl People {
    /// The lapsed regular users gone [`LONG_LAPSE_DAYS`] or more (`regular_users_lapsed_long`).
    pub fn long_lapses(&self) -> u64 {
        self.lapsed.iter().filter(|l| l.days >= LONG_LAPSE_DAYS).count() as u64
    }

    /// How many of the `days` complete days ending yesterday a group was away, past groups
    /// included (`group_away_days_7d`), as [`Closures::in_last`] counts the book's closures.
    pub fn group_days_in_last(&self, days: usize) -> u8 {
        self.away_on.iter().take(days).filter(|&&n| n > 0).count() as u8
    }
}

/// One user's habit, read from their mask.
struct Habit {
    /// Complete days since last seen (0: seen yesterday or today).
    gap: u32,
    regular: bool,
    /// The chance of this long an absence under the user's weekday habit.
    chance: f64,
    /// Active days before the current week.
    earlier_days: u32,
    /// How heavy a user they are: the champion is the heaviest (see [`weight`]).
    weight: f64,
}

fn habit(mask: u64, covered: u32, closed: Closures) -> Option<Habit> {
    if mask == 0 {
        return None;
    }
    let gap = (0..64u32).find(|&d| active(mask, d)).map_or(63, |d| d.saturating_sub(1));
    // The days before the absence (its last active day and older) that the history covers.
    let before = (gap + 1)..=covered.min(63);
    let weeks: Vec<bool> = before
        .clone()
        .step_by(7)
        .filter(|start| start + 6 <= covered.min(63))
        .map(|start| (start..start + 7).any(|d| active(mask, d)))
        .collect();
    let regular =
        weeks.len() >= MIN_WEEKS && weeks.iter().filter(|&&a| a).count() as f64 >= REGULAR_SHARE * weeks.len() as f64;
    // Daily chance per weekday, from the days before the absence.
    let rates = weekday_rates(mask, before, closed);
    let chance = (1..=gap).filter(|&d| !closed.contains(d)).map(|d| 1.0 - rates[(d % 7) as usize]).product();
    let earlier_days = (8..64).filter(|&d| active(mask, d)).count() as u32;
    let weight = weight(mask, gap, covered, closed).unwrap_or(f64::from(earlier_days));
    Some(Habit { gap, regular, chance, earlier_days, weight })
}

/// The weight of a user gone as long as a long lapse ([`LONG_LAPSE_DAYS`]): the share of the
/// window's days before they went that they came in, times the window's days (book-wide
/// closures left out); `None` for anyone else, or with under [`CHAMPION_MIN_DAYS`] of those.
fn weight(mask: u64, gap: u32, covered: u32, closed: Closures) -> Option<f64> {
    if gap < LONG_LAPSE_DAYS {
        return None;
    }
    let open_days = |from: u32| (from..=covered.min(63)).filter(move |&d| !closed.contains(d));
    let (days, came) = open_days(gap + 1).fold((0usize, 0usize), |(n, a), d| (n + 1, a + active(mask, d) as usize));
    (days >= CHAMPION_MIN_DAYS).then(|| came as f64 / days as f64 * open_days(8).count() as f64)
}

/// A stretch of complete days a user was absent: the days `newest..=oldest` before the pass's
/// day, after an active day and within the history (not the days before the user's first).
struct Absence {
    newest: u32,
    oldest: u32,
}

impl Absence {
    fn len(&self) -> u32 {
        self.oldest - self.newest + 1
    }

    /// The active day before it, in days before the pass's day.
    fn last_seen(&self) -> u32 {
        self.oldest + 1
    }

    /// The chance of this absence under the user's weekday habit over the whole history
    /// (`rates`, from [`weekday_rates`]): a weekly user's six days between visits are no
    /// absence at all.
    fn chance(&self, rates: &[f64; 7], closed: Closures) -> f64 {
        (self.newest..=self.oldest).filter(|&d| !closed.contains(d)).map(|d| 1.0 - rates[(d % 7) as usize]).product()
    }
}

/// A user's share of active days per weekday (days d and d + 7 share one) over `days`, capped
/// at [`P_CAP`]; 0 for a weekday `days` does not hold. Book-wide closures are left out.
fn weekday_rates(mask: u64, days: std::ops::RangeInclusive<u32>, closed: Closures) -> [f64; 7] {
    let mut seen = [0u32; 7];
    let mut total = [0u32; 7];
    for d in days.filter(|&d| !closed.contains(d)) {
        total[(d % 7) as usize] += 1;
        seen[(d % 7) as usize] += active(mask, d) as u32;
    }
    std::array::from_fn(|i| (seen[i] as f64 / total[i].max(1) as f64).min(P_CAP))
}

/// The bits of days `newest..=oldest` (1 ≤ newest ≤ oldest ≤ 63), as in a user's mask.
fn days_mask(newest: u32, oldest: u32) -> u64 {
    (newest..=oldest.min(63)).fold(0, |m, d| m | 1 << (63 - d))
}

fn absences(mask: u64, covered: u32) -> Vec<Absence> {
    let last = covered.min(63);
    let mut out = Vec::new();
    let mut d = 1;
    while d <= last {
        if active(mask, d) {
            d += 1;
            continue;
        }
        let newest = d;
        while d <= last && !active(mask, d) {
            d += 1;
        }
        if d <= last {
            out.push(Absence { newest, oldest: d - 1 });
        }
    }
    out
}

/// The people of one account from its users' ids and masks (same order), whose history covers
/// `covered` complete days before the pass's day (days since first seen, at most 63), with the
/// book-wide `closed` days left out of every habit and absence.
pub fn people(ids: &[String], masks: &[u64], covered: u32, closed: Closures) -> People {
    let mut out = People { away_on: vec![0; 63], ..People::default() };
    let mut lapsed: Vec<(usize, &Habit)> = Vec::new();
    let habits: Vec<Option<Habit>> = masks.iter().map(|&m| habit(m, covered, closed)).collect();
    let regular: Vec<usize> = (0..masks.len()).filter(|&i| habits[i].as_ref().is_some_and(|h| h.regular)).collect();
    out.regular = regular.len() as u64;
    let mut champion: Option<(usize, f64)> = None;
    for (i, h) in habits.iter().enumerate() {
        let Some(h) = h else { continue };
        if h.regular && h.gap >= MIN_LAPSE_DAYS && h.chance < LAPSE_P {
            lapsed.push((i, h));
        }
        let heavier = champion.is_none_or(|(c, w)| (h.weight, &ids[c]) > (w, &ids[i]));
        if h.earlier_days > 0 && heavier {
            champion = Some((i, h.weight));
        }
        let first = (0..64u32).rev().find(|&d| active(masks[i], d)).unwrap_or(0);
        if first <= 6 && covered > 7 {
            out.new_7d += 1;
        }
    }
    // Groups: regular users absent for 2–14 days (each absence unlikely under their own habit)
    // whose last days lie within two days of each other (a team's week away starts on one day,
    // give or take who came in on the Friday), many of them. Past groups as well as the current
    // one: the detector re-reads every day of its run, and a week away that is over was no
    // decline either.
    let rates: Vec<[f64; 7]> = masks.iter().map(|&m| weekday_rates(m, 1..=covered.min(63), closed)).collect();
    // The rest of the team carried on as usual on the group's days: in a fade everybody comes
    // in less and many absences line up by chance; a group away leaves the others at work.
    let others_at_work = |run: &Absence, with: &[usize], share: f64| {
        // Those absent on all of its days are away too (just with a habit that makes it less
        // telling), not the others at work.
        let days = run.newest..=run.oldest;
        let others = regular.iter().filter(|j| !with.contains(j) && days.clone().any(|d| active(masks[**j], d)));
        let rates = &rates;
        let user_days =
            others.flat_map(|&j| days.clone().map(move |d| (rates[j][(d % 7) as usize], active(masks[j], d))));
        came_in_as_usual(user_days, share, OTHERS_Z)
    };
    // The team came in as usual in the week before the group went (see [`BEFORE_SHARE`]),
    // against the habits of the weeks before that week; `true` without two weeks of those.
    let usual_week_before = |run: &Absence| {
        let week = (run.last_seen() + 1)..=(run.last_seen() + BEFORE_DAYS);
        let reference = (week.end() + 1)..=covered.min(63);
        if reference.clone().count() < 14 {
            return true;
        }
        let user_days = regular.iter().flat_map(|&j| {
            let rates = weekday_rates(masks[j], reference.clone(), closed);
            week.clone().filter(|&d| !closed.contains(d)).map(move |d| (rates[(d % 7) as usize], active(masks[j], d)))
        });
        came_in_as_usual(user_days, BEFORE_SHARE, BEFORE_Z)
    };
    let gaps: Vec<Vec<Absence>> = masks.iter().map(|&m| absences(m, covered)).collect();
    // Absences of 2–14 days too unlikely under the user's habit to be nothing much; `telling`
    // when unlikely on their own.
    let runs: Vec<(usize, &Absence, bool)> = regular
        .iter()
        .flat_map(|&i| gaps[i].iter().map(move |a| (i, a)))
        .filter_map(|(i, a)| {
            let chance = a.chance(&rates[i], closed);
            ((COHORT_MIN_GAP..=COHORT_MAX_DAYS).contains(&a.len()) && chance < LINEUP_CHANCE).then_some((
                i,
                a,
                chance < COHORT_P,
            ))
        })
        .collect();
    // Many absences lined up where the users' habits expect few: on a large team of people who
    // come in two or three days a week, no one's absence is unlikely for days, but half of them
    // gone since the same day is (loadgen's dips: the detector had read three or four days of a
    // group away on a 60-person account as decline before any member's own absence told).
    let lineup_p = |run: &Absence, min_days: usize| {
        let days: Vec<u32> = (run.newest..=run.oldest).filter(|&d| !closed.contains(d)).collect();
        if days.len() < min_days {
            return 1.0;
        }
        // Of those who were in on the days the group was last seen: users gone for weeks (a
        // slide's leavers) would line up with any absence.
        let before = run.last_seen()..=run.last_seen() + COHORT_SPREAD;
        let present: Vec<usize> =
            regular.iter().copied().filter(|&j| before.clone().any(|d| active(masks[j], d))).collect();
        let absent = present.iter().filter(|&&j| days.iter().all(|&d| !active(masks[j], d))).count();
        let expected: f64 =
            present.iter().map(|&j| days.iter().map(|&d| 1.0 - rates[j][(d % 7) as usize]).product::<f64>()).sum();
        poisson_tail(expected, absent)
    };
    let lined_up_unlikely = |run: &Absence| lineup_p(run, LINEUP_MIN_DAYS) < LINEUP_P;
    let mut away_now = vec![false; masks.len()];
    // Who was away with a group on which day, one bit per day as in the masks.
    let mut away_days = vec![0u64; masks.len()];
    for (i, run, telling) in &runs {
        let members = |only_telling: bool| {
            let mut with: Vec<usize> = runs
                .iter()
                .filter(|(_, r, t)| (*t || !only_telling) && r.last_seen().abs_diff(run.last_seen()) <= COHORT_SPREAD)
                .map(|(j, _, _)| *j)
                .collect();
            with.dedup(); // `runs` holds each user's absences next to each other
            with
        };
        // Those last seen with the group and still away after `COHORT_MAX_DAYS` count towards it
        // once as many of the group, and at least `COHORT_MIN`, are back: some of a team staying
        // on (a long leave after the team's week) does not undo the team's week, whose days the
        // detector would otherwise read as decline the day it shrank below a group (b2: a
        // half-team's evidence 2.6 → 13.4 on the day three of fourteen passed two weeks). Back:
        // seen again after a gap of at least `COHORT_MIN_GAP` days.
        let stayed = regular
            .iter()
            .filter(|&&j| {
                gaps[j]
                    .iter()
                    .any(|a| a.len() > COHORT_MAX_DAYS && a.last_seen().abs_diff(run.last_seen()) <= COHORT_SPREAD)
            })
            .count();
        let back = |with: &[usize]| {
            let seen_since =
                |j: usize| habits[j].as_ref().is_some_and(|h| h.gap + 1 + COHORT_MIN_GAP <= run.last_seen());
            with.iter().filter(|&&j| seen_since(j)).count()
        };
        // Those last seen with the group and absent on all of its days went with it: one with a
        // sparse habit is not yet unlikely to be away after three days, yet the detector must
        // not expect them in (on a large team half away, the unrecognised half of the group
        // read as a decline).
        let left_with = |j: usize, max_days: u32| {
            gaps[j].iter().any(|a| {
                a.newest <= run.newest
                    && a.oldest >= run.oldest
                    && a.len() <= max_days
                    && a.last_seen().abs_diff(run.last_seen()) <= COHORT_SPREAD
            })
        };
        // Longer absences are `stayed`'s.
        let went_along =
            |with: &[usize]| regular.iter().filter(|&&j| !with.contains(&j) && left_with(j, COHORT_MAX_DAYS)).count();
        // Whether `with`, and `along` more who went with it, are a group's share of the team.
        let many = |with: &[usize], along: usize, share: f64| {
            let stayed = if stayed > 0 && back(with) >= COHORT_MIN.max(stayed) { stayed } else { 0 };
            with.len() >= COHORT_MIN && (with.len() + along + stayed) as f64 >= share * out.regular as f64
        };
        // A group is its telling members and, when that many lined up is unlikely enough
        // (`ALONG_P`), those who went along with them.
        let telling_group = |with: &[usize]| {
            many(with, 0, COHORT_SHARE) || (many(with, went_along(with), COHORT_SHARE) && lineup_p(run, 1) < ALONG_P)
        };
        let with = members(true);
        let with = if *telling && telling_group(&with) && others_at_work(run, &with, OTHERS_SHARE) {
            with
        } else {
            let with = members(false);
            if !(many(&with, 0, LINEUP_SHARE)
                && lined_up_unlikely(run)
                && others_at_work(run, &with, LINEUP_OTHERS_SHARE))
            {
                continue;
            }
            with
        };
        if !usual_week_before(run) {
            continue;
        }
        let span = days_mask(run.newest, run.oldest);
        let sparse = regular.iter().copied().filter(|&j| !with.contains(&j) && left_with(j, u32::MAX));
        for j in std::iter::once(*i).chain(sparse) {
            away_days[j] |= span;
            away_now[j] |= run.newest == 1 && !active(masks[j], 0);
        }
    }
    for (d, away) in (1..=63u32).zip(out.away_on.iter_mut()) {
        *away = away_days.iter().filter(|&&m| active(m, d)).count() as u64;
    }
    out.away_together = away_now.iter().filter(|&&a| a).count() as u64;
    let gone: Vec<&(usize, &Habit)> = lapsed.iter().filter(|(i, _)| !away_now[*i]).collect();
    let mut gone: Vec<Lapse> = gone.iter().map(|(i, h)| Lapse { user: ids[*i].clone(), days: h.gap }).collect();
    gone.sort_by(|a, b| b.days.cmp(&a.days).then(a.user.cmp(&b.user)));
    out.lapsed = gone;
    if let Some((c, _)) = champion {
        let h = habits[c].as_ref().expect("a champion has a habit");
        out.champion_lapsed = out.lapsed.iter().any(|l| l.user == ids[c]);
        out.champion = Some((ids[c].clone(), h.gap));
    }
    out
}

/// Whether users came in on at least `share` of the days their habits expect, give or take `z`
/// standard deviations of chance (the sum of p(1 − p) over those days): one (chance, came in)
/// pair per user-day. `true` when under one day is expected: nothing to judge.
fn came_in_as_usual(user_days: impl Iterator<Item = (f64, bool)>, share: f64, z: f64) -> bool {
    let (mut expected, mut variance, mut seen) = (0.0, 0.0, 0u32);
    for (p, came) in user_days {
        expected += p;
        variance += p * (1.0 - p);
        seen += came as u32;
    }
    expected < 1.0 || seen as f64 >= share * expected - z * variance.sqrt()
}

/// P(N ≥ n) for N Poisson with mean `mean`: the terms from n on, summed until they no longer
/// count.
fn poisson_tail(mean: f64, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if mean <= 0.0 {
        return 0.0;
    }
    let ln_factorial: f64 = (2..=n).map(|k| (k as f64).ln()).sum();
    let mut term = (n as f64 * mean.ln() - mean - ln_factorial).exp();
    let mut sum = 0.0;
    for k in n + 1.. {
        sum += term;
        term *= mean / k as f64;
        if term < sum * 1e-12 || k > n + 10_000 {
            break;
        }
    }
    sum.min(1.0)
}

/// How many lapsed users `lapsed_users` names before "+ N more".
pub const NAMED_MAX: usize = 5;

/// Who, for an alert and the console: "u7 (Ana Lee <ana@x.example>, 12 days), u3 (6 days)",
/// with each user's label from their identify traits where `labels` has one; at most `max`,
/// then "+ N more".
pub fn describe(lapsed: &[Lapse], max: usize, labels: &HashMap<String, String>) -> String {
    let mut parts: Vec<String> = lapsed
        .iter()
        .take(max)
        .map(|l| match labels.get(&l.user) {
            Some(label) => format!("{} ({label}, {} days)", l.user, l.days),
            None => format!("{} ({} days)", l.user, l.days),
        })
        .collect();
    if lapsed.len() > max {
        parts.push(format!("+ {} more", lapsed.len() - max));
    }
    parts.join(", ")
}

/// How an alert names a user from their identify traits: "Ana Lee <ana@x.example>", the name or
/// the email alone, or `None` when the traits have neither (`name`, else `first_name`/`firstName`
/// and `last_name`/`lastName`, as Segment's spec names them; `email`).
pub fn label(traits: &Map<String, Value>) -> Option<String> {
    let text = |key: &str| traits.get(key).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let name = text("name").map(str::to_owned).or_else(|| {
        let parts: Vec<&str> = [text("first_name").or(text("firstName")), text("last_name").or(text("lastName"))]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    match (name, text("email")) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        (Some(name), None) => Some(name),
        (None, email) => email.map(str::to_owned),
    }
}

#[cfg(test)]
#[path = "people_tests.rs"]
mod tests;
