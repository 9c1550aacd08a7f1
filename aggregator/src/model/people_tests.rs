use super::*;
use crate::model::book::Closures;
use crate::model::detector::Evidence;

/// A mask with the days `d` (days before the pass's day) for which `on(d)` holds.
fn mask(on: impl Fn(u32) -> bool) -> u64 {
    (0..64).filter(|&d| on(d)).fold(0, |m, d| m | 1 << (63 - d))
}

/// Days with `d % 7` in {0, 1} are this test's weekend.
fn weekday(d: u32) -> bool {
    d % 7 > 1
}

/// Every weekday, but not in the last `gap` complete days.
fn daily_user(gap: u32) -> u64 {
    mask(|d| d > gap && weekday(d))
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

#[test]
fn a_daily_user_away_for_a_long_weekend_is_not_lapsed() {
    // Absent yesterday and the two days before (one of them a weekday, two weekend days).
    let masks = vec![daily_user(3); 4];
    let p = people(&ids(4), &masks, 63, Closures::NONE);
    assert_eq!((p.regular, p.lapsed.len()), (4, 0), "{p:?}");
}

#[test]
fn a_user_with_a_sparse_habit_is_not_lapsed_by_a_quiet_week() {
    // Comes in two weekdays of seven; gone six days: (1 − 2/9)^… is nothing unusual for them.
    let sparse = mask(|d| d > 6 && (d % 7 == 2 || d % 7 == 4));
    let p = people(&ids(1), &[sparse], 63, Closures::NONE);
    assert_eq!(p.regular, 1);
    assert!(p.lapsed.is_empty(), "{p:?}");
}

#[test]
fn a_user_who_leaves_is_lapsed_and_named_once_gone_a_working_week() {
    let mut masks = vec![daily_user(0); 9];
    masks[3] = daily_user(8);
    let p = people(&ids(9), &masks, 63, Closures::NONE);
    assert_eq!(p.lapsed, vec![Lapse { user: "u3".into(), days: 8 }]);
    assert_eq!(describe(&p.lapsed, 3, &HashMap::new()), "u3 (8 days)");
    // Gone only four days: not yet (a long weekend plus a day off looks the same).
    masks[3] = daily_user(4);
    assert!(people(&ids(9), &masks, 63, Closures::NONE).lapsed.is_empty());
}

#[test]
fn only_lapses_longer_than_most_leave_are_long() {
    // Ten daily users; two gone since different days: a week's holiday and a fortnight's are both
    // lapses, only an absence of 12 days or more is long.
    let mut masks = vec![daily_user(0); 10];
    masks[1] = daily_user(7);
    masks[2] = daily_user(LONG_LAPSE_DAYS + 1);
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.lapsed.len(), p.long_lapses()), (2, 1), "{p:?}");
    masks[1] = daily_user(LONG_LAPSE_DAYS);
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.lapsed.len(), p.long_lapses()), (2, 2), "{p:?}");
    masks[1] = daily_user(LONG_LAPSE_DAYS - 1);
    assert_eq!(people(&ids(10), &masks, 63, Closures::NONE).long_lapses(), 1);
}

#[test]
fn half_a_team_away_together_is_away_not_lapsed_until_two_weeks_pass() {
    // Ten daily users; five of them last seen on the same day, nine days ago.
    let mut masks = vec![daily_user(0); 10];
    for m in masks.iter_mut().take(5) {
        *m = daily_user(9);
    }
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (5, 0), "{p:?}");
    assert_eq!(p.away_on[..9], [5; 9]);
    assert_eq!(p.away_on[9], 0);
    // Still gone after three weeks: they have left.
    for m in masks.iter_mut().take(5) {
        *m = daily_user(21);
    }
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (0, 5));
}

#[test]
fn a_group_last_seen_within_two_days_is_away_from_its_third_day() {
    // Ten daily users; four last seen 3, 4, 4 and 5 days ago: not lapsed yet, already a group.
    let mut masks = vec![daily_user(0); 10];
    for (m, gap) in masks.iter_mut().zip([3, 4, 4, 5]) {
        *m = daily_user(gap);
    }
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (4, 0), "{p:?}");
    assert_eq!(p.away_on[..5], [4, 4, 4, 3, 1]);
    // Spread over more days (3, 6, 9): three people leaving, not a group.
    for (m, gap) in masks.iter_mut().zip([3, 6, 9]) {
        *m = daily_user(gap);
    }
    masks[3] = daily_user(0);
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!(p.away_together, 0, "{p:?}");
}

#[test]
fn those_last_seen_with_a_group_are_away_with_it_though_their_habit_is_sparse() {
    // Four daily users at work; three daily users last seen 4 days ago (a group from its third
    // day); three who come in every other week on each weekday, also last seen 4 days ago: three
    // days away is nothing unusual for them (0.5 × 0.5 on the two weekdays), yet they left
    // with the group, and the detector must not expect them in on its days.
    let sparse = |gap: u32| mask(move |d| d > gap && weekday(d) && (d / 7 + d) % 2 == 0);
    let mut masks = vec![daily_user(0); 4];
    masks.extend([daily_user(3); 3]);
    masks.extend([sparse(3); 3]);
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!(p.regular, 10, "{p:?}");
    assert_eq!((p.away_together, p.lapsed.len()), (6, 0), "{p:?}");
    assert_eq!(p.away_on[..4], [6, 6, 6, 0]);
    // One last seen a week before the group left did not leave with it.
    masks[9] = sparse(9);
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!(p.away_on[..3], [5, 5, 5], "{p:?}");
}

#[test]
fn a_whole_team_closure_is_away_together() {
    let masks = vec![daily_user(8); 6];
    let p = people(&ids(6), &masks, 63, Closures::NONE);
    assert_eq!((p.regular, p.away_together, p.lapsed.len()), (6, 6, 0));
}

#[test]
fn users_leaving_on_different_days_are_each_lapsed() {
    let mut masks = vec![daily_user(0); 8];
    masks[1] = daily_user(12);
    masks[2] = daily_user(9);
    masks[5] = daily_user(16);
    let p = people(&ids(8), &masks, 63, Closures::NONE);
    let who: Vec<_> = p.lapsed.iter().map(|l| (l.user.as_str(), l.days)).collect();
    assert_eq!(who, [("u5", 16), ("u1", 12), ("u2", 9)], "longest gone first");
    assert_eq!(describe(&p.lapsed, 2, &HashMap::new()), "u5 (16 days), u1 (12 days), + 1 more");
}

#[test]
fn the_champion_is_the_heaviest_user_and_their_absence_is_counted() {
    let mut masks = vec![mask(|d| d % 7 == 3); 4];
    masks[2] = mask(|d| d > 10);
    let p = people(&ids(4), &masks, 63, Closures::NONE);
    assert_eq!(p.champion, Some(("u2".into(), 10)));
    assert!(p.champion_lapsed, "seen every day, gone ten: {p:?}");
    // While they are still there, they are not lapsed.
    masks[2] = mask(|_| true);
    let p = people(&ids(4), &masks, 63, Closures::NONE);
    assert_eq!((p.champion, p.champion_lapsed), (Some(("u2".into(), 0)), false));
}

#[test]
fn a_champion_gone_a_month_is_still_the_champion() {
    // u2 came in every day until five weeks ago; the others four days a week throughout, so more
    // active days in the eight weeks than u2 by now.
    let mut masks = vec![mask(|d| d % 7 > 2); 4];
    masks[2] = mask(|d| d > 35);
    let p = people(&ids(4), &masks, 63, Closures::NONE);
    assert_eq!(p.champion, Some(("u2".into(), 35)));
    assert!(p.champion_lapsed, "{p:?}");
    // Gone so long that under two weeks of their coming in are left in the window: judged on too
    // little, and the heaviest of the others (equals: the first) is the champion.
    masks[2] = mask(|d| d > 52);
    assert_eq!(people(&ids(4), &masks, 63, Closures::NONE).champion, Some(("u0".into(), 2)));
}

#[test]
fn a_champion_gone_longer_than_most_leave_is_judged_on_the_days_before_they_went() {
    // u0 and u2 come in every weekday, the others once a week.
    let mut masks = vec![mask(|d| d % 7 == 3); 4];
    masks[0] = mask(weekday);
    // u2 away 10 days: judged on their days, as everyone is, and u0 has more.
    masks[2] = mask(|d| d > 10 && weekday(d));
    assert_eq!(people(&ids(4), &masks, 63, Closures::NONE).champion, Some(("u0".into(), 1)));
    // u2 away 16 days, as long as a long lapse: judged on the share of days they came in before
    // they went, times the window (about 40.5 days against u0's 40 active days) — still the
    // heaviest user, and gone 16 days. Until the twenty-fifth run only after 21 days, and u0 was
    // the champion from the day u2's absence cost them more days than u0 ever missed.
    masks[2] = mask(|d| d > 16 && weekday(d));
    assert_eq!(people(&ids(4), &masks, 63, Closures::NONE).champion, Some(("u2".into(), 16)));
}

#[test]
fn regular_needs_weeks_of_history_and_new_users_need_an_older_account() {
    // An account first seen 15 days ago: two full weeks, not enough to call anyone regular.
    let p = people(&ids(2), &[daily_user(0), daily_user(0)], 15, Closures::NONE);
    assert_eq!(p.regular, 0);
    // A user first seen 3 days ago on an old account is new; on a week-old account nobody is.
    let fresh = mask(|d| d <= 3);
    assert_eq!(people(&ids(2), &[daily_user(0), fresh], 63, Closures::NONE).new_7d, 1);
    assert_eq!(people(&ids(1), &[fresh], 6, Closures::NONE).new_7d, 0);
}

/// The detector's reading of `masks` expecting fewer users while `p`'s groups are away, and
/// blind to them.
fn read_with_and_without_groups(masks: &[u64], p: &People) -> (Evidence, Evidence) {
    use crate::model::detector::{daily_users, evidence};
    let daily = daily_users(masks);
    let read = |away: &[u64]| evidence(&daily, p.regular, away, 63, Closures::NONE).expect("63 days of history");
    (read(&p.away_on), read(&[]))
}

#[test]
fn a_group_week_away_that_is_over_still_counts_on_its_days() {
    // Ten daily users; five away together 10..=16 days ago, back since.
    let mut masks = vec![daily_user(0); 10];
    for m in masks.iter_mut().take(5) {
        *m = mask(|d| !(10..=16).contains(&d) && weekday(d));
    }
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (0, 0), "{p:?}");
    assert_eq!(p.away_on[9..16], [5; 7]);
    assert_eq!((p.away_on[8], p.away_on[16]), (0, 0));
    // Back for 9 days: out of a 7-day window, 7 of its days in a 16-day one.
    assert_eq!((p.group_days_in_last(7), p.group_days_in_last(12), p.group_days_in_last(16)), (0, 3, 7));
    // The detector re-reads those days expecting half the team: no decline.
    let (read, blind) = read_with_and_without_groups(&masks, &p);
    assert!(read.statistic < 1.0 && blind.statistic > read.statistic + 2.0, "{read:?} vs {blind:?}");
}

#[test]
fn absences_lined_up_while_the_rest_come_in_less_are_a_fade_not_a_group() {
    // Ten daily users. Four last seen 6 days ago; the other six came in every other day since
    // (one day on, one off, staggered): the whole team is fading, nobody is away together.
    let mut masks: Vec<u64> = (0..10u32).map(|j| mask(move |d| weekday(d) && (d > 6 || (d + j) % 2 == 0))).collect();
    for m in masks.iter_mut().take(4) {
        *m = daily_user(6);
    }
    let p = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!(p.away_together, 0, "{p:?}");
    assert_eq!(p.away_on[..5], [0; 5], "{p:?}");
    assert_eq!(p.lapsed.len(), 4, "{p:?}");
    // The same four away while the six others carry on: a group.
    for m in masks.iter_mut().skip(4) {
        *m = daily_user(0);
    }
    assert_eq!(people(&ids(10), &masks, 63, Closures::NONE).away_together, 4);
}

#[test]
fn a_few_others_with_a_sparse_habit_coming_in_less_by_chance_still_leave_a_group() {
    // Four daily users away together for the last 5 days; the two others come in on three
    // weekdays of five, and came in on two of those days between them: 40 % of what their
    // habit expects (3 × 2 × 5 / 7), by chance — two people's week, not a fade.
    let sparse = |j: u32| mask(move |d| weekday(d) && (d > 7 && (d + j) % 5 < 3 || d == 2 + j));
    let mut masks = vec![daily_user(5); 4];
    masks.extend([sparse(0), sparse(1)]);
    let p = people(&ids(6), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (4, 0), "{p:?}");
}

#[test]
fn lapsed_users_are_named_from_their_identify_traits() {
    let mut masks = vec![daily_user(0); 6];
    masks[1] = daily_user(12);
    masks[2] = daily_user(9);
    let p = people(&ids(6), &masks, 63, Closures::NONE);
    let labels = HashMap::from([("u1".to_owned(), "Ana Lee <ana@x.example>".to_owned())]);
    assert_eq!(describe(&p.lapsed, 5, &labels), "u1 (Ana Lee <ana@x.example>, 12 days), u2 (9 days)");
}

#[test]
fn a_label_is_the_name_and_email_either_alone_or_none() {
    let traits = |v: serde_json::Value| v.as_object().unwrap().clone();
    let both = traits(serde_json::json!({"name": "Ana Lee", "email": "ana@x.example", "role": "admin"}));
    assert_eq!(label(&both).as_deref(), Some("Ana Lee <ana@x.example>"));
    let split = traits(serde_json::json!({"firstName": "Ana", "last_name": "Lee"}));
    assert_eq!(label(&split).as_deref(), Some("Ana Lee"));
    assert_eq!(label(&traits(serde_json::json!({"email": " ana@x.example "}))).as_deref(), Some("ana@x.example"));
    assert_eq!(label(&traits(serde_json::json!({"name": "", "plan": "pro", "email": 7}))), None);
}

#[test]
fn a_public_holiday_does_not_lengthen_an_absence() {
    // Ten daily users; one last seen 9 days ago (a weekend, then a week), three of those days
    // (4, 3, 2 days ago) the whole book was away: two working days of their own absence
    // remain, nothing unusual.
    let mut masks = vec![mask(|d| weekday(d) && !(2..=4).contains(&d)); 10];
    masks[3] = daily_user(6);
    let holiday = Closures::on(&[2, 3, 4]);
    let p = people(&ids(10), &masks, 63, holiday);
    assert_eq!((p.regular, p.lapsed.len(), p.away_together), (10, 0, 0), "{p:?}");
    // Read without the book, the same six days are a lapse (and the others' three empty
    // days a group away together).
    let alone = people(&ids(10), &masks, 63, Closures::NONE);
    assert_eq!(alone.lapsed, vec![Lapse { user: "u3".into(), days: 8 }], "{alone:?}");
}

/// A fixed pseudo-random draw in 0..100 for user `j` on day `d`.
fn draw(j: usize, d: u32) -> u64 {
    let x = (j as u64 * 1_000_003 + d as u64 * 7_919).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 33) % 100
}

/// Sixty regular users who each come in on a weekday with a chance of 60 %: three days away
/// (two weekdays and a weekend day) have a chance of one in six under such a habit, so no
/// one's absence tells on its own. `gone(j, d)`: user j not in on day d.
fn part_timers(gone: impl Fn(usize, u32) -> bool) -> Vec<u64> {
    (0..60).map(|j| mask(|d| weekday(d) && draw(j, d) < 60 && !gone(j, d))).collect()
}

#[test]
fn half_a_team_of_part_timers_gone_since_the_same_day_is_a_group() {
    // Thirty of sixty away for the last 3 days: thirty-odd absent where their habits expect
    // about ten.
    let masks = part_timers(|j, d| j < 30 && d <= 3);
    let p = people(&ids(60), &masks, 63, Closures::NONE);
    assert!(p.regular >= 55, "{p:?}");
    assert!(p.away_on[..3].iter().all(|&n| n >= 20), "{:?}", &p.away_on[..4]);
    // The detector then expects the rest only.
    let (read, blind) = read_with_and_without_groups(&masks, &p);
    assert!(read.statistic < 2.0 && blind.statistic > read.statistic + 2.0, "{read:?} vs {blind:?}");
}

#[test]
fn a_slides_leavers_and_ordinary_absences_are_no_lineup() {
    // Twenty of sixty left one by one over the last three weeks; the others carry on as ever.
    // The leavers are absent on any recent days, but they were not in when an absence began.
    let masks = part_timers(|j, d| j < 20 && d <= j as u32 + 3);
    let p = people(&ids(60), &masks, 63, Closures::NONE);
    assert_eq!(p.away_on[..5], [0; 5], "{p:?}");
}

#[test]
fn a_fade_of_part_timers_is_no_lineup() {
    // Everyone comes in on about 60 % of their usual days for the last 4: absences line up
    // more than their habits expect, but nobody is at work as usual.
    let masks = part_timers(|j, d| d <= 4 && draw(j + 100, d) < 40);
    let p = people(&ids(60), &masks, 63, Closures::NONE);
    assert_eq!(p.away_on[..4], [0; 4], "{p:?}");
}

#[test]
fn a_group_counts_those_who_went_along_when_that_many_is_no_chance() {
    // loadgen seed 7's acct-00237 on 2026-10-26 (a Monday; its history covers 33 days): ten
    // of its eighteen users away together since Tuesday. Five of the 17 regular users' absences
    // are telling on their own, under 30 %; others, with sparser habits, were last seen with
    // them and absent on all of its days. That many lined up is under 1 in 100,000 but not the
    // 1 in a million a lineup on its own needs: before, no group, three of it lapsed, and the
    // week read as a decline (`usage_sliding` fired that day).
    let masks = [
        0x012a680d40000000, // user001
        0x001250f980000000, // user002
        0x013e6df980000000, // user003
        0x01264c1900000000, // user004
        0x017d5cf240000000, // user005
        0x011c3cbbc0000000, // user006
        0x012a75f9c0000000, // user007
        0x011a08c0c0000000, // user008
        0x010675bac0000000, // user009
        0x00303c7880000000, // user010
        0x8f301c4000000000, // user011
        0xbd6ebef980000000, // user012
        0x0b381cb1c0000000, // user013
        0x854c4450c0000000, // user014
        0x8d0a7c0980000000, // user015
        0xdc00784840000000, // user016
        0x09fa7e59c0000000, // user017
        0xdf3a68f9c0000000, // user018
    ];
    let p = people(&ids(18), &masks, 33, Closures::NONE);
    assert_eq!(p.regular, 17, "{p:?}");
    assert_eq!(p.away_on[..7], [7, 7, 7, 7, 7, 7, 0], "{p:?}");
    assert_eq!(p.away_together, 7, "{p:?}");
    // Only the user gone since before it is lapsed.
    assert_eq!(p.lapsed, [Lapse { user: "u1".into(), days: 10 }], "{p:?}");
}

#[test]
fn a_week_before_well_under_the_habit_is_no_usual_week() {
    // Ten daily users; four of them gone the last three weekdays (each absence telling), the
    // others in as ever. In the week before (days 6–12, five weekdays) the team came in on 38
    // of its 50 weekdays, 84 % of the 45 its habit (0.9 a day, capped) expects: a fade's week,
    // not a usual one, so the four are no group away. (At the 80 % bar of before, a group.)
    let skipped = |j: usize, d: u32| (j < 4 && (d == 9 || d == 11)) || (j >= 4 && d == 6 + (j as u32 % 5));
    let team = |before_as_usual: bool| -> Vec<u64> {
        (0..10)
            .map(|j| {
                mask(|d| {
                    weekday(d) && !(j < 4 && d <= 4) && !(!before_as_usual && (6..=12).contains(&d) && skipped(j, d))
                })
            })
            .collect()
    };
    let p = people(&ids(10), &team(false), 63, Closures::NONE);
    assert_eq!(p.away_on[..4], [0; 4], "{p:?}");
    // The same four away after a usual week are a group.
    let p = people(&ids(10), &team(true), 63, Closures::NONE);
    assert_eq!(p.away_on[..4], [4; 4], "{p:?}");
}

#[test]
fn the_poisson_tail() {
    assert_eq!(poisson_tail(3.0, 0), 1.0);
    // P(N ≥ 1) = 1 − e^−λ; P(N ≥ 2) = 1 − e^−λ (1 + λ).
    assert!((poisson_tail(2.0, 1) - (1.0 - (-2.0f64).exp())).abs() < 1e-12);
    assert!((poisson_tail(2.0, 2) - (1.0 - 3.0 * (-2.0f64).exp())).abs() < 1e-12);
    assert!(poisson_tail(10.0, 40) < 1e-9 && poisson_tail(10.0, 40) > 0.0);
    assert_eq!(poisson_tail(0.0, 1), 0.0);
}

#[test]
fn a_groups_week_stays_a_group_when_a_few_of_it_stay_away_longer() {
    // Twenty daily users. Four away 10..=16 days ago and back since; three left with them and
    // are still away, 16 days on (a longer leave): seven of twenty went together.
    let mut masks = vec![daily_user(0); 20];
    for m in masks.iter_mut().take(4) {
        *m = mask(|d| !(10..=16).contains(&d) && weekday(d));
    }
    for m in masks.iter_mut().skip(4).take(3) {
        *m = daily_user(16);
    }
    let p = people(&ids(20), &masks, 63, Closures::NONE);
    assert_eq!(p.away_on[9..16], [7; 7], "{p:?}");
    // The three still away are gone by their own habit, not away with anyone now.
    assert_eq!((p.away_together, p.lapsed.len()), (0, 3), "{p:?}");
    let (read, blind) = read_with_and_without_groups(&masks, &p);
    assert!(blind.statistic > read.statistic + 2.0, "{read:?} vs {blind:?}");
    // Fewer back than still away: most of that group has gone, and the four alone are no group.
    masks[3] = daily_user(16);
    let p = people(&ids(20), &masks, 63, Closures::NONE);
    assert_eq!(p.away_on[9..16], [0; 7], "{p:?}");
}

#[test]
fn a_team_gone_after_a_thin_week_is_a_fade_not_a_team_away() {
    // Six daily users who came in on two of the five weekdays of the week before they were
    // last seen, 9 days ago: the whole team's days thinned, then stopped. Not a team away.
    let masks = vec![mask(|d| weekday(d) && d > 8 && (d > 14 || d == 9 || d == 13)); 6];
    let p = people(&ids(6), &masks, 63, Closures::NONE);
    assert_eq!((p.away_together, p.lapsed.len()), (0, 6), "{p:?}");
    assert_eq!(p.away_on[..8], [0; 8], "{p:?}");
    // The same team after a usual week is away together (a closure, `a_whole_team_closure…`).
    let masks = vec![mask(|d| weekday(d) && d > 8); 6];
    assert_eq!(people(&ids(6), &masks, 63, Closures::NONE).away_together, 6);
}
